"""TDX MRTD and RTMR prediction (images.tdx, images.tdvf).

The synthetic images are built here byte by byte and their expected MRTD is computed here from
the record definitions (TDX Module ABI, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND), written out again
without calling images.tdx. The real-firmware vectors and their provenance are in
fixtures/tdx/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from images import tdvf, tdx
from images.errors import ImageError, InputError
from images.tdvf import MalformedTdvf, NoTdvfMetadata

FIXTURES = Path(__file__).parent / "fixtures" / "tdx"
KNOWN = json.loads((FIXTURES / "mrtd.json").read_text())

FOOTER = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
TDX_OFFSET = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2").bytes_le
TDX_METADATA = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae").bytes_le
SEV_RESET_BLOCK = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e").bytes_le  # another entry
BFV, CFV, TD_HOB, TEMP_MEM, PERM_MEM = range(5)
EXTEND, AUG = 1, 2
IMAGE_SIZE = 0x10000
DESCRIPTOR_AT = IMAGE_SIZE - 0x400


@dataclass(frozen=True)
class Sec:
    data_offset: int
    raw: int
    address: int
    memory: int
    type: int
    attributes: int


# Every type/attribute combination the rules allow, with multi-page extended sections so the
# page order matters, and page contents that differ page by page.
SECTIONS = (
    Sec(0x0000, 0x3000, 0xFFFF0000, 0x3000, BFV, EXTEND),  # added and extended
    Sec(0x3000, 0x2000, 0xFFFE0000, 0x2000, CFV, 0),  # added only
    Sec(0x5000, 0x1000, 0xFFFD0000, 0x2000, BFV, 0),  # added only, memory past raw data
    Sec(0x6000, 0x1000, 0xFFFC0000, 0x1000, CFV, EXTEND),  # a second extended section
    Sec(0x7000, 0x1000, 0xFFFB0000, 0x1000, BFV, AUG),  # neither added nor extended
    Sec(0, 0, 0x809000, 0x2000, TD_HOB, 0),  # added, never extended
    Sec(0, 0, 0x800000, 0x3000, TEMP_MEM, 0),
    Sec(0, 0, 0x10000000, 0x4000, PERM_MEM, AUG),  # not added
)


def build_image(
    sections: tuple[Sec, ...] = SECTIONS,
    *,
    size: int = IMAGE_SIZE,
    descriptor_at: int = DESCRIPTOR_AT,
    tdx_entry: bool = True,
    signature: bytes = b"TDVF",
    version: int = 1,
    length_delta: int = 0,
    metadata_guid: bytes = TDX_METADATA,
    table_length: int | None = None,
    count: int | None = None,
    entry_length: int | None = None,
    offset_from_end: int | None = None,
) -> bytes:
    """An image laid out as edk2's reset vector lays out OVMF: data, descriptor, footer table."""
    image = bytearray((i * 7 + i // 4096) % 251 for i in range(size))  # varied page contents
    image[descriptor_at - 16 : descriptor_at] = metadata_guid
    count = len(sections) if count is None else count
    length = 16 + 32 * count + length_delta
    image[descriptor_at : descriptor_at + 16] = struct.pack(
        "<4sIII", signature, length, version, count
    )
    for i, s in enumerate(sections):
        at = descriptor_at + 16 + 32 * i
        image[at : at + 32] = struct.pack(
            "<IIQQII", s.data_offset, s.raw, s.address, s.memory, s.type, s.attributes
        )
    # Footer table: entries [data][u16 length][GUID], then [u16 table length][footer GUID],
    # 32 bytes before the end (the reset vector lives there).
    tdx = struct.pack("<I", size - descriptor_at if offset_from_end is None else offset_from_end)
    entries = b""
    if tdx_entry:
        tdx_length = len(tdx) + 18 if entry_length is None else entry_length
        entries += tdx + struct.pack("<H", tdx_length) + TDX_OFFSET
    entries += b"\x04\x00\x08\x00" + struct.pack("<H", 22) + SEV_RESET_BLOCK  # walked first
    total = len(entries) + 18 if table_length is None else table_length
    table = entries + struct.pack("<H", total) + FOOTER
    image[size - 32 - len(table) : size - 32] = table
    image[size - 32 :] = bytes(32)
    return bytes(image)


def expected_mrtd(image: bytes, sections: tuple[Sec, ...], two_pass: bool) -> str:
    """MRTD from the TDX module record definitions, independent of images.tdx."""

    def page_add(gpa: int) -> bytes:
        block = bytearray(128)
        block[0:12] = b"MEM.PAGE.ADD"
        block[16:24] = gpa.to_bytes(8, "little")
        return bytes(block)

    def mr_extend(gpa: int, content: bytes) -> bytes:
        block = bytearray(128)
        block[0:9] = b"MR.EXTEND"
        block[16:24] = gpa.to_bytes(8, "little")
        assert len(content) == 256
        return bytes(block) + content

    records: list[bytes] = []
    for s in sections:
        adds, extends = [], []
        for page in range(s.memory // 4096):
            adds.append(b"" if s.attributes & AUG else page_add(s.address + page * 4096))
            chunks = b""
            if s.attributes & EXTEND:
                for c in range(16):
                    at = s.data_offset + page * 4096 + c * 256
                    chunks += mr_extend(s.address + page * 4096 + c * 256, image[at : at + 256])
            extends.append(chunks)
        if two_pass:
            records += adds + extends
        else:
            for add, extend in zip(adds, extends, strict=True):
                records += [add, extend]
    return hashlib.sha384(b"".join(records)).hexdigest()


def write(tmp_path: Path, image: bytes, name: str = "fw.fd") -> Path:
    path = tmp_path / name
    path.write_bytes(image)
    return path


def sha256_or_none(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


class TestSyntheticMrtd:
    """MRTD of an image with every section kind equals the record-by-record definition."""

    @pytest.mark.parametrize("order", ["single-pass", "two-pass"])
    def test_matches_definition(self, tmp_path: Path, order: tdx.PageOrder) -> None:
        image = build_image()
        got = tdx.measure_mrtd(write(tmp_path, image), order)
        assert got.mrtd == expected_mrtd(image, SECTIONS, two_pass=order == "two-pass")
        assert got.page_order == order
        assert got.firmware_sha256 == hashlib.sha256(image).hexdigest()

    def test_page_orders_differ(self, tmp_path: Path) -> None:
        path = write(tmp_path, build_image())
        assert tdx.measure_mrtd(path).mrtd != tdx.measure_mrtd(path, "two-pass").mrtd

    def test_single_pass_is_default(self, tmp_path: Path) -> None:
        path = write(tmp_path, build_image())
        assert tdx.measure_mrtd(path) == tdx.measure_mrtd(path, "single-pass")

    def test_page_aug_sections_contribute_nothing(self, tmp_path: Path) -> None:
        without = tuple(s for s in SECTIONS if not s.attributes & AUG)
        a = tdx.measure_mrtd(write(tmp_path, build_image(), "a.fd")).mrtd
        b = tdx.measure_mrtd(write(tmp_path, build_image(without), "b.fd")).mrtd
        assert a == b

    def test_sections_reported(self, tmp_path: Path) -> None:
        got = tdx.measure_mrtd(write(tmp_path, build_image()))
        assert [(s.page_added, s.extended) for s in got.sections] == [
            (not s.attributes & AUG, bool(s.attributes & EXTEND)) for s in SECTIONS
        ]
        doc = json.loads(json.dumps(got.to_json()))
        assert doc["mrtd"] == got.mrtd and doc["page_order"] == "single-pass"
        assert doc["sections"][5]["type"] == "TD_HOB"

    def test_unknown_page_order(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="page order"):
            tdx.measure_mrtd(write(tmp_path, build_image()), "three-pass")  # type: ignore[arg-type]

    def test_records(self) -> None:
        assert tdx.page_add_record(0x1234) == b"MEM.PAGE.ADD" + bytes(4) + bytes.fromhex(
            "3412000000000000"
        ) + bytes(104)
        assert len(tdx.mr_extend_record(0, bytes(256))) == 384


def bad(section: Sec, **changes: int) -> tuple[Sec, ...]:
    return (replace(section, **changes),)


FINE_BFV = Sec(0x0000, 0x1000, 0xFFFF0000, 0x1000, BFV, EXTEND)
MALFORMED = {
    "no footer table": (b"\0" * 4096, NoTdvfMetadata, "no OVMF GUIDed table footer"),
    "too small": (b"", NoTdvfMetadata, "no OVMF GUIDed table footer"),
    "no TDX entry": (build_image(tdx_entry=False), NoTdvfMetadata, "no TDX metadata entry"),
    "table longer than image": (
        build_image(table_length=0xFFFF),
        MalformedTdvf,
        "footer table length",
    ),
    "entry length 0": (build_image(entry_length=0), MalformedTdvf, "has length 0"),
    "entry length too big": (build_image(entry_length=500), MalformedTdvf, "has length 500"),
    "offset outside image": (
        build_image(offset_from_end=IMAGE_SIZE + 1),
        MalformedTdvf,
        "points outside",
    ),
    "metadata GUID": (build_image(metadata_guid=bytes(16)), MalformedTdvf, "metadata GUID"),
    "signature": (build_image(signature=b"TDVX"), MalformedTdvf, "signature"),
    "version": (build_image(version=2), MalformedTdvf, "version 2"),
    "length": (build_image(length_delta=32), MalformedTdvf, "does not match"),
    "no sections": (build_image(()), MalformedTdvf, "at least one section"),
    "section table truncated": (
        build_image(count=100),
        MalformedTdvf,
        "section table truncated",
    ),
    "unaligned address": (build_image(bad(FINE_BFV, address=0xFFFF0100)), MalformedTdvf, "4 KiB"),
    "memory < raw": (build_image(bad(FINE_BFV, raw=0x2000)), MalformedTdvf, "< RawDataSize"),
    "unknown type": (build_image(bad(FINE_BFV, type=9)), MalformedTdvf, "type 9"),
    "reserved bits": (build_image(bad(FINE_BFV, attributes=5)), MalformedTdvf, "reserved"),
    "BFV without data": (build_image(bad(FINE_BFV, raw=0)), MalformedTdvf, "RawDataSize > 0"),
    "HOB with data": (
        build_image(bad(FINE_BFV, type=TD_HOB, attributes=0)),
        MalformedTdvf,
        "only BFV and CFV",
    ),
    "HOB extended": (
        build_image(bad(FINE_BFV, type=TD_HOB, raw=0, data_offset=0)),
        MalformedTdvf,
        "must not have MR.EXTEND",
    ),
    "TempMem extended": (
        build_image(bad(FINE_BFV, type=TEMP_MEM, raw=0, data_offset=0)),
        MalformedTdvf,
        "must not have MR.EXTEND",
    ),
    "PermMem added": (
        build_image(bad(FINE_BFV, type=PERM_MEM, raw=0, attributes=0)),
        MalformedTdvf,
        "must have PAGE.AUG",
    ),
    "extend and aug": (build_image(bad(FINE_BFV, attributes=3)), MalformedTdvf, "PAGE.AUG"),
    "extended past raw": (
        build_image(bad(FINE_BFV, memory=0x2000)),
        MalformedTdvf,
        "MemoryDataSize == RawDataSize",
    ),
    "raw data beyond file": (
        build_image(bad(FINE_BFV, data_offset=IMAGE_SIZE - 0x800)),
        MalformedTdvf,
        "beyond the end of the file",
    ),
}


class TestMalformed:
    """Anything but a well-formed TDVF image is refused with a typed error naming the file."""

    @pytest.mark.parametrize("case", sorted(MALFORMED))
    def test_refused(self, tmp_path: Path, case: str) -> None:
        image, error, words = MALFORMED[case]
        path = write(tmp_path, image)
        with pytest.raises(error, match=words) as caught:
            tdx.measure_mrtd(path)
        assert isinstance(caught.value, ImageError)
        assert str(path) in str(caught.value)

    def test_split_flash_hint(self, tmp_path: Path) -> None:
        image = build_image(bad(FINE_BFV, data_offset=IMAGE_SIZE - 0x800))
        with pytest.raises(MalformedTdvf) as caught:
            tdx.measure_mrtd(write(tmp_path, image))
        assert "OVMF_CODE" in caught.value.hint

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="cannot read firmware file"):
            tdx.measure_mrtd(tmp_path / "absent.fd")

    def test_parse_names_source(self) -> None:
        with pytest.raises(NoTdvfMetadata, match=r"^memory image: "):
            tdvf.parse(bytes(100), "memory image")


class TestRtmr:
    """RTMR extension and the direct-boot RTMR2 events, against hashes written out here."""

    def test_extend_and_replay(self) -> None:
        a, b = hashlib.sha384(b"a").digest(), hashlib.sha384(b"b").digest()
        once = hashlib.sha384(bytes(48) + a).digest()
        assert tdx.rtmr_extend(bytes(48), a) == once
        assert tdx.rtmr_replay([a, b]) == hashlib.sha384(once + b).digest()
        assert tdx.rtmr_replay([]) == bytes(48)

    def test_extend_sizes(self) -> None:
        with pytest.raises(InputError, match="48-byte"):
            tdx.rtmr_extend(bytes(48), hashlib.sha256(b"").digest())

    def test_load_options(self) -> None:
        opts = tdx.direct_boot_load_options
        assert opts("console=hvc0", initrd=True) == "initrd=initrd console=hvc0\0".encode(
            "utf-16-le"
        )
        assert opts("console=hvc0", initrd=True, layout="initrd-suffix") == (
            "console=hvc0 initrd=initrd\0".encode("utf-16-le")
        )
        assert opts("console=hvc0", initrd=False) == "console=hvc0\0".encode("utf-16-le")
        assert opts("", initrd=False) == b""
        assert opts("", initrd=True) == "initrd=initrd \0".encode("utf-16-le")
        with pytest.raises(InputError, match="ASCII"):
            opts("quiet é", initrd=False)
        with pytest.raises(InputError, match="layout"):
            opts("quiet", initrd=False, layout="middle")  # type: ignore[arg-type]

    def test_rtmr2_with_initrd(self) -> None:
        initrd = b"\x07" * 1000
        options = "initrd=initrd ro quiet\0".encode("utf-16-le")
        d1, d2 = hashlib.sha384(options).digest(), hashlib.sha384(initrd).digest()
        want = hashlib.sha384(hashlib.sha384(bytes(48) + d1).digest() + d2).hexdigest()
        got = tdx.predict_rtmr2_direct_boot("ro quiet", initrd)
        assert got.value == want
        assert [e.digest for e in got.events] == [d1.hex(), d2.hex()]
        assert json.loads(json.dumps(got.to_json()))["register"] == "RTMR2"

    def test_rtmr2_without_initrd(self) -> None:
        options = "ro quiet\0".encode("utf-16-le")
        want = hashlib.sha384(bytes(48) + hashlib.sha384(options).digest()).hexdigest()
        assert tdx.predict_rtmr2_direct_boot("ro quiet", None).value == want
        assert tdx.predict_rtmr2_direct_boot("", b"").value == bytes(48).hex()

    def test_other_registers_explained(self) -> None:
        assert sorted(tdx.NOT_PREDICTED) == ["RTMR0", "RTMR1", "RTMR3"]


DEBIAN = KNOWN["debian-bookworm-ovmf"]
DEBIAN_REFUSED = KNOWN["debian-bookworm-ovmf-refused"]
KATA = KNOWN["kata-static-3.30.0-ovmf-inteltdx"]


def _require(path: Path, sha256: str, what: str) -> None:
    got = sha256_or_none(path)
    if got is None:
        pytest.skip(f"{path} missing: {what} not installed")
    if got != sha256:
        pytest.skip(f"{path} is another build (sha256 {got}), not the recorded {what}")


class TestDebianOvmf:
    """Debian's OVMF.fd: our MRTD equals td-shim's independent script (fixtures/tdx/README.md)."""

    def test_matches_td_shim(self) -> None:
        path = Path(DEBIAN["file"]["path"])
        _require(path, DEBIAN["file"]["sha256"], f"ovmf {DEBIAN['package']['version']}")
        single = tdx.measure_mrtd(path, "single-pass")
        assert single.mrtd == DEBIAN["mrtd"]["single-pass"]
        # td-shim's script knows only the single-pass order: no independent two-pass answer
        assert tdx.measure_mrtd(path, "two-pass").mrtd != single.mrtd

    @pytest.mark.parametrize("name", sorted(DEBIAN_REFUSED["files"]))
    def test_split_images_refused(self, name: str) -> None:
        want = DEBIAN_REFUSED["files"][name]
        _require(Path(name), want["sha256"], f"ovmf {DEBIAN_REFUSED['package_version']}")
        with pytest.raises(getattr(tdvf, want["error"])):
            tdx.measure_mrtd(name)


class TestKataHardware:
    """kata-static 3.30.0's TDVF: our MRTD equals the value real TDX hardware reported."""

    def test_matches_hardware(self) -> None:
        env = os.environ.get("COCO_TDX_FIRMWARE")
        if not env:
            pytest.skip("set COCO_TDX_FIRMWARE to kata-static 3.30.0's OVMF.inteltdx.fd to run")
        path = Path(env)
        _require(path, KATA["file"]["sha256"], "kata-static 3.30.0 OVMF.inteltdx.fd")
        single = tdx.measure_mrtd(path, "single-pass").mrtd
        two = tdx.measure_mrtd(path, "two-pass").mrtd
        assert single == KATA["mrtd"], f"single-pass {single}, two-pass {two}"


class TestCommandLine:
    """`coco image measure tdx`: JSON with mrtd and the KBS reference values."""

    def run(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        from cli import main

        code = main.main(["image", "measure", "tdx", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    def test_mrtd_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        image = build_image()
        code, out, _ = self.run(capsys, "--firmware", str(write(tmp_path, image)))
        assert code == 0
        doc = json.loads(out)
        assert doc["mrtd"] == expected_mrtd(image, SECTIONS, two_pass=False)
        assert doc["page_order"] == "single-pass"
        assert doc["reference_values"] == {"mr_td": [doc["mrtd"]]}
        assert "rtmr2" not in doc and set(doc["not_predicted"]) == {"RTMR0", "RTMR1", "RTMR3"}

    def test_two_pass_and_rtmr2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        image = build_image()
        initrd = write(tmp_path, b"initrd bytes", "initrd.img")
        code, out, _ = self.run(
            capsys,
            "--firmware",
            str(write(tmp_path, image)),
            "--page-order",
            "two-pass",
            "--cmdline",
            "console=hvc0",
            "--initrd",
            str(initrd),
        )
        assert code == 0
        doc = json.loads(out)
        assert doc["mrtd"] == expected_mrtd(image, SECTIONS, two_pass=True)
        predicted = tdx.predict_rtmr2_direct_boot("console=hvc0", b"initrd bytes")
        assert doc["rtmr2"]["value"] == predicted.value
        assert doc["reference_values"]["rtmr_2"] == [predicted.value]

    def test_choices_match_the_module(self) -> None:
        from cli import main

        parser = main.build_parser()
        with pytest.raises(SystemExit):
            parser.parse_args(["image", "measure", "tdx", "--firmware", "x", "--page-order", "z"])
        tdx_parser = parser._subparsers._group_actions[0].choices["image"]  # type: ignore[union-attr]
        measure = tdx_parser._subparsers._group_actions[0].choices["measure"]
        sub = measure._subparsers._group_actions[0].choices["tdx"]
        choices = {a.dest: tuple(a.choices) for a in sub._actions if a.choices}
        assert choices["page_order"] == tdx.PAGE_ORDERS
        assert choices["load_options"] == tdx.LOAD_OPTIONS_LAYOUTS

    def test_not_a_tdvf(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = self.run(capsys, "--firmware", str(write(tmp_path, b"\0" * 4096)))
        assert code == 2
        assert "error:" in err and "Traceback" not in err


class TestMeasurementsJson:
    """The image build's measurements.json carries MRTD as the KBS reference value mr_td."""

    def recipe(self, tmp_path: Path, measure: str) -> object:
        from images import recipe

        path = tmp_path / "r.toml"
        path.write_text(f'name = "r"\n[measure]\n{measure}\n')
        return recipe.load(str(path))

    def test_mr_td_from_the_recipe_firmware(self, tmp_path: Path) -> None:
        from images import report

        image = build_image()
        firmware = write(tmp_path, image)
        spec = self.recipe(tmp_path, f'tdx_firmware = "{firmware}"\ntdx_page_order = "two-pass"')
        block, values = report.tdx_measurements(spec)  # type: ignore[arg-type]
        mrtd = expected_mrtd(image, SECTIONS, two_pass=True)
        assert block["covered"] is True and block["mrtd"] == mrtd
        assert block["page_order"] == "two-pass"
        assert values == {"mr_td": [mrtd]}

    def test_no_firmware_no_values(self, tmp_path: Path) -> None:
        from images import report

        block, values = report.tdx_measurements(self.recipe(tmp_path, ""))  # type: ignore[arg-type]
        assert block["covered"] is False and values == {}

    def test_unknown_page_order_refused(self, tmp_path: Path) -> None:
        from images.errors import RecipeError

        with pytest.raises(RecipeError, match=r"measure\.tdx_page_order"):
            self.recipe(tmp_path, 'tdx_page_order = "three-pass"')
