"""The GCP disk: disk.raw grown to a whole number of GiB (GCP imports nothing else, issue 17
defect 2) with the backup GPT on the last LBA, read back with our own GPT reader (UEFI 2.10
section 5.3.2, "GPT Header") and with `sfdisk --json`.

TestWholeGib needs only sfdisk (fdisk package) and runs in the unit tier on small partitions;
TestBuiltImage (marker `image`) checks the built minimal image's disk.raw.tar.gz and boots the
disk inside it: same partitions, same PCRs as disk.raw.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from images import boot, disk
from tests.images.conftest import Built

MIB, GIB, SECTOR = 1 << 20, 1 << 30, 512
EPOCH = 1795737600
DISK_UUID = "6c6f636b-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class Header:
    my_lba: int
    alternate_lba: int
    first_usable: int
    last_usable: int
    disk_guid: bytes
    entries_lba: int
    entries: bytes


def read_header(image: BinaryIO, lba: int) -> Header:
    """A GPT header at `lba`, with both CRCs checked (header CRC over HeaderSize bytes with the
    CRC field zeroed; entry array CRC over NumberOfPartitionEntries * SizeOfPartitionEntry)."""
    image.seek(lba * SECTOR)
    raw = image.read(SECTOR)
    assert raw[:8] == b"EFI PART", f"no GPT header at LBA {lba}"
    (size,) = struct.unpack_from("<I", raw, 12)
    (crc,) = struct.unpack_from("<I", raw, 16)
    zeroed = raw[:16] + b"\0\0\0\0" + raw[20:size]
    assert zlib.crc32(zeroed) == crc, f"header CRC at LBA {lba}"
    my_lba, alternate, first, last = struct.unpack_from("<QQQQ", raw, 24)
    guid = raw[56:72]
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", raw, 72)
    image.seek(entries_lba * SECTOR)
    entries = image.read(count * entry_size)
    assert zlib.crc32(entries) == entries_crc, f"partition entry CRC of the header at LBA {lba}"
    return Header(my_lba, alternate, first, last, guid, entries_lba, entries)


def check_gpt(path: Path) -> tuple[Header, Header]:
    """Every invariant of a GPT whose backup is at the disk's real end."""
    last = path.stat().st_size // SECTOR - 1
    with path.open("rb") as image:
        primary = read_header(image, 1)
        assert primary.my_lba == 1 and primary.alternate_lba == last
        backup = read_header(image, last)
        image.seek(0)
        mbr = image.read(SECTOR)
    assert backup.my_lba == last and backup.alternate_lba == 1
    assert backup.entries_lba == last - 32  # the entry array right before the backup header
    assert backup.entries == primary.entries and backup.disk_guid == primary.disk_guid
    assert primary.last_usable == backup.last_usable <= last - 33
    # protective MBR: one 0xEE partition from LBA 1 over the disk (capped at 2^32 - 1)
    assert mbr[510:512] == b"\x55\xaa" and mbr[446 + 4] == 0xEE
    assert struct.unpack_from("<II", mbr, 446 + 8) == (1, min(last, 0xFFFFFFFF))
    return primary, backup


def _partitions(tmp: Path) -> list[disk.Partition]:
    parts = []
    for i, (name, kind, size) in enumerate(
        [("esp", disk.ESP_TYPE, 3 * MIB), ("coco-root", disk.ROOT_X86_64_TYPE, 5 * MIB + 7),
         ("coco-verity", disk.ROOT_VERITY_X86_64_TYPE, 300_000)]
    ):
        image = tmp / f"{name}.img"
        image.write_bytes(hashlib.shake_256(name.encode()).digest(size))
        parts.append(disk.Partition(name, kind, f"00000000-0000-4000-8000-00000000000{i}", image))
    return parts


