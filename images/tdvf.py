"""TDVF metadata: where a TDX firmware image says which guest pages the VMM must add and measure.

Scope: parse and validate the metadata of one firmware file; no hashing (images.tdx measures).
Non-goals: td-shim's extra section types (Payload, PayloadParam, TD_INFO, TD_PARAMS: types 5-8
of td-shim doc/tdshim_spec.md), the legacy TDVF descriptor pointer at 0x20 from the end (only
the OVMF GUIDed footer table is read, as QEMU does), split flash images.

Layout (TDVF Design Guide rev 1.01, linked from edk2 OvmfPkg/IntelTdx/README.md, sections "TDVF
Metadata Location" and "TDVF descriptor"; emitted by edk2 OvmfPkg/ResetVector/X64/
IntelTdxMetadata.asm, unchanged from 2021 until its 2026 rename to IntelTdxMetadata.nasm.inc;
read by QEMU hw/i386/tdvf.c and pc_system_ovmf_table_find):
- the OVMF footer GUID sits 48 bytes from the end of the image (32 bytes before the end are the
  reset vector), preceded by a u16 length of the whole table (entries + this 18-byte footer);
- walking backwards, each entry is [data][u16 entry length][GUID], the length covering all three;
- the entry with the TDX metadata offset GUID ends with a u32: the descriptor's offset from the
  end of the image; 16 bytes before the descriptor sits the TDVF metadata GUID;
- descriptor: "TDVF", u32 Length (16 + 32 * sections), u32 Version (1), u32 NumberOfSections,
  then sections of 32 bytes: u32 DataOffset, u32 RawDataSize, u64 MemoryAddress,
  u64 MemoryDataSize, u32 Type, u32 Attributes, all little-endian.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from .errors import InputError

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
TDX_METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")
FOOTER_GUID_FROM_END = 48  # the footer GUID's offset counted from the end of the image
ENTRY_TRAILER = 18  # u16 length + GUID closing every table entry
DESCRIPTOR_SIZE = 16
SECTION_SIZE = 32
PAGE_SIZE = 4096  # TDVF Design Guide: MemoryAddress and MemoryDataSize are 4 KiB aligned

# Attributes (TDVF Design Guide table "TDVF_SECTION.Attributes"; td-shim doc/tdshim_spec.md
# Table 1.1-3): bit 0 MR.EXTEND, bit 1 PAGE.AUG, bits 31:2 reserved, must be 0.
ATTR_MR_EXTEND = 0x1
ATTR_PAGE_AUG = 0x2


class SectionType(IntEnum):
    """TDVF_SECTION.Type (TDVF Design Guide; IntelTdxMetadata.asm TDX_METADATA_SECTION_TYPE_*)."""

    BFV = 0
    CFV = 1
    TD_HOB = 2
    TEMP_MEM = 3
    PERM_MEM = 4


class TdvfError(InputError):
    """A firmware file's TDVF metadata is missing or malformed; the message names the file."""


class NoTdvfMetadata(TdvfError):
    """The file is not a TDX firmware image: no OVMF footer table or no TDX metadata entry."""


class MalformedTdvf(TdvfError):
    """The file has TDVF metadata, but a table is truncated or a field breaks the layout rules."""


@dataclass(frozen=True)
class TdvfSection:
    index: int
    data_offset: int
    raw_data_size: int
    memory_address: int
    memory_data_size: int
    type: SectionType
    attributes: int

    @property
    def pages(self) -> int:
        return self.memory_data_size // PAGE_SIZE

    @property
    def page_added(self) -> bool:
        """TDH.MEM.PAGE.ADD for every page unless PAGE.AUG (then the TD accepts them later)."""
        return not self.attributes & ATTR_PAGE_AUG

    @property
    def extended(self) -> bool:
        return bool(self.attributes & ATTR_MR_EXTEND)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type.name,
            "data_offset": self.data_offset,
            "raw_data_size": self.raw_data_size,
            "memory_address": f"{self.memory_address:#x}",
            "memory_data_size": self.memory_data_size,
            "attributes": self.attributes,
            "page_added": self.page_added,
            "extended": self.extended,
        }


@dataclass(frozen=True)
class TdvfMetadata:
    source: str
    image_size: int
    descriptor_offset: int
    sections: tuple[TdvfSection, ...]


def _u16(data: bytes, at: int) -> int:
    return int(struct.unpack_from("<H", data, at)[0])


def _guid(data: bytes, at: int) -> uuid.UUID:
    return uuid.UUID(bytes_le=data[at : at + 16])


