"""TDX launch measurements: MRTD from a TDVF firmware file, RTMR extension, and RTMR2 of a direct
kernel boot. Scope: the values a verifier compares with a TD quote; parsing lives in images.tdvf.

MRTD (TDX Module ABI Specification, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND; intel/tdx-module
src/vmm_dispatcher/api_calls/tdh_mem_page_add.c and tdh_mr_extend.c): one SHA-384 over the records
of every TDVF section in table order (QEMU target/i386/kvm/tdx.c tdx_init_fw_mem_region):
- TDH.MEM.PAGE.ADD, per 4 KiB page unless the section has PAGE.AUG: a 128-byte block,
  "MEM.PAGE.ADD" zero-padded to 16 bytes, the page GPA as u64 little-endian, zeros;
- TDH.MR.EXTEND, per 256-byte chunk of a page of a section with MR.EXTEND: a 128-byte block,
  "MR.EXTEND" zero-padded to 16 bytes, the chunk GPA as u64 little-endian, zeros, then the 256
  bytes of the chunk (from the image at DataOffset). TD_HOB and TempMem are added, never extended.
Page order: current KVM adds a page and then extends its 16 chunks before the next page
(arch/x86/kvm/vmx/tdx.c tdx_gmem_post_populate: TDH.MEM.PAGE.ADD, then TDH.MR.EXTEND per
TDX_EXTENDMR_CHUNKSIZE), the flow td-shim doc/tdshim_spec.md also writes down: "single-pass".
Older TDX stacks added all pages of a section before extending them: "two-pass" (dstack-mr
src/tdvf.rs PageAddOrder::TwoPass; mismatch reports td-shim #683 and #740, virtee/tdx-measure #18).

RTMRs (edk2 OvmfPkg/IntelTdx/TdxMeasurementLib/TdxMeasurementCommon.c
TdxMeasurementMapPcrToMrIndex, UEFI 2.10 CC measurement): PCR 1 and 7 -> RTMR0, PCR 2-6 -> RTMR1,
PCR 8-15 -> RTMR2; each event extends RTMR = SHA384(RTMR || SHA384(data)), from 48 zero bytes.
Only RTMR2 of a direct boot (QEMU -kernel/-initrd/-append, as kata boots) is predicted; why the
others are not is in NOT_PREDICTED. RTMR2's events, in order:
1. the Linux EFI stub measures LOADED_IMAGE::LoadOptions (all LoadOptionsSize bytes) as a tagged
   event into PCR 9 (drivers/firmware/efi/libstub/efi-stub-helper.c efi_convert_cmdline), and
2. the initrd it loaded through LINUX_EFI_INITRD_MEDIA_GUID, when not empty (efi_load_initrd,
   event "Linux initrd", PCR 9). OVMF serves QEMU's initrd blob unchanged there
   (OvmfPkg/QemuKernelLoaderFsDxe, which itself measures none of the blobs).
LoadOptions are what OVMF hands the kernel: the fw_cfg command line as UTF-16 with a NUL, with
"initrd=initrd " in front when there is an initrd (edk2 OvmfPkg/Library/X86QemuLoadImageLib
QemuLoadKernelImage since a2ac0fea49, in edk2-stable202508 and later, so kata 4.0.0's TDVF from
edk2-stable202511) or " initrd=initrd" after it (older edk2; dstack-mr reproduces that form).
Assumptions: the kernel is started through its EFI stub (OVMF LoadImage; edk2-stable202511
refuses the legacy loader in confidential guests, commit 5a6a9f7955), its EFI stub measures
through EFI_CC_MEASUREMENT_PROTOCOL when there is no TCG2 protocol (the efi_measure_tagged_event
CC fallback), no shim ("kernel " prefix), and nothing in the guest extends RTMR2 before the quote
is taken. Not yet proven against a TD quote.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from . import tdvf
from .errors import InputError
from .tdvf import PAGE_SIZE, TdvfMetadata, TdvfSection

PageOrder = Literal["single-pass", "two-pass"]
PAGE_ORDERS: tuple[str, ...] = get_args(PageOrder)
LoadOptionsLayout = Literal["initrd-prefix", "initrd-suffix"]
LOAD_OPTIONS_LAYOUTS: tuple[str, ...] = get_args(LoadOptionsLayout)

RECORD_SIZE = 128  # intel/tdx-module src/common/crypto/sha384.h: one SHA-384 block
CHUNK_SIZE = 256  # TDH.MR.EXTEND granularity (KVM TDX_EXTENDMR_CHUNKSIZE)
RTMR_SIZE = 48
INITRD_OPTION = "initrd=initrd"

NOT_PREDICTED = {
    "RTMR0": "TDVF configuration: the TD HOB QEMU builds (guest memory size and layout), the CFV "
    "variable store, the Secure Boot variables (SecureBoot, PK, KEK, db, dbx), the ACPI tables "
    "QEMU generates (vCPUs, memory, devices) and BootOrder/Boot#### (edk2 TdTcg2Dxe and "
    "OvmfPkg/IntelTdx; dstack-mr src/tdvf.rs rtmr0_log_*): state of the VM configuration, not of "
    "the image; dstack-mr reproduces it only for its own fixed QEMU setup",
    "RTMR1": "the Authenticode SHA-384 of the kernel as loaded, after QEMU patches its setup "
    "header (loader type, heap end, command line pointer, initrd address and size, the address "
    "depending on guest memory and ACPI table size: QEMU x86_load_linux, dstack-mr "
    "src/kernel.rs patch_kernel), then the boot manager's EV_EFI_ACTION, EV_SEPARATOR and "
    "ExitBootServices events, whose order depends on the edk2 version; needs the VM "
    "configuration and a real TD event log to prove",
    "RTMR3": "no PCR maps to it (TdxMeasurementMapPcrToMrIndex): firmware and kernel boot leave "
    "it zero; it is for the guest's run-time use",
}


@dataclass(frozen=True)
class TdxMeasurement:
    """MRTD of one firmware file under one page order."""

    firmware: str
    firmware_sha256: str
    firmware_size: int
    page_order: str
    mrtd: str  # 96 hex digits
    sections: tuple[TdvfSection, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "firmware": {
                "path": self.firmware,
                "sha256": self.firmware_sha256,
                "size": self.firmware_size,
            },
            "page_order": self.page_order,
            "mrtd": self.mrtd,
            "sections": [section.to_json() for section in self.sections],
        }


@dataclass(frozen=True)
class RtmrEvent:
    description: str
    digest: str  # SHA-384 of the measured data, hex


@dataclass(frozen=True)
class RtmrPrediction:
    register: str
    events: tuple[RtmrEvent, ...]
    value: str  # hex
    assumptions: str

    def to_json(self) -> dict[str, Any]:
        return {
            "register": self.register,
            "value": self.value,
            "events": [{"description": e.description, "digest": e.digest} for e in self.events],
            "assumptions": self.assumptions,
        }


def page_add_record(gpa: int) -> bytes:
    """The 128-byte block TDH.MEM.PAGE.ADD hashes into MRTD."""
    return b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(RECORD_SIZE - 24)


def mr_extend_record(gpa: int, chunk: bytes) -> bytes:
    """The 128-byte header block plus the 256-byte chunk TDH.MR.EXTEND hashes into MRTD."""
    header = b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(RECORD_SIZE - 24)
    return header + chunk


def _page_add(hasher: Any, section: TdvfSection, page: int) -> None:
    if section.page_added:
        hasher.update(page_add_record(section.memory_address + page * PAGE_SIZE))


def _extend(hasher: Any, data: bytes, section: TdvfSection, page: int) -> None:
    if not section.extended:
        return
    for chunk in range(0, PAGE_SIZE, CHUNK_SIZE):
        at = section.data_offset + page * PAGE_SIZE + chunk
        gpa = section.memory_address + page * PAGE_SIZE + chunk
        hasher.update(mr_extend_record(gpa, data[at : at + CHUNK_SIZE]))


def _check_page_order(page_order: str) -> None:
    if page_order not in PAGE_ORDERS:
        raise InputError(
            f"unknown page order {page_order!r}", hint=f"choose one of {', '.join(PAGE_ORDERS)}"
        )


def compute_mrtd(data: bytes, metadata: TdvfMetadata, page_order: PageOrder) -> bytes:
    """MRTD (48 bytes) of an image whose metadata images.tdvf.parse returned."""
    _check_page_order(page_order)
    hasher = hashlib.sha384()
    for section in metadata.sections:
        pages = range(section.pages)
        if page_order == "single-pass":
            for page in pages:
                _page_add(hasher, section, page)
                _extend(hasher, data, section, page)
        else:
            for page in pages:
                _page_add(hasher, section, page)
            for page in pages:
                _extend(hasher, data, section, page)
    return hasher.digest()


def measure_mrtd(path: str | Path, page_order: PageOrder = "single-pass") -> TdxMeasurement:
    """Read a TDVF firmware file (the unified image QEMU boots with -bios) and compute MRTD."""
    _check_page_order(page_order)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read firmware file ({exc.strerror})") from None
    metadata = tdvf.parse(data, str(path))
    return TdxMeasurement(
        firmware=str(path),
        firmware_sha256=hashlib.sha256(data).hexdigest(),
        firmware_size=len(data),
        page_order=page_order,
        mrtd=compute_mrtd(data, metadata, page_order).hex(),
        sections=metadata.sections,
    )


def rtmr_extend(rtmr: bytes, digest: bytes) -> bytes:
    """One extend (TDX Module ABI TDG.MR.RTMR.EXTEND): SHA384(RTMR || 48-byte digest)."""
    if len(rtmr) != RTMR_SIZE or len(digest) != RTMR_SIZE:
        raise InputError(
            f"an RTMR extend takes a {RTMR_SIZE}-byte register and a {RTMR_SIZE}-byte SHA-384 "
            f"digest, got {len(rtmr)} and {len(digest)} bytes"
        )
    return hashlib.sha384(rtmr + digest).digest()


def rtmr_replay(digests: Iterable[bytes]) -> bytes:
    """The register after extending each digest in turn, from 48 zero bytes."""
    rtmr = bytes(RTMR_SIZE)
    for digest in digests:
        rtmr = rtmr_extend(rtmr, digest)
    return rtmr


def direct_boot_load_options(
    cmdline: str, *, initrd: bool, layout: LoadOptionsLayout = "initrd-prefix"
) -> bytes:
    """LoadOptions OVMF gives a -kernel boot (X86QemuLoadImageLib), b"" when it passes none."""
    if layout not in LOAD_OPTIONS_LAYOUTS:
        raise InputError(
            f"unknown LoadOptions layout {layout!r}",
            hint=f"choose one of {', '.join(LOAD_OPTIONS_LAYOUTS)}",
        )
    if not cmdline.isascii() or "\0" in cmdline:
        # OVMF widens each fw_cfg byte to CHAR16 (UnicodeSPrintAsciiFormat "%a"): ASCII only here
        raise InputError("the kernel command line must be ASCII without NUL characters")
    text = cmdline
    if initrd:
        prefix = layout == "initrd-prefix"
        text = f"{INITRD_OPTION} {cmdline}" if prefix else f"{cmdline} {INITRD_OPTION}"
    return (text + "\0").encode("utf-16-le") if text else b""


def predict_rtmr2_direct_boot(
    cmdline: str, initrd: bytes | None, layout: LoadOptionsLayout = "initrd-prefix"
) -> RtmrPrediction:
    """RTMR2 after a direct kernel boot with this -append command line and -initrd contents."""
    events = []
    options = direct_boot_load_options(cmdline, initrd=bool(initrd), layout=layout)
    if options:
        events.append(RtmrEvent("LOADED_IMAGE::LoadOptions", hashlib.sha384(options).hexdigest()))
    if initrd:
        events.append(RtmrEvent("Linux initrd", hashlib.sha384(initrd).hexdigest()))
    value = rtmr_replay(bytes.fromhex(event.digest) for event in events)
    assumptions = (
        f"kernel booted by OVMF through its EFI stub with LoadOptions layout {layout}, EFI stub "
        "measuring through EFI_CC_MEASUREMENT_PROTOCOL, no shim, no later RTMR2 extends"
    )
    return RtmrPrediction("RTMR2", tuple(events), value.hex(), assumptions)
