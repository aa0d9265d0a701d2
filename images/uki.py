"""The unified kernel image: Debian's systemd-stub (systemd-boot-efi 252, linuxx64.efi.stub) with
.osrel, .cmdline, .linux and .initrd sections added by objcopy. Bookworm has no ukify; this is the
objcopy recipe from systemd-stub(7) of systemd 252 ("the section VMAs must not overlap the stub").
"""

from __future__ import annotations

import array
import struct
import sys
from pathlib import Path

from . import pins
from .run import run

MIB = 1 << 20


def build(
    kernel: Path, initrd: Path, cmdline: str, osrel: bytes, workdir: Path, out: Path, epoch: int
) -> None:
    """Write the UKI to `out`. Section contents are exactly the given bytes (no trailing NUL or
    newline added), so PCR 11 can be predicted from the inputs."""
    (workdir / "cmdline").write_bytes(cmdline.encode())
    (workdir / "osrel").write_bytes(osrel)
    # The stub's image ends at 0x19300; .linux at 32 MiB and .initrd after it, on a 1 MiB bound
    # (the bookworm kernel is ~14 MiB, so usually at 48 MiB = 0x3000000 as in systemd-stub(7)).
    initrd_vma = max(0x3000000, (0x2000000 + kernel.stat().st_size + MIB - 1) // MIB * MIB)
    run(
        [
            "objcopy",
            "--add-section",
            f".osrel={workdir / 'osrel'}",
            "--change-section-vma",
            ".osrel=0x20000",
            "--add-section",
            f".cmdline={workdir / 'cmdline'}",
            "--change-section-vma",
            ".cmdline=0x30000",
            "--add-section",
            f".linux={kernel}",
            "--change-section-vma",
            ".linux=0x2000000",
            "--add-section",
            f".initrd={initrd}",
            "--change-section-vma",
            f".initrd={initrd_vma:#x}",
            pins.EFI_STUB,
            out,
        ]
    )
    normalize_pe(out, epoch)


def normalize_pe(path: Path, epoch: int) -> None:
    """objcopy stamps the current time into the COFF header (binutils 2.40 ignores
    SOURCE_DATE_EPOCH for PE output): write the epoch there and recompute the PE checksum."""
    image = bytearray(path.read_bytes())
    (e_lfanew,) = struct.unpack_from("<I", image, 0x3C)
    struct.pack_into("<I", image, e_lfanew + 8, epoch)
    checksum_at = e_lfanew + 24 + 64
    struct.pack_into("<I", image, checksum_at, pe_checksum(bytes(image), checksum_at))
    path.write_bytes(bytes(image))


def pe_checksum(image: bytes, checksum_at: int) -> int:
    """The PE optional-header checksum (imagehlp CheckSumMappedFile): the 16-bit one's-complement
    style sum of the file with the checksum field zeroed, plus the file length."""
    data = bytearray(image)
    data[checksum_at : checksum_at + 4] = b"\0\0\0\0"
    if len(data) % 2:
        data += b"\0"
    words = array.array("H", bytes(data))
    if sys.byteorder == "big":
        words.byteswap()  # PE words are little-endian
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(image)) & 0xFFFFFFFF
