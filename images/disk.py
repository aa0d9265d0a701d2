"""The disk: a GPT (sfdisk on a plain file, no loop devices) with an EFI system partition holding
the UKI as EFI/BOOT/BOOTX64.EFI, the erofs root and its dm-verity hash tree; then the output
formats: raw, qcow2 (qemu-img), Azure fixed-size VHD and the GCP disk.raw tar.gz (written here so
every byte is fixed).

Partition type and UUID rules follow the Discoverable Partitions Specification
(uapi-group.org/specifications/specs/discoverable_partitions_specification): root x86-64
4f68bce3-..., root verity x86-64 2c7357ed-...; the root partition's UUID is the first 128 bits of
the verity root hash and the verity partition's the last 128 bits.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from .run import run

MIB = 1 << 20
SECTOR = 512
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_X86_64_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
ROOT_VERITY_X86_64_TYPE = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z, the VHD timestamp origin


@dataclass(frozen=True)
class Partition:
    name: str
    type: str
    uuid: str
    image: Path
    start: int = 0  # bytes
    size: int = 0  # bytes, MiB-aligned


def make_esp(uki: Path, out: Path, *, size_mib: int, volume_id: str, epoch: int) -> None:
    """FAT ESP with EFI/BOOT/BOOTX64.EFI; --invariant and a fixed volume id make it repeatable,
    mcopy -m keeps the (clamped) mtime of the UKI, mtools honours SOURCE_DATE_EPOCH for dirs."""
    out.unlink(missing_ok=True)
    os.utime(uki, (epoch, epoch))
    run(["mkfs.vfat", "--invariant", "-i", volume_id, "-n", "ESP", "-C", out, str(size_mib * 1024)])
    run(["mmd", "-i", out, "::/EFI", "::/EFI/BOOT"])
    run(["mcopy", "-m", "-i", out, uki, "::/EFI/BOOT/BOOTX64.EFI"])


def _align(size: int) -> int:
    return (size + MIB - 1) // MIB * MIB


def assemble(partitions: list[Partition], out: Path, *, disk_uuid: str) -> list[Partition]:
    """Lay partitions out from 1 MiB on, MiB-aligned, leave 1 MiB for the backup GPT, write the
    GPT with sfdisk, then copy each partition image to its offset. Returns the placed layout."""
    placed, offset = [], MIB
    for part in partitions:
        size = _align(part.image.stat().st_size)
        placed.append(Partition(part.name, part.type, part.uuid, part.image, offset, size))
        offset += size
    total = offset + MIB
    out.unlink(missing_ok=True)
    with out.open("wb") as handle:
        handle.truncate(total)
    script = [
        "label: gpt",
        f"label-id: {disk_uuid}",
        "unit: sectors",
        "first-lba: 2048",
        f"last-lba: {total // SECTOR - 34}",
    ]
    script += [
        f"start={p.start // SECTOR}, size={p.size // SECTOR}, type={p.type}, uuid={p.uuid}, "
        f'name="{p.name}"'
        for p in placed
    ]
    run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--wipe=never", out],
        stdin=("\n".join(script) + "\n").encode(),
    )
    with out.open("r+b") as disk:
        for part in placed:
            disk.seek(part.start)
            with part.image.open("rb") as source:
                shutil.copyfileobj(source, disk, 4 * MIB)
    return placed


def to_qcow2(raw: Path, out: Path) -> None:
    out.unlink(missing_ok=True)
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out])


def vhd_geometry(size: int) -> tuple[int, int, int]:
    """CHS from the VHD specification's pseudo-code (Virtual Hard Disk Image Format, appendix)."""
    sectors = min(size // SECTOR, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = sectors // spt
    else:
        spt = 17
        cth = sectors // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = sectors // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = sectors // spt
    return cth // heads, heads, spt


def vhd_footer(size: int, *, epoch: int, unique_id: uuid.UUID) -> bytes:
    """The 512-byte footer of a fixed VHD (Azure needs fixed VHDs with MiB-aligned size). qemu-img
    writes the current time and a random UUID here, so it is written here instead.

    Creator "qem2" is what `qemu-img convert -O vpc -o subformat=fixed,force_size` writes (the
    conversion Azure documents); readers such as qemu's vpc driver then take the size from
    current_size instead of rounding it down to the CHS geometry."""
    cylinders, heads, spt = vhd_geometry(size)
    footer = bytearray(
        struct.pack(
            ">8sIIQI4sI4sQQHBBII16sB",
            b"conectix",
            2,
            0x00010000,
            0xFFFFFFFFFFFFFFFF,
            max(0, epoch - VHD_EPOCH),
            b"qem2",
            0x00010000,
            b"Wi2k",
            size,
            size,
            cylinders,
            heads,
            spt,
            2,
            0,
            unique_id.bytes,
            0,
        )
    )
    footer += b"\0" * (512 - len(footer))
    checksum = ~sum(footer) & 0xFFFFFFFF
    struct.pack_into(">I", footer, 64, checksum)
    return bytes(footer)


def to_azure_vhd(raw: Path, out: Path, *, epoch: int, unique_id: uuid.UUID) -> None:
    size = raw.stat().st_size
    out.unlink(missing_ok=True)
    shutil.copyfile(raw, out)
    with out.open("ab") as handle:
        handle.write(vhd_footer(size, epoch=epoch, unique_id=unique_id))


def to_gcp_tar(raw: Path, out: Path, *, epoch: int) -> None:
    """disk.raw in a gzip'd GNU tar, as GCP image import expects; fixed owner, mtime, no name in
    the gzip header."""
    info = tarfile.TarInfo("disk.raw")
    info.size = raw.stat().st_size
    info.mtime = epoch
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    with (
        out.open("wb") as handle,
        gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        raw.open("rb") as source,
    ):
        tar.addfile(info, source)
