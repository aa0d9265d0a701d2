"""Pinned inputs of guest images, kept with every other upstream pin in spec/versions.py
(that module imports nothing but the standard library, so images/ stays free of Pulumi)."""

from __future__ import annotations

from dataclasses import dataclass

from spec.versions import (
    DEBIAN_MIRROR,
    DEBIAN_SECURITY_MIRROR,
    DEBIAN_SUITE,
    EFI_STUB,
    INITRD_PACKAGES,
    KATA_STATIC,
    KERNEL_PACKAGE,
    OVMF_CODE,
    OVMF_SNP,
    OVMF_VARS,
    PODVM_GUEST_IMAGE_EXT4_OFFSET,
    PODVM_GUEST_IMAGE_MEMBER,
    SOURCE_DATE_EPOCH,
    ImageRef,
    ReleaseArtifact,
)

# OCI payloads a recipe may name with `pin = "NAME"` ([[payload.oci]]). Empty today: the podvm
# payload is pinned by release archive and Go module hashes instead ([[payload.release]],
# [[payload.go]]). Not in __all__: a recipe's content hash covers the references it uses
# (Recipe.canonical), not the whole table.
OCI_PINS: dict[str, ImageRef] = {}



@dataclass(frozen=True)
class GuestImagePin:
    """A disk image inside a pinned release archive, with one ext4 file system at `ext4_offset`
    bytes: where [[payload.release]] reads files from."""

    artifact: ReleaseArtifact
    member: str
    ext4_offset: int


# Release disk images a recipe may read files from with `pin = "NAME"` ([[payload.release]]),
# fetched and verified by images.release. The recipe's content hash covers the pin (sha256,
# member, offset) through Recipe.canonical.
RELEASE_PINS: dict[str, GuestImagePin] = {
    "KATA_CONFIDENTIAL_IMAGE": GuestImagePin(
        KATA_STATIC, PODVM_GUEST_IMAGE_MEMBER, PODVM_GUEST_IMAGE_EXT4_OFFSET
    ),
}

__all__ = [
    "DEBIAN_MIRROR",
    "DEBIAN_SECURITY_MIRROR",
    "DEBIAN_SUITE",
    "EFI_STUB",
    "INITRD_PACKAGES",
    "KERNEL_PACKAGE",
    "OVMF_CODE",
    "OVMF_SNP",
    "OVMF_VARS",
    "SOURCE_DATE_EPOCH",
]
