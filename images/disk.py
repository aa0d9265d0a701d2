"""The disk: a GPT (sfdisk on a plain file, no loop devices) with an EFI system partition holding
the UKI as EFI/BOOT/BOOTX64.EFI, the erofs root and its dm-verity hash tree; then the output
formats: raw, qcow2 (qemu-img), Azure fixed-size VHD and the GCP disk.raw tar.gz (written here so
every byte is fixed; its disk.raw is the raw disk grown to whole GiB, GPT moved to the new end).

Partition type and UUID rules follow the Discoverable Partitions Specification
(uapi-group.org/specifications/specs/discoverable_partitions_specification): root x86-64
4f68bce3-..., root verity x86-64 2c7357ed-...; the root partition's UUID is the first 128 bits of
the verity root hash and the verity partition's the last 128 bits.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import struct
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageError
from .run import run

MIB = 1 << 20
GIB = 1 << 30
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
    write_gpt(out, placed, disk_uuid=disk_uuid)
    with out.open("r+b") as disk:
        for part in placed:
            disk.seek(part.start)
            with part.image.open("rb") as source:
                shutil.copyfileobj(source, disk, 4 * MIB)
    return placed


def write_gpt(out: Path, placed: list[Partition], *, disk_uuid: str) -> None:
    """The protective MBR, the primary GPT and the backup GPT at the file's real end (its last
    LBA), written by sfdisk from a script: same script and size, same bytes."""
    total = out.stat().st_size
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


def whole_gib_disk(raw: Path, placed: list[Partition], out: Path, *, disk_uuid: str) -> None:
    """A copy of `raw` grown to a whole number of GiB, as GCP imports only whole-GiB disks
    (issue 17, defect 2; Compute Engine "Manually import boot disks",
    cloud.google.com/compute/docs/import/import-existing-image). The partitions keep their
    bytes and offsets (so the root hash, the UKI and the PCRs are those of `raw`); the old
    backup GPT in raw's last MiB is zeroed and the GPT rewritten for the new size, so the
    backup header sits on the last LBA (UEFI 2.10 section 5.3.2) and the primary header's
    AlternateLBA points to it. Sparse: the added space is a hole, not written zeros."""
    size = raw.stat().st_size
    end = max((p.start + p.size for p in placed), default=MIB)
    if end > size - MIB:
        raise ImageError(f"{raw}: the partitions reach into the last MiB (the backup GPT)")
    target = -(-size // GIB) * GIB
    out.unlink(missing_ok=True)
    with raw.open("rb") as source, out.open("wb") as disk:
        disk.truncate(target)
        # copy the partitions' data MiBs only (the rest stays a hole); the old backup GPT in
        # raw's last MiB is not copied, so it is not left in the middle of the disk
        for offset, length in data_regions(raw):
            length = min(length, size - MIB - offset)
            if length > 0:
                source.seek(offset)
                disk.seek(offset)
                disk.write(source.read(length))
    write_gpt(out, placed, disk_uuid=disk_uuid)


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


def data_regions(path: Path, chunk: int = MIB) -> list[tuple[int, int]]:
    """(offset, length) of every run of `chunk`-aligned blocks holding a non-zero byte: what a
    sparse tar stores. Decided by content, not by the file system's holes (those are only
    skipped, being zeros), so it is the same on every host."""
    regions: list[tuple[int, int]] = []
    zero = bytes(chunk)
    size = path.stat().st_size
    with path.open("rb") as handle:
        offset = _next_data(handle.fileno(), 0)
        while offset is not None and offset < size:
            offset -= offset % chunk
            handle.seek(offset)
            block = handle.read(chunk)
            if block != (zero if len(block) == chunk else bytes(len(block))):
                if regions and sum(regions[-1]) == offset:
                    regions[-1] = (regions[-1][0], regions[-1][1] + len(block))
                else:
                    regions.append((offset, len(block)))
            offset = _next_data(handle.fileno(), offset + len(block))
    if not regions or sum(regions[-1]) != size:
        regions.append((size, 0))  # GNU convention: a file ending in a hole ends in an empty run
    return regions


def _next_data(fd: int, offset: int) -> int | None:
    """The next offset at or after `offset` that is not in a hole; None when only a hole is
    left. Without SEEK_DATA support every byte counts as data (read and compared)."""
    try:
        return os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        return None if exc.errno == errno.ENXIO else offset


def _octal(value: int, width: int) -> bytes:
    text = f"{value:0{width - 1}o}".encode()
    if len(text) > width - 1:
        raise ImageError(f"{value} does not fit a {width}-byte tar field")
    return text + b"\0"


def _sparse_entries(regions: list[tuple[int, int]]) -> bytes:
    return b"".join(_octal(offset, 12) + _octal(length, 12) for offset, length in regions)


def sparse_tar_header(name: str, size: int, regions: list[tuple[int, int]], epoch: int) -> bytes:
    """The old GNU sparse member header (type 'S') and its extension blocks, as `tar
    --format=oldgnu -S` writes them (GNU tar manual, "Old GNU Format" and "Storing Sparse
    Files"; struct oldgnu_header / sparse_header in GNU tar's src/tar.h): 4 map entries in the
    header at offset 386, 21 per extension block, realsize at 483. Owner root, mode 0644."""
    stored = sum(length for _, length in regions)
    header = bytearray(512)
    header[0 : len(name)] = name.encode()
    header[100:108] = _octal(0o644, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(stored, 12)
    header[136:148] = _octal(epoch, 12)
    header[156:157] = b"S"
    header[257:265] = b"ustar  \0"  # old GNU magic and version
    header[265:269] = header[297:301] = b"root"
    header[386 : 386 + 96] = _sparse_entries(regions[:4]).ljust(96, b"\0")
    header[482] = 1 if len(regions) > 4 else 0
    header[483:495] = _octal(size, 12)
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    blocks = [bytes(header)]
    rest = regions[4:]
    while rest:
        block = bytearray(512)
        block[0:504] = _sparse_entries(rest[:21]).ljust(504, b"\0")
        rest = rest[21:]
        block[504] = 1 if rest else 0
        blocks.append(bytes(block))
    return b"".join(blocks)


def to_gcp_tar(raw: Path, out: Path, *, epoch: int) -> None:
    """disk.raw in a gzip'd old-GNU sparse tar, as GCP's manual import documents it (`tar
    --format=oldgnu -Sczf`, cloud.google.com/compute/docs/import/import-existing-image): the
    all-zero MiBs of the whole-GiB disk are not stored, so neither gzip nor the upload walks
    them. Fixed owner and mtime, no name or time in the gzip header."""
    size = raw.stat().st_size
    regions = data_regions(raw)
    with (
        out.open("wb") as handle,
        gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=6) as gz,
        raw.open("rb") as source,
    ):
        written = gz.write(sparse_tar_header("disk.raw", size, regions, epoch))
        for offset, length in regions:
            source.seek(offset)
            remaining = length
            while remaining:
                block = source.read(min(remaining, 4 * MIB))
                written += gz.write(block)
                remaining -= len(block)
        written += gz.write(bytes(-written % 512 + 1024))  # pad the data, end-of-archive
        gz.write(bytes(-written % tarfile.RECORDSIZE))