@pytest.fixture
def assembled(tmp_path: Path) -> tuple[Path, list[disk.Partition]]:
    if shutil.which("sfdisk") is None:
        message = "sfdisk is missing; install it with: apt-get install fdisk"
        if os.environ.get("COCO_REQUIRE_IMAGE_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    raw = tmp_path / "disk.raw"
    return raw, disk.assemble(_partitions(tmp_path), raw, disk_uuid=DISK_UUID)


def _sfdisk(path: Path) -> dict:
    out = subprocess.run(["sfdisk", "--json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    table: dict = json.loads(out)["partitiontable"]
    return table


def _read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


class TestWholeGib:
    """The GCP disk is a whole number of GiB, its GPT valid with the backup on the last LBA,
    its partitions byte-identical to disk.raw's, and its bytes deterministic."""

    def test_size_and_backup_header_at_the_end(self, assembled, tmp_path: Path):
        raw, placed = assembled
        out = tmp_path / "gcp.raw"
        disk.whole_gib_disk(raw, placed, out, disk_uuid=DISK_UUID)
        size = out.stat().st_size
        assert size % GIB == 0 and size == GIB  # 11 MiB rounded up
        primary, _ = check_gpt(out)
        assert primary.last_usable == size // SECTOR - 34
        # the old backup header and entry array (raw's last 33 sectors) are gone
        old_last = raw.stat().st_size // SECTOR - 1
        assert _read(out, (old_last - 32) * SECTOR, 33 * SECTOR) == bytes(33 * SECTOR)
        # raw itself was a valid GPT with its backup at its own end: the test reader agrees
        check_gpt(raw)

    def test_partitions_unchanged(self, assembled, tmp_path: Path):
        raw, placed = assembled
        out = tmp_path / "gcp.raw"
        disk.whole_gib_disk(raw, placed, out, disk_uuid=DISK_UUID)
        before, after = _sfdisk(raw), _sfdisk(out)
        keys = ("start", "size", "type", "uuid", "name")
        assert [[p[k] for k in keys] for p in after["partitions"]] == [
            [p[k] for k in keys] for p in before["partitions"]
        ]
        assert after["id"] == before["id"] == DISK_UUID.upper()
        assert after["lastlba"] == GIB // SECTOR - 34
        for part in placed:
            content = part.image.read_bytes()
            assert _read(out, part.start, len(content)) == content, part.name

    def test_whole_gib_raw_keeps_its_size(self, tmp_path: Path, assembled):
        raw, placed = assembled
        with raw.open("r+b") as handle:  # grow raw to exactly 1 GiB, GPT at its end
            handle.truncate(GIB)
        disk.write_gpt(raw, placed, disk_uuid=DISK_UUID)
        out = tmp_path / "gcp.raw"
        disk.whole_gib_disk(raw, placed, out, disk_uuid=DISK_UUID)
        assert out.stat().st_size == GIB
        check_gpt(out)

    def test_deterministic(self, assembled, tmp_path: Path):
        raw, placed = assembled
        contents = []
        for run in ("a", "b"):
            out = tmp_path / f"{run}.raw"
            disk.whole_gib_disk(raw, placed, out, disk_uuid=DISK_UUID)
            # outside its data regions a file is zeros: equal regions, equal files
            regions = disk.data_regions(out)
            contents.append([(o, hashlib.sha256(_read(out, o, n)).hexdigest()) for o, n in regions])
        assert contents[0] == contents[1]
        assert contents[0][-1][0] == GIB - MIB  # the backup GPT's MiB is the last data


def _tar_tool() -> str:
    tool = shutil.which("tar")
    if tool is None:
        pytest.skip("GNU tar is missing; install it with: apt-get install tar")
    return tool


class TestSparseTar:
    """disk.raw.tar.gz is an old-GNU sparse tar (`tar --format=oldgnu -S`, what GCP documents):
    GNU tar and Python both restore the exact disk, the zero MiBs are not stored, and the
    archive's bytes are fixed."""

    def _disk(
        self, tmp_path: Path, runs: list[tuple[int, bytes]], size: int, dense: bool = False
    ) -> Path:
        path = tmp_path / "disk.raw"
        with path.open("wb") as handle:
            if dense:  # zeros written, no holes: the regions are decided by content alone
                handle.write(bytes(size))
            for offset, data in runs:
                handle.seek(offset)
                handle.write(data)
            handle.truncate(size)
        return path

    def _roundtrip(self, source: Path, tmp_path: Path) -> Path:
        archive = tmp_path / "disk.raw.tar.gz"
        disk.to_gcp_tar(source, archive, epoch=EPOCH)
        target = tmp_path / "gnu"
        target.mkdir()
        subprocess.run([_tar_tool(), "-C", str(target), "-xzf", str(archive)], check=True)
        restored = target / "disk.raw"
        assert restored.stat().st_size == source.stat().st_size
        assert restored.read_bytes() == source.read_bytes()
        with tarfile.open(archive) as tar:
            (member,) = tar.getmembers()
            assert member.name == "disk.raw" and member.issparse()
            assert member.uid == member.gid == 0 and member.mtime == EPOCH
            extracted = tar.extractfile(member)
            assert extracted is not None and extracted.read() == source.read_bytes()
        return archive

    @pytest.mark.parametrize("dense", [False, True])
    def test_holes_not_stored_and_gnu_tar_restores(self, tmp_path: Path, dense: bool):
        runs = [(0, b"\1" * 700), (5 * MIB + 3, b"\2"), (63 * MIB, b"\3")]
        source = self._disk(tmp_path, runs, 64 * MIB, dense)
        assert disk.data_regions(source) == [(0, MIB), (5 * MIB, MIB), (63 * MIB, MIB)]
        archive = self._roundtrip(source, tmp_path)
        with gzip.open(archive) as gz:
            stored = 512 + 3 * MIB + 1024  # header, the three data MiBs, end of archive
            assert len(gz.read()) == stored + -stored % tarfile.RECORDSIZE

    def test_many_runs_use_extension_blocks(self, tmp_path: Path):
        # 30 separate runs: 4 in the header, 21 in the first extension block, 5 in the second
        source = self._disk(tmp_path, [(i * 2 * MIB, b"x") for i in range(30)], 61 * MIB)
        assert len(disk.data_regions(source)) == 31  # and an empty run at the end (a hole)
        self._roundtrip(source, tmp_path)

    def test_bytes_fixed(self, tmp_path: Path):
        source = self._disk(tmp_path, [(0, b"disk"), (3 * MIB, b"end")], 4 * MIB)
        digests = set()
        for run in ("a", "b"):
            archive = tmp_path / f"{run}.tar.gz"
            disk.to_gcp_tar(source, archive, epoch=EPOCH)
            digests.add(hashlib.sha256(archive.read_bytes()).hexdigest())
        assert len(digests) == 1

    def test_gcp_disk_in_the_tar(self, assembled, tmp_path: Path):
        raw, placed = assembled
        gcp = tmp_path / "gcp.raw"
        disk.whole_gib_disk(raw, placed, gcp, disk_uuid=DISK_UUID)
        archive = tmp_path / "disk.raw.tar.gz"
        disk.to_gcp_tar(gcp, archive, epoch=EPOCH)
        assert archive.stat().st_size < 2 * raw.stat().st_size  # the GiB of zeros is a hole
        target = tmp_path / "gnu"
        target.mkdir()
        subprocess.run([_tar_tool(), "-C", str(target), "-xzSf", str(archive)], check=True)
        assert (target / "disk.raw").stat().st_size == GIB
        check_gpt(target / "disk.raw")


@pytest.fixture(scope="module")
def gcp_raw(minimal: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The disk.raw inside the built minimal image's disk.raw.tar.gz."""
    target = tmp_path_factory.mktemp("gcp") / "disk.raw"
    with gzip.open(minimal.out / "disk.raw.tar.gz") as gz, tarfile.open(fileobj=gz) as tar:
        (member,) = tar.getmembers()
        source = tar.extractfile(member)
        assert source is not None
        with target.open("wb") as out:
            shutil.copyfileobj(source, out)
    return target


@pytest.mark.image
class TestBuiltImage:
    """The built minimal image's GCP disk: whole GiB, valid GPT, the partitions of disk.raw
    (so the same root hash and UKI), and it boots with the predicted PCRs."""

    def test_whole_gib_with_the_backup_gpt_at_the_end(self, gcp_raw: Path):
        assert gcp_raw.stat().st_size % GIB == 0
        check_gpt(gcp_raw)

    def test_partitions_identical_to_disk_raw(self, gcp_raw: Path, minimal):
        raw = minimal.out / "disk.raw"
        before, after = _sfdisk(raw)["partitions"], _sfdisk(gcp_raw)["partitions"]
        assert [(p["start"], p["size"], p["uuid"]) for p in after] == [
            (p["start"], p["size"], p["uuid"]) for p in before
        ]
        with raw.open("rb") as a, gcp_raw.open("rb") as b:
            for part in before:
                a.seek(part["start"] * SECTOR)
                b.seek(part["start"] * SECTOR)
                size = part["size"] * SECTOR
                assert hashlib.sha256(a.read(size)).digest() == hashlib.sha256(
                    b.read(size)
                ).digest(), part["name"]

    def test_boots_with_the_predicted_pcrs(self, gcp_raw: Path, minimal, tmp_path: Path):
        result = boot.boot(gcp_raw, workdir=tmp_path)
        assert result.booted, result.console[-3000:]
        root_hash = minimal.measurements["dm_verity"]["root_hash"]
        assert f"{boot.ROOT_MARKER} {root_hash}" in result.console
        for pcr in ("4", "11"):
            assert result.pcrs[pcr] == minimal.measurements["tpm"]["pcrs"][pcr]
