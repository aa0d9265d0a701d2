"""Every upstream version coco-stack deploys, pinned in this one module.

One consistent release set: the Confidential Containers v0.22.0 release
(confidential-containers/confidential-containers: releases/v0.22.0.md) pairs kata-containers 4.0.0,
Trustee v0.21.0 and cloud-api-adaptor v0.22.0 (peerpods chart 0.4.0). Move to a newer set only
after checking every version and every generated format (kbs-config.toml, chart values) against
that release's source, and bump the whole set here together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartRef:
    """A Helm chart pinned by exact version."""

    name: str
    repo: str  # an OCI repository (oci://...) without the chart name
    version: str

    @property
    def reference(self) -> str:
        return f"{self.repo}/{self.name}"


@dataclass(frozen=True)
class ImageRef:
    """A container image pinned by tag, and by digest where upstream publishes one."""

    repository: str
    tag: str
    digest: str | None = None

    @property
    def reference(self) -> str:
        ref = f"{self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


@dataclass(frozen=True)
class ReleaseArtifact:
    """A release file pinned by URL and sha256 (fetched and checked by images.release)."""

    name: str
    version: str
    url: str
    sha256: str  # hex, of the whole file
    size: int | None = None  # bytes, when known: progress and an early size check

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# The release set. Source: confidential-containers/confidential-containers releases/v0.22.0.md.
COCO_RELEASE = "v0.22.0"
KATA_VERSION = "4.0.0"
TRUSTEE_VERSION = "v0.21.0"
CLOUD_API_ADAPTOR_VERSION = "v0.22.0"

# The runtime is installed with the confidential-containers chart around kata-deploy; the CoCo
# operator was archived on 2026-02-01 (confidential-containers/operator README).
# Version 0.22.0: confidential-containers/charts PR #192 "Update Helm chart for v0.22.0 release"
# (Kata 4.0.0, CAA chart 0.4.0); chart versions have tracked CoCo releases since 0.18.0
# (charts PRs #49, #88). The chart's own Chart.yaml at 0.22.0 was not readable here
# (unverified): check it before the runtime issue relies on its values.
COCO_CHART = ChartRef(
    name="confidential-containers",
    repo="oci://ghcr.io/confidential-containers/charts",
    version="0.22.0",
)
# Source: kata-containers/kata-containers
# tools/packaging/kata-deploy/helm-chart/kata-deploy/Chart.yaml@4.0.0 (version and appVersion
# 4.0.0); published by .github/workflows/release.yaml@4.0.0.
KATA_DEPLOY_CHART = ChartRef(
    name="kata-deploy",
    repo="oci://ghcr.io/kata-containers/kata-deploy-charts",
    version=KATA_VERSION,
)
# Source: confidential-containers/cloud-api-adaptor
# src/cloud-api-adaptor/install/charts/peerpods/Chart.yaml@v0.22.0
PEERPODS_CHART = ChartRef(
    name="peerpods",
    repo="oci://ghcr.io/confidential-containers/cloud-api-adaptor/charts",
    version="0.4.0",
)

# Trustee v0.21.0 is commit 258ea4acb7b9bd865fce5c63a539f2120dba8298; kata 4.0.0 and
# cloud-api-adaptor v0.22.0 versions.yaml both point at it. No upstream digest is published for
# the KBS image, so it is pinned by its release tag.
# The KBS image with the attestation service built in (the plain tag expects a separate AS over
# gRPC). Source: confidential-containers/trustee
# kbs/config/kubernetes/base/kustomization.yaml (main after v0.21.0, commit befca102).
KBS_IMAGE = ImageRef(
    repository="ghcr.io/confidential-containers/key-broker-service",
    tag=f"built-in-as-{TRUSTEE_VERSION}",
)

# Kubernetes minor version targeted by default (the CoCo v0.22.0 release notes report SNP tested
# on v1.34.2 and TDX/SE on v1.36.2): managed clusters are created with it and every
# Kubernetes object the project authors is validated against its schema (kubernetes-validate).
KUBERNETES_VERSION = "1.34"

# kata-deploy's own image when image.tag is empty is its appVersion (templates/_helpers.tpl@4.0.0);
# upstream publishes no digest for it.
KATA_DEPLOY_IMAGE = ImageRef(repository="quay.io/kata-containers/kata-deploy", tag=KATA_VERSION)

# cloud-api-adaptor image pinned by the peerpods chart 0.4.0 (values.yaml@v0.22.0: a commit tag of
# the v0.22.0 release) and the cert-manager the peer-pods webhook needs first
# (cloud-api-adaptor versions.yaml@v0.22.0: tools.cert-manager).
CLOUD_API_ADAPTOR_IMAGE = ImageRef(
    repository="quay.io/confidential-containers/cloud-api-adaptor",
    tag="61b1aba91df646a663e60ab6b55c6a7dc93cd167",
)
CERT_MANAGER_VERSION = "v1.15.3"
# cert-manager's Helm repository (cert-manager.io/docs/installation/helm); `crds.enabled` is the
# chart value from 1.15 on.
CERT_MANAGER_REPO = "https://charts.jetstack.io"
CERT_MANAGER_CHART = ChartRef(
    name="cert-manager", repo=CERT_MANAGER_REPO, version=CERT_MANAGER_VERSION
)

# Format versions of what the stack writes for Trustee v0.21.0: the initdata TOML
# (trustee kbs/docs/initdata.md@v0.21.0) and RVPS reference values
# (trustee rvps/src/reference_value.rs@v0.21.0).
INITDATA_VERSION = "0.1.0"
RVPS_REFERENCE_VALUE_VERSION = "0.1.0"

# Namespaces the upstream charts install into.
# Source: confidential-containers/cloud-api-adaptor install/charts/peerpods (namespace).
PEERPODS_NAMESPACE = "confidential-containers-system"


# --- Guest images (images/) -------------------------------------------------------------------
# Everything here changes image bytes and measurements, so it is pinned exactly and recorded in
# measurements.json.
#
# - Debian: the suite, its security suite and the package of one kernel ABI. No
#   snapshot.debian.org mirror is reachable from the build machines, so the mirrors are the
#   configured deb.debian.org ones and the exact mirror state is pinned per build instead: the
#   sha256 of each suite's InRelease file is part of the rootfs cache key and recorded in
#   measurements.json (rootfs.mirror_states). A mirror update gives a new key and a fresh rootfs;
#   it never silently reuses a stale one.
# - The security suite (`<suite>-security` on DEBIAN_SECURITY_MIRROR) is read next to the main
#   suite, for the root's security updates and for the kernel: Debian ships its 6.12 kernels for
#   bookworm there (source linux-6.12, "~deb12u1" versions; `apt-cache policy
#   linux-image-6.12.118+deb12-cloud-amd64` on 2026-12-07 lists only bookworm-security/main).
# - linux-image-6.12.118+deb12-cloud-amd64 (6.12.118-1~deb12u1) is the newest 6.12 cloud ABI
#   package there on 2026-12-07; naming the ABI package keeps the kernel fixed when the
#   metapackage moves. Read from the package's own /boot/config-6.12.118+deb12-cloud-amd64
#   (`apt-get download` + `dpkg-deb -x`): CONFIG_INTEL_TDX_GUEST=y (runs as a TDX trust domain),
#   CONFIG_AMD_MEM_ENCRYPT=y, CONFIG_SEV_GUEST=m and CONFIG_TDX_GUEST_DRIVER=m (/dev/sev-guest,
#   /dev/tdx_guest: the reports the attestation agent asks for), CONFIG_TSM_REPORTS=m
#   (configfs-tsm, which both drivers use), CONFIG_CONFIGFS_FS=m, CONFIG_TCG_TPM=y; virtio_pci
#   and NVMe built in; modules xz-compressed (CONFIG_MODULE_COMPRESS_XZ, the initramfs builder
#   unpacks them).
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KERNEL_PACKAGE = "linux-image-6.12.118+deb12-cloud-amd64"
# The kernel module each kind of evidence needs in the guest (KERNEL_PACKAGE has them as
# modules: the initramfs loads what the recipe's kernel.modules lists, tsm and configfs come in
# through modules.dep; each fails harmlessly with ENODEV outside its TEE). Sources: linux
# drivers/virt/coco/sev-guest (/dev/sev-guest) and drivers/virt/coco/tdx-guest (/dev/tdx_guest).
TEE_GUEST_MODULES: dict[str, str] = {"snp": "sev-guest", "tdx": "tdx-guest"}
# Kernels known NOT to run as a TEE guest that attests, by package, with what they lack (read
# from each package's /boot/config-*). bookworm main's cloud kernel (the pin before 2026-12-07)
# has "# CONFIG_INTEL_TDX_GUEST is not set" and "# CONFIG_VIRT_DRIVERS is not set" (no sev-guest
# driver). cloud-api-adaptor v0.22.0's own pod VM uses Ubuntu's linux-image-generic
# (podvm/mkosi.images/system/mkosi.conf.d/ubuntu.conf). Inner keys are evidence kinds
# (spec.catalogue).
KERNEL_TEE_GUEST_GAPS: dict[str, dict[str, str]] = {
    "linux-image-6.1.0-50-cloud-amd64": {
        "snp": "no SEV guest driver (CONFIG_VIRT_DRIVERS is not set: no /dev/sev-guest)",
        "tdx": "no TDX guest support (CONFIG_INTEL_TDX_GUEST is not set)",
    },
}
# kata-static 4.0.0's attestation-agent is built with ATTESTER="snp-attester,tdx-attester" on
# x86_64 (tools/packaging/static-build/coco-guest-components/build.sh@4.0.0): no Azure vTPM
# attesters (guest-components adds az-snp-vtpm and az-tdx-vtpm only for
# TEE_PLATFORM=az-cvm-vtpm, its Makefile), so it cannot present Azure confidential-VM evidence.
KATA_STATIC_ATTESTERS = ("snp", "tdx")
# The pod-VM image the CoCo project publishes for Azure per cloud-api-adaptor release, built with
# the Azure vTPM attesters (TEE_PLATFORM=az-cvm-vtpm), and where its PCR reference values are
# published (an OCI artifact with a GitHub build attestation). Source:
# confidential-containers/confidentialcontainers.org content/en/docs/examples/azure-simple.md
# ("Export PodVM image version", Last Release: .../Versions/${CAA_VERSION}, CAA_VERSION without
# the "v"; "PodVM reference values"). Whether the gallery holds this exact version was not
# checked here (no Azure access).
AZURE_COMMUNITY_PODVM_IMAGE = (
    "/CommunityGalleries/cococommunity-42d8482d-92cd-415b-b332-7648bd978eff/Images/"
    f"peerpod-podvm-fedora/Versions/{CLOUD_API_ADAPTOR_VERSION.removeprefix('v')}"
)
AZURE_COMMUNITY_PODVM_MEASUREMENTS = (
    "ghcr.io/confidential-containers/cloud-api-adaptor/measurements/azure/podvm:"
    f"{CLOUD_API_ADAPTOR_VERSION.removeprefix('v')}"
)
# 2026-11-27T00:00:00Z: the default SOURCE_DATE_EPOCH of every recipe (clamps every timestamp).
SOURCE_DATE_EPOCH = 1795737600
# systemd-boot-efi 252 (bookworm): the stub the UKI is built on.
EFI_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
# OVMF 2022.11 (bookworm package ovmf): boot test firmware, and the default SNP firmware input.
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
OVMF_SNP = "/usr/share/ovmf/OVMF.fd"
# Packages the initramfs is assembled from (extracted, never installed): busybox for the shell,
# veritysetup for dm-verity (the kernel's dm-mod.create= needs dm built in; the pinned cloud
# kernel has it as a module, CONFIG_BLK_DEV_DM=m, see ../shared/facts/images.md).
INITRD_PACKAGES = ("busybox-static", "cryptsetup-bin")


# --- k3s on bare-metal hosts (components.k3s) ---------------------------------------------------
# k3s v1.34.3+k3s1: Kubernetes 1.34, the minor of KUBERNETES_VERSION. The binary is downloaded on
# each host from the GitHub release and installed only when its size, sha256 and sha512 all
# match, never through `curl | sh`. Asset names per `uname -m` and the checksum files
# sha256sum-<arch>.txt: github.com/k3s-io/k3s/releases (release asset list).
# Two independent sources, so that one wrong source alone cannot let another binary in (none
# checked against the release file here: no network):
# - sha256: andrewrothstein/ansible-k3s defaults/main.yml (k3s_checksums v1.34.3+k3s1 amd64,
#   recorded there from the release's sha256sum-amd64.txt);
# - size and sha512: anders-larsson/gentoo-overlay sys-cluster/k3s-bin/Manifest (DIST k3s of
#   v1.34.3+k3s1).
# k3s publishes no s390x build since December 2023 (k3s-io/k3s#8987: the release workflow builds
# amd64, arm64 and arm only), so k3s pools are amd64 only (spec.rules refuses others, saying so);
# Secure Execution (s390x) hosts join a cluster you already run instead.
K3S_VERSION = "v1.34.3+k3s1"
K3S_RELEASE_URL = "https://github.com/k3s-io/k3s/releases/download"


@dataclass(frozen=True)
class K3sBinary:
    """One release asset, pinned by size and two digests from independent sources."""

    asset: str
    size: int
    sha256: str
    sha512: str


# `uname -m` -> the pinned asset
K3S_BINARIES = {
    "x86_64": K3sBinary(
        asset="k3s",
        size=74_903_736,
        sha256="f95350e3997165974d1d1406f01aabaf869aed7ca790cc2d83a92a82f26a06c5",
        sha512=(
            "d8b0ca7483f9f1d1971a17749e0d8a6a19b99b9ff60a2da02b5bd23c0f049f29"
            "efe66e06afd6a39a8b5861887f7a23a959dd60fe16b6a78f6e7859050591a7b9"
        ),
    ),
}
# Catalogue arch (spec.catalogue Offering.arch) -> `uname -m`
K3S_MACHINES = {"amd64": "x86_64", "s390x": "s390x"}
# Why an arch has no k3s binary (named in the error that refuses such a pool)
K3S_NO_BUILD = {
    "s390x": "k3s publishes no s390x build since December 2023 (k3s-io/k3s#8987)",
}


# --- IBM SE verifier and bare-metal SNP reference values (kbs.se_verifier, images.kata)
# Where the Trustee v0.21.0 IBM SE verifier reads its material: the defaults in
# deps/verifier/src/se/ibmse.rs@v0.21.0 (each can be moved with an environment variable; the stack
# mounts at the defaults instead). Not a version, but pinned to TRUSTEE_VERSION like the formats.
SE_VERIFIER_DIR = "/run/confidential-containers/ibmse"
# The qemu-snp shim of kata 4.0.0: src/runtime/config/configuration-qemu-snp.toml.in@4.0.0
# (default_vcpus = 1, firmware @FIRMWARESNPPATH@ = share/ovmf/AMDSEV.fd, src/runtime/Makefile),
# and the QEMU CPU model the Go shim gives SNP guests (qemu_amd64.go cpuModel(): "EPYC-v4").
KATA_SNP_CPU_MODEL = "EPYC-v4"
KATA_SNP_DEFAULT_VCPUS = 1
KATA_SNP_FIRMWARE = "/opt/kata/share/ovmf/AMDSEV.fd"

# The kata 4.0.0 release tarball kata-deploy installs from (everything under ./opt/kata), the
# source of the qemu-snp guest's firmware and kernel when coco:kbs.kataGuest names no files.
# Asset name: github.com/kata-containers/kata-containers/releases/tag/4.0.0 (kata-static-<version>-
# <arch>.tar.zst). The sha256 and size are (unverified) against the release itself, which is not
# reachable from where this was written: they are the value two unrelated projects pin for this
# asset, found with the code search on 2026-11-27 (one project's Dockerfile ARG
# KATA_AMD64_SHA256, shell table and cache notes recording 1,952,994,060 bytes; another's Python
# map of the checksums GitHub publishes), both agreeing. A wrong value fails closed: the download
# is refused, naming both digests.
KATA_STATIC = ReleaseArtifact(
    name="kata-static",
    version=KATA_VERSION,
    url="https://github.com/kata-containers/kata-containers/releases/download/"
    f"{KATA_VERSION}/kata-static-{KATA_VERSION}-amd64.tar.zst",
    sha256="2c3b9dfeba355582b40aee462b12916c9740654d0230f696adf719d67b063a8c",
    size=1_952_994_060,
)
# Members of KATA_STATIC the qemu-snp shim boots (kata-containers@4.0.0): the firmware
# tools/packaging/static-build/ovmf/build-ovmf.sh installs as share/ovmf/AMDSEV.fd, and the kernel
# src/runtime/Makefile names for KERNELCONFIDENTIALTYPE = compressed (MAKE_KERNEL_NAME:
# vmlinuz.container in KERNELDIR = share/kata-containers), a symlink build-kernel.sh makes to the
# versioned kernel. kata-deploy builds with PREFIX /opt/kata. No initrd: the shim boots the image
# kata-containers-confidential.img, bound by the dm-verity root hash in its command line.
KATA_SNP_MEMBERS = {
    "firmware": "opt/kata/share/ovmf/AMDSEV.fd",
    "kernel": "opt/kata/share/kata-containers/vmlinuz.container",
}


# --- Pod-VM payload (images/, podvm recipe) ------------------------------------------------------
# Every pod-VM payload source is pinned by content known today, so the podvm recipe builds without
# registry access (cloud-api-adaptor's own podvm Makefile.inc@v0.22.0 instead pulls oras
# artifacts by commit tags resolved at build time, which nothing here could pin by digest).
#
# kata-agent and the guest components come from the confidential guest image inside the pinned
# KATA_STATIC archive (sha256 above), through the same locked, atomic, verified download the kata
# guest measurement uses (images.release). kata 4.0.0 installs that image as
# share/kata-containers/kata-containers-confidential.img (the path kata-deploy's
# configuration-qemu-*.toml `image =` names under /opt/kata). The image holds one ext4 file
# system at byte offset 3 MiB (the layout the project facts record for 4.0.0; not yet read from
# the real archive here, which GitHub does not serve to these machines: the build checks the ext4
# superblock magic there and stops naming the offset when it differs). Paths inside it: the agent
# as kata's rootfs builder installs it (/usr/bin/kata-agent), the guest components under
# /usr/local/bin (kata's coco guest-components build installs them there).
PODVM_GUEST_IMAGE_MEMBER = "opt/kata/share/kata-containers/kata-containers-confidential.img"
PODVM_GUEST_IMAGE_EXT4_OFFSET = 3 * 1024 * 1024

# agent-protocol-forwarder and process-user-data: built from cloud-api-adaptor's Go module with the
# Go toolchain by tools/build.py group "caa" (tools/go/caa: go.mod and go.sum pin the module and
# every dependency by hash). v0.21.0, not the release set's v0.22.0: the Go module proxy answered
# `go mod download -json MODULE@v0.22.0` (MODULE: github.com/confidential-containers/
# cloud-api-adaptor/src/cloud-api-adaptor) with 403 "This module version is not available." on
# 2026-12-01 and again on 2026-12-07. What differs on the pod-VM side between the two tags
# (git diff src/cloud-api-adaptor/v0.21.0..v0.22.0): the forwarder's interceptor (cloud-native
# CSI volume passthrough, which coco-stack does not deploy) and its server-side TLS profile
# (forwarder.go, tlsutil: apf.json tls-min-version/tls-cipher-suites, written only when the
# daemon sets TLS_MIN_VERSION/TLS_CIPHER_SUITES, which the stack does not; v0.21.0 ignores
# unknown apf.json keys and the daemon still enforces its profile as the TLS client).
# cmd/process-user-data, pkg/userdata, pkg/paths, pkg/initdata and cmd/agent-protocol-forwarder
# are identical, TLS is mutual and on by default on port 15150 at both, and the agent protocol
# is unchanged between the kata commits both build against (docs/images.md, "Forwarder and
# daemon versions").
PODVM_CAA_VERSION = "v0.21.0"
PODVM_CAA_GO_GROUP = "caa"
