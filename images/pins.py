"""Pinned inputs of guest images, kept with every other upstream pin in spec/versions.py
(that module imports nothing but the standard library, so images/ stays free of Pulumi)."""

from __future__ import annotations

from spec.versions import (
    DEBIAN_MIRROR,
    DEBIAN_SUITE,
    EFI_STUB,
    INITRD_PACKAGES,
    KERNEL_PACKAGE,
    OVMF_CODE,
    OVMF_SNP,
    OVMF_VARS,
    PODVM_API_SERVER_REST,
    PODVM_ATTESTATION_AGENT,
    PODVM_CONFIDENTIAL_DATA_HUB,
    PODVM_KATA_AGENT,
    SOURCE_DATE_EPOCH,
    ImageRef,
)

# OCI payloads a recipe may name with `pin = "NAME"` ([[payload.oci]]). Not in __all__: a
# recipe's content hash covers the references it uses (Recipe.canonical), not the whole table.
OCI_PINS: dict[str, ImageRef] = {
    "PODVM_API_SERVER_REST": PODVM_API_SERVER_REST,
    "PODVM_ATTESTATION_AGENT": PODVM_ATTESTATION_AGENT,
    "PODVM_CONFIDENTIAL_DATA_HUB": PODVM_CONFIDENTIAL_DATA_HUB,
    "PODVM_KATA_AGENT": PODVM_KATA_AGENT,
}

__all__ = [
    "DEBIAN_MIRROR",
    "DEBIAN_SUITE",
    "EFI_STUB",
    "INITRD_PACKAGES",
    "KERNEL_PACKAGE",
    "OVMF_CODE",
    "OVMF_SNP",
    "OVMF_VARS",
    "SOURCE_DATE_EPOCH",
]
