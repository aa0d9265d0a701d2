"""Predicted measurements: TPM PCR 4 and PCR 11 for the UKI boot path, and the SEV-SNP launch
digest for recorded parameters. Every rule here is proven by a real boot (tests/images).

PCR 11 (systemd-stub 252, src/boot/efi/stub.c + measure.c): for each UKI section present, in the
order .linux, .osrel, .cmdline, .initrd, .splash, .dtb, .pcrpkey (.pcrsig never), two extends:
SHA-256 of the section name with its trailing NUL, then SHA-256 of the section contents (virtual
size). No systemd in the initramfs, so no systemd-pcrphase extends follow.

PCR 4 (OVMF 2022.11, SecurityPkg DxeTpm2MeasureBootLib + Tcg2Dxe), boot path assumed: QEMU q35
with -nodefaults and the image as the only bootable disk, no Secure Boot, the firmware's first boot
option is the disk's removable-media path EFI/BOOT/BOOTX64.EFI = the UKI. Events, in order:
EV_EFI_ACTION "Calling EFI Application from Boot Option" (no NUL), EV_SEPARATOR 00000000,
EV_EFI_BOOT_SERVICES_APPLICATION = Authenticode hash of the UKI, and a second application event for
the kernel the stub hands to LoadImage (Authenticode hash of the embedded .linux PE, certificate
table excluded). Any other boot option tried first (q35's default DVD drive, a network boot
option) adds "Returning from EFI Application..." and another "Calling..." and changes PCR 4.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pefile  # type: ignore[import-untyped]

from .errors import ImageError

# systemd 252 src/fundamental/tpm-pcr.c unified_sections[] order, without .pcrsig
UKI_SECTION_ORDER = (".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey")
CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"

# Why the other PCRs are not predicted (recorded in measurements.json).
NOT_PREDICTED = {
    "0": "firmware code: depends on the platform's firmware build (the cloud's or the host's "
    "OVMF), not on the image",
    "1": "firmware configuration and boot variables (BootOrder, Boot####): platform state",
    "2": "option ROMs and drivers of the platform's devices",
    "3": "option ROM configuration of the platform",
    "5": "GPT event and ExitBootServices events: the event layout (UEFI_GPT_DATA with the "
    "firmware's view of the partition entries) is firmware-specific; not proven here",
    "6": "platform manufacturer events",
    "7": "Secure Boot state and the platform's key databases (PK/KEK/db/dbx)",
    "8": "not extended at boot; CoCo binds initdata here on vTPM platforms (KBS issue)",
    "9": "the Linux 6.1 EFI stub measures its load options and the initrd loaded through "
    "LINUX_EFI_INITRD_MEDIA_GUID here; the tagged-event layout is not proven here",
    "10": "IMA: not used by this image",
    "12": "systemd-stub credentials and sysext: none in this image (stays zero, not asserted)",
    "13": "systemd-stub sysext images: none in this image (stays zero, not asserted)",
}


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def extend(pcr: bytes, digest: bytes) -> bytes:
    return sha256(pcr + digest)


def replay(digests: list[bytes]) -> bytes:
    pcr = b"\0" * 32
    for digest in digests:
        pcr = extend(pcr, digest)
    return pcr


def authenticode_sha256(image: bytes) -> bytes:
    """The PE/COFF Authenticode hash as EDK2 computes it for TPM measurement (Tcg2MeasurePeImage
    in SecurityPkg/Library/DxeTpm2MeasureBootLib): checksum and certificate-table entry skipped,
    sections in file order, trailing data hashed minus the certificate table."""
    pe = pefile.PE(data=image, fast_load=True)
    opt = pe.OPTIONAL_HEADER
    header_start = pe.DOS_HEADER.e_lfanew + 4 + 20  # PE signature + COFF file header
    checksum_at = header_start + 64
    is_pe32_plus = opt.Magic == 0x20B
    directories_at = header_start + (112 if is_pe32_plus else 96)
    cert_entry_at = directories_at + 4 * 8
    size_of_headers = opt.SizeOfHeaders
    digest = hashlib.sha256()
    digest.update(image[:checksum_at])
    cert_size = 0
    if opt.NumberOfRvaAndSizes > 4:
        digest.update(image[checksum_at + 4 : cert_entry_at])
        digest.update(image[cert_entry_at + 8 : size_of_headers])
        cert_size = struct.unpack_from("<I", image, cert_entry_at + 4)[0]
    else:
        digest.update(image[checksum_at + 4 : size_of_headers])
    hashed = size_of_headers
    for section in sorted(pe.sections, key=lambda s: s.PointerToRawData):
        if section.SizeOfRawData == 0:
            continue
        start = section.PointerToRawData
        digest.update(image[start : start + section.SizeOfRawData])
        hashed += section.SizeOfRawData
    if len(image) > hashed:
        extra = len(image) - hashed - cert_size
        if extra > 0:
            digest.update(image[hashed : hashed + extra])
    return digest.digest()


@dataclass(frozen=True)
class UkiSection:
    name: str
    data: bytes  # contents as loaded: virtual size, zero-padded past the raw data


def uki_sections(uki: bytes) -> dict[str, UkiSection]:
    pe = pefile.PE(data=uki, fast_load=True)
    sections = {}
    for section in pe.sections:
        name = section.Name.rstrip(b"\0").decode()
        size = section.Misc_VirtualSize
        raw = uki[section.PointerToRawData : section.PointerToRawData + section.SizeOfRawData]
        data = raw[:size] + b"\0" * max(0, size - len(raw))
        sections[name] = UkiSection(name, data)
    return sections


def pcr11_events(uki: bytes) -> list[dict[str, str]]:
    sections = uki_sections(uki)
    events = []
    for name in UKI_SECTION_ORDER:
        if name in sections:
            events.append(
                {"event": f"section name {name}", "sha256": sha256(name.encode() + b"\0").hex()}
            )
            events.append(
                {"event": f"section data {name}", "sha256": sha256(sections[name].data).hex()}
            )
    return events


def pcr4_events(uki: bytes) -> list[dict[str, str]]:
    kernel = uki_sections(uki).get(".linux")
    if kernel is None:
        raise ImageError("the UKI has no .linux section")
    return [
        {
            "event": "EV_EFI_ACTION Calling EFI Application from Boot Option",
            "sha256": sha256(CALLING_EFI_APPLICATION).hex(),
        },
        {"event": "EV_SEPARATOR", "sha256": sha256(b"\0\0\0\0").hex()},
        {
            "event": "EV_EFI_BOOT_SERVICES_APPLICATION EFI/BOOT/BOOTX64.EFI (the UKI)",
            "sha256": authenticode_sha256(uki).hex(),
        },
        {
            "event": "EV_EFI_BOOT_SERVICES_APPLICATION kernel loaded by systemd-stub (.linux)",
            "sha256": authenticode_sha256(kernel.data).hex(),
        },
    ]


def predict_pcrs(uki: bytes) -> dict[str, Any]:
    events = {"4": pcr4_events(uki), "11": pcr11_events(uki)}
    values = {
        pcr: replay([bytes.fromhex(e["sha256"]) for e in evs]).hex() for pcr, evs in events.items()
    }
    return {"bank": "sha256", "pcrs": values, "events": events}


def snp_launch_digests(
    firmware: Path, vcpus: tuple[int, ...], vcpu_type: str, vmm_type: str, guest_features: str
) -> list[dict[str, Any]]:
    """SEV-SNP launch digests (sev-snp-measure, mode snp) for each vCPU count.

    The disk boot path loads the UKI from the disk, so no kernel/initrd/cmdline hashes are part
    of the launch digest (those need -kernel direct boot with an OVMF built with the SEV hashes
    table, AmdSev; Debian's OVMF has none): the digest covers firmware, vCPU count and model and
    guest features. The image itself is bound through the vTPM PCRs on platforms with a vTPM.
    """
    from sevsnpmeasure import guest, vcpu_types, vmm_types
    from sevsnpmeasure.sev_mode import SevMode

    if vcpu_type not in vcpu_types.CPU_SIGS:
        raise ImageError(
            f"unknown vCPU type {vcpu_type!r}",
            hint=f"one of: {', '.join(sorted(vcpu_types.CPU_SIGS))}",
        )
    vmm = {
        "QEMU": vmm_types.VMMType.QEMU,
        "ec2": vmm_types.VMMType.ec2,
        "gce": vmm_types.VMMType.gce,
    }.get(vmm_type)
    if vmm is None:
        raise ImageError(f"unknown VMM type {vmm_type!r}", hint="one of: QEMU, ec2, gce")
    features = int(guest_features, 16)
    results = []
    for count in vcpus:
        digest = guest.calc_launch_digest(
            SevMode.SEV_SNP,
            count,
            vcpu_types.CPU_SIGS[vcpu_type],
            str(firmware),
            None,
            None,
            None,
            features,
            vmm_type=vmm,
        )
        results.append({"vcpus": count, "snp_launch_measurement": digest.hex()})
    return results
