"""Pinned inputs of guest images, kept with every other upstream pin in components/versions.py
(that module imports nothing but the standard library, so images/ stays free of Pulumi)."""

from __future__ import annotations

from components.versions import (
    DEBIAN_MIRROR,
    DEBIAN_SUITE,
    EFI_STUB,
    INITRD_PACKAGES,
    KERNEL_PACKAGE,
    OVMF_CODE,
    OVMF_SNP,
    OVMF_VARS,
    SOURCE_DATE_EPOCH,
)

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