def _metadata_offset(data: bytes, source: str) -> int:
    """The descriptor's offset from the end of the image, from the OVMF footer table."""
    size = len(data)
    footer = size - FOOTER_GUID_FROM_END
    if footer < 2 or _guid(data, footer) != FOOTER_GUID:
        raise NoTdvfMetadata(
            f"{source}: no OVMF GUIDed table footer ({FOOTER_GUID}) {FOOTER_GUID_FROM_END} bytes "
            "before the end: not an OVMF/TDVF firmware image",
            hint="pass the unified TDX firmware file QEMU boots with -bios (e.g. OVMF.fd)",
        )
    table_length = _u16(data, footer - 2)
    end = footer - 2  # entries end where the footer's length field starts
    start = footer + 16 - table_length
    if table_length < ENTRY_TRAILER or start < 0:
        raise MalformedTdvf(
            f"{source}: OVMF footer table length {table_length} does not fit the image "
            f"({size} bytes; at least {ENTRY_TRAILER} needed)"
        )
    while end > start:
        if end - start < ENTRY_TRAILER:
            raise MalformedTdvf(f"{source}: truncated OVMF table entry ending at {end:#x}")
        guid = _guid(data, end - 16)
        length = _u16(data, end - ENTRY_TRAILER)
        if length < ENTRY_TRAILER or length > end - start:
            raise MalformedTdvf(
                f"{source}: OVMF table entry {guid} at {end:#x} has length {length}, outside "
                f"{ENTRY_TRAILER}..{end - start} (table truncated or corrupt)"
            )
        if guid == TDX_METADATA_OFFSET_GUID:
            if length < ENTRY_TRAILER + 4:
                raise MalformedTdvf(f"{source}: TDX metadata entry too short for its u32 offset")
            return int(struct.unpack_from("<I", data, end - ENTRY_TRAILER - 4)[0])
        end -= length
    raise NoTdvfMetadata(
        f"{source}: the OVMF footer table has no TDX metadata entry ({TDX_METADATA_OFFSET_GUID}):"
        " firmware built without TDX support",
        hint="use a TDX-enabled build (edk2 OvmfPkgX64.dsc or IntelTdx/IntelTdxX64.dsc)",
    )


def _section(data: bytes, at: int, index: int, source: str) -> TdvfSection:
    offset, raw, address, memory, kind, attributes = struct.unpack_from("<IIQQII", data, at)
    where = f"{source}: TDVF section {index}"
    try:
        section_type = SectionType(kind)
    except ValueError:
        raise MalformedTdvf(f"{where} has type {kind}, not a TDVF type (0-4)") from None
    name = f"{where} ({section_type.name})"
    # QEMU hw/i386/tdvf.c tdvf_parse_and_check_section_entry, td-shim tdshim_spec.md table 1.1-2
    problems = []
    if address % PAGE_SIZE or memory % PAGE_SIZE:
        problems.append("MemoryAddress and MemoryDataSize must be 4 KiB aligned")
    if memory < raw:
        problems.append(f"MemoryDataSize {memory:#x} < RawDataSize {raw:#x}")
    if attributes & ~(ATTR_MR_EXTEND | ATTR_PAGE_AUG):
        problems.append(f"reserved attribute bits set ({attributes:#x})")
    if section_type in (SectionType.BFV, SectionType.CFV) and raw == 0:
        problems.append("a firmware volume section needs RawDataSize > 0")
    if section_type not in (SectionType.BFV, SectionType.CFV) and raw != 0:
        problems.append("only BFV and CFV carry raw data from the image")
    if section_type in (SectionType.TD_HOB, SectionType.TEMP_MEM) and attributes & ATTR_MR_EXTEND:
        # The design guide requires 0; QEMU would extend the HOB it builds, unknown here.
        problems.append("TD_HOB and TempMem must not have MR.EXTEND")
    if section_type is SectionType.PERM_MEM and not attributes & ATTR_PAGE_AUG:
        problems.append("PermMem must have PAGE.AUG")
    if attributes & ATTR_MR_EXTEND and attributes & ATTR_PAGE_AUG:
        problems.append("MR.EXTEND with PAGE.AUG: only pages added by PAGE.ADD can be extended")
    if attributes & ATTR_MR_EXTEND and memory != raw:
        # The guide zero-fills past RawDataSize, QEMU copies image bytes: the content is ambiguous.
        problems.append("an extended section must have MemoryDataSize == RawDataSize")
    if problems:
        raise MalformedTdvf(f"{name}: " + "; ".join(problems))
    if offset + raw > len(data):
        raise MalformedTdvf(
            f"{name}: raw data [{offset:#x}, {offset + raw:#x}) lies beyond the end of the file "
            f"({len(data):#x} bytes)",
            hint="this looks like one half of a split flash image (OVMF_CODE*.fd); TDX boots the "
            "unified image (QEMU -bios), e.g. OVMF.fd",
        )
    return TdvfSection(index, offset, raw, address, memory, section_type, attributes)


def parse(data: bytes, source: str) -> TdvfMetadata:
    """Parse and validate the TDVF metadata of a firmware image; source names it in errors."""
    from_end = _metadata_offset(data, source)
    at = len(data) - from_end
    if from_end > len(data) or at < 16 or at + DESCRIPTOR_SIZE > len(data):
        raise MalformedTdvf(
            f"{source}: TDVF descriptor offset {from_end:#x} from the end points outside the image"
        )
    if _guid(data, at - 16) != TDX_METADATA_GUID:
        raise MalformedTdvf(f"{source}: no TDVF metadata GUID ({TDX_METADATA_GUID}) at {at:#x}")
    signature, length, version, count = struct.unpack_from("<4sIII", data, at)
    if signature != b"TDVF":
        raise MalformedTdvf(f"{source}: descriptor at {at:#x} has signature {signature!r}")
    if version != 1:
        raise MalformedTdvf(f"{source}: TDVF descriptor version {version}, only 1 is defined")
    if count == 0 or length != DESCRIPTOR_SIZE + SECTION_SIZE * count:
        raise MalformedTdvf(
            f"{source}: TDVF descriptor length {length} does not match {count} sections "
            f"(expected {DESCRIPTOR_SIZE} + {SECTION_SIZE} * sections, at least one section)"
        )
    if at + length > len(data):
        raise MalformedTdvf(
            f"{source}: TDVF section table truncated: {length} bytes from {at:#x}, image ends at "
            f"{len(data):#x}"
        )
    sections = tuple(
        _section(data, at + DESCRIPTOR_SIZE + SECTION_SIZE * i, i, source) for i in range(count)
    )
    return TdvfMetadata(source, len(data), at, sections)
