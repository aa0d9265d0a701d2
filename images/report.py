"""measurements.json: every artifact digest, every predicted measurement and every input it was
computed from, under the reference value names the pinned Trustee reads (snp_launch_measurement,
tpm_pcr4, tpm_pcr11; ../shared/facts/trustee-kbs.md, "Reference values").
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

from . import measure, pins, rootfs, tdx
from .cache import sha256_file
from .recipe import Recipe
from .verity import Verity

SCHEMA = "coco-stack/image-measurements/v1"
# recipe format -> file name in the output directory
OUTPUT_FILES = {
    "raw": "disk.raw",
    "qcow2": "disk.qcow2",
    "azure-vhd": "disk.vhd",
    "gcp-tar": "disk.raw.tar.gz",
}
BOOT_PATH = (
    "QEMU q35 -nodefaults, OVMF 2022.11 without Secure Boot, the disk's EFI/BOOT/BOOTX64.EFI "
    "(this UKI) as the first and only boot option, systemd-stub 252 measuring into PCR 11, no "
    "systemd in the initramfs"
)
SNP_SCOPE = (
    "the image boots its UKI from disk through the firmware; kernel, initrd and command line are "
    "not direct-boot inputs (and Debian's OVMF has no SEV hashes table), so the launch digest "
    "covers the firmware and vCPU setup only; the image is bound through TPM PCR 4 and 11"
)


def artifact(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def measurements(
    recipe: Recipe, seed: str, facts: dict[str, Any], out: Path, kernel: Path
) -> dict[str, Any]:
    uki_path = out / "uki.efi"
    uki_bytes = uki_path.read_bytes()
    tpm = measure.predict_pcrs(uki_bytes)
    firmware = Path(recipe.snp_firmware)
    snp = measure.snp_launch_digests(
        firmware,
        recipe.snp_vcpus,
        recipe.snp_vcpu_type,
        recipe.snp_vmm_type,
        recipe.snp_guest_features,
    )
    tdx_block, tdx_values = tdx_measurements(recipe)
    verity: Verity = facts["verity"]
    artifacts = {"uki.efi": artifact(uki_path)}
    for fmt, name in OUTPUT_FILES.items():
        if fmt == "raw" or fmt in recipe.formats:
            artifacts[name] = artifact(out / name)
    mirrors: tuple[rootfs.MirrorState, ...] = facts["mirrors"]
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "recipe": {
            "name": recipe.name,
            "content_sha256": seed,
            "source_date_epoch": recipe.source_date_epoch,
        },
        "inputs": {
            "mirrors": [
                {"url": m.url, "suite": m.suite, "inrelease_sha256": m.inrelease_sha256}
                for m in mirrors
            ],
            "rootfs_tar_sha256": facts["rootfs_tar_sha256"],
            "packages": facts["packages"],
            "kernel_package": recipe.kernel_package,
            "kernel_version": facts["kernel_version"],
            "kernel_release": rootfs.kernel_release(kernel),
            "efi_stub": {"path": pins.EFI_STUB, "sha256": sha256_file(Path(pins.EFI_STUB))},
            "payload": facts["payload"],
            "oci": facts.get("oci", []),
        },
        "artifacts": artifacts,
        "uki": {
            "cmdline": facts["cmdline"],
            "authenticode_sha256": measure.authenticode_sha256(uki_bytes).hex(),
            "sections": {
                name: hashlib.sha256(section.data).hexdigest()
                for name, section in sorted(measure.uki_sections(uki_bytes).items())
            },
        },
        "dm_verity": {
            "root_hash": verity.root_hash,
            "salt": verity.salt,
            "uuid": verity.uuid,
            "hash_algorithm": verity.hash_algorithm,
            "data_block_size": verity.data_block_size,
            "hash_block_size": verity.hash_block_size,
            "data_blocks": verity.data_blocks,
        },
        "disk": {
            "partitions": [
                {"name": p.name, "type": p.type, "uuid": p.uuid, "start": p.start, "size": p.size}
                for p in facts["layout"]
            ],
        },
        "tpm": {**tpm, "boot_path": BOOT_PATH, "not_predicted": measure.NOT_PREDICTED},
        "snp": {
            "tool": "sev-snp-measure",
            "mode": "snp",
            "firmware": {"path": str(firmware), "sha256": sha256_file(firmware)},
            "vcpu_type": recipe.snp_vcpu_type,
            "vmm_type": recipe.snp_vmm_type,
            "guest_features": recipe.snp_guest_features,
            "kernel_hashes": False,
            "kernel_hashes_reason": SNP_SCOPE,
            "launch_digests": snp,
        },
        "tdx": tdx_block,
        "reference_values": {
            "snp_launch_measurement": sorted({d["snp_launch_measurement"] for d in snp}),
            "tpm_pcr4": [tpm["pcrs"]["4"]],
            "tpm_pcr11": [tpm["pcrs"]["11"]],
            **tdx_values,
        },
    }
    return data


TDX_RTMR_SCOPE = (
    "the image boots its UKI from disk, not by QEMU direct boot, so RTMR1 and RTMR2 (kernel, "
    "initrd, command line through the EFI stub) follow the disk's boot path, which "
    "images.tdx does not predict; the image is bound through TPM PCR 4 and 11 (vTPM) or the "
    "dm-verity root hash"
)


def tdx_measurements(recipe: Recipe) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The `tdx` block of measurements.json and its reference values: MRTD of the recipe's TDVF
    (measure.tdx_firmware) under its page order (images.tdx), as the KBS's `mr_td`."""
    if not recipe.tdx_firmware:
        block = {
            "covered": False,
            "reason": "no TDX firmware (TDVF) given in the recipe (measure.tdx_firmware), so "
            "MRTD is not computed",
        }
        return block, {}
    order = cast(tdx.PageOrder, recipe.tdx_page_order)  # checked by images.recipe
    mrtd = tdx.measure_mrtd(recipe.tdx_firmware, page_order=order)
    block = {
        "covered": True,
        "tool": "images.tdx",
        **mrtd.to_json(),
        "rtmrs_predicted": False,
        "rtmrs_reason": TDX_RTMR_SCOPE,
        "not_predicted": dict(sorted(tdx.NOT_PREDICTED.items())),
    }
    return block, {"mr_td": [mrtd.mrtd]}
