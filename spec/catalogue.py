"""The TEE catalogue: what each provider offers for each TEE and mode, and what it needs.

One `Offering` per (provider, tee, mode) that coco-stack supports. Anything not listed is refused
by the spec with a message naming where that TEE *is* available. Every fact names its upstream
source in a comment; facts marked "(unverified)" were not confirmed against a primary source and
are only used for warnings, never to refuse a configuration.

Pure data and lookups: no Pulumi import, so `coco check` stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

PROVIDERS = ("azure", "aws", "gcp", "ibmcloud", "baremetal")
TEES = ("snp", "tdx", "se", "sev", "sgx", "none")
MODES = ("peer-pods", "bare-metal", "nodes")

TEE_NAMES = {
    "snp": "AMD SEV-SNP",
    "tdx": "Intel TDX",
    "se": "IBM Z Secure Execution",
    "sev": "AMD SEV (legacy, no integrity protection)",
    "sgx": "Intel SGX",
    "none": "no TEE (kata coco-dev, for development only)",
}


@dataclass(frozen=True)
class Offering:
    """One supported (provider, tee, mode) combination and the facts the components need."""

    provider: str
    tee: str
    mode: str
    # Instance families (Azure size families, AWS instance families, GCP machine series, IBM
    # profile families) a pool may use. Empty: the mode has no instance type (bare metal).
    families: tuple[str, ...]
    default_size: str | None
    arch: str  # Kubernetes arch label value of the nodes or pod VMs: amd64 or s390x
    # kata shim and the RuntimeClass the chart creates for it; None when pods run with the
    # node's own runtime (nodes mode: the node itself is the confidential VM).
    shim: str | None
    runtime_class: str | None
    # Trustee verifier that checks the guest's evidence, and the reference value names its
    # default policy reads. None: nothing the KBS can attest (node-level confidentiality only).
    evidence: str | None
    reference_values: tuple[str, ...]
    # How the initdata digest is bound into the evidence: "snp-host-data" (32 bytes),
    # "tdx-mrconfigid" (48 bytes), "vtpm-pcr8" (Azure vTPM), or None (not bound).
    initdata_binding: str | None
    # Settings the platform must have for the TEE to exist at all (minimum CPU platform, boot
    # mode, host maintenance policy, security type, ...), keyed by a short descriptive name.
    platform: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Regions known to offer it: a hint for errors, not a complete list.
    regions: tuple[str, ...] = ()
    note: str = ""
    # A known upstream limitation worth a warning from `coco check`.
    caveat: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.tee, self.mode)


def _p(**kv: str) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted(kv.items())))


# Reference value names the default attestation policy of Trustee v0.21.0 reads, per evidence
# type (every query_reference_value("...") in attestation-service/src/ear_token/
# ear_default_policy_cpu.rego@v0.21.0, grouped by the input.<tee> its rule tests).
_RV_SNP = (
    "snp_bootloader",
    "snp_guest_abi_major",
    "snp_guest_abi_minor",
    "snp_launch_measurement",
    "snp_microcode",
    "snp_single_socket",
    "snp_smt_allowed",
    "snp_smt_enabled",
    "snp_snp_svn",
    "snp_tee_svn",
    "snp_tsme_enabled",
)
_RV_TDX = ("mr_seam", "mr_td", "rtmr_1", "rtmr_2", "tdvfkernel", "tdvfkernelparams", "xfam")
_RV_AZ_SNP = (
    "abi_major",
    "abi_minor",
    "measurement",
    "single_socket",
    "smt_allowed",
    "smt_enabled",
    "snp_pcr11",
    "tcb_bootloader",
    "tcb_microcode",
    "tcb_snp",
    "tcb_tee",
    "tsme_enabled",
)
_RV_AZ_TDX = ("mr_seam", "mr_td", "tdx_pcr11", "xfam")
_RV_TPM = ("tpm_pcr11", "trusted_aks")
_RV_SAMPLE = ("launch_digest", "major_version", "minimum_minor_version", "svn")
# The default policy (attestation-service/src/ear_token/ear_default_policy_cpu.rego@v0.21.0)
# affirms SE evidence the SE verifier accepted (its rules only check that `input.se` exists); it
# reads no reference values, so what an SE guest runs is pinned by its encrypted image.
_RV_SE: tuple[str, ...] = ()
# Every name the default policy reads.
DEFAULT_POLICY_REFERENCE_VALUES = tuple(
    sorted({*_RV_SNP, *_RV_TDX, *_RV_AZ_SNP, *_RV_AZ_TDX, *_RV_TPM, *_RV_SAMPLE})
)

# Shims and RuntimeClass names. Source: kata-containers tools/packaging/kata-deploy/helm-chart/
# kata-deploy/values.yaml@4.0.0 (shims.*) and the CoCo v0.22.0 release notes (RuntimeClasses
# kata-qemu-coco-dev, kata-qemu-snp, kata-qemu-tdx, kata-qemu-se, kata-remote).
_SHIMS = {
    "snp": ("qemu-snp", "kata-qemu-snp"),
    "tdx": ("qemu-tdx", "kata-qemu-tdx"),
    "se": ("qemu-se", "kata-qemu-se"),
    "none": ("qemu-coco-dev", "kata-qemu-coco-dev"),
    "remote": ("remote", "kata-remote"),
}

OFFERINGS: tuple[Offering, ...] = (
    # --- Azure -------------------------------------------------------------------------------
    # Sizes: learn.microsoft.com/azure/confidential-computing/virtual-machine-options (DCasv5,
    # DCadsv5, ECasv5, ECadsv5 for SEV-SNP; DCesv5, DCedsv5, ECesv5, ECedsv5 for TDX).
    # Peer-pod default size: cloud-api-adaptor src/cloud-api-adaptor/azure/README and the
    # peer-pods-cm default AZURE_INSTANCE_SIZE=Standard_DC2as_v5 (chart 0.4.0).
    # Evidence: Azure CVMs run a paravisor and expose the SNP/TDX report through a vTPM, so the
    # guest reports az-snp-vtpm / az-tdx-vtpm (trustee deps/verifier/src/az_snp_vtpm,
    # az_tdx_vtpm); initdata is bound by extending vTPM PCR 8
    # (trustee kbs/docs/initdata.md; cloud-api-adaptor src/cloud-api-adaptor/docs/initdata.md).
    Offering(
        "azure",
        "snp",
        "peer-pods",
        families=("DCasv5", "DCadsv5", "ECasv5", "ECadsv5"),
        default_size="Standard_DC2as_v5",
        arch="amd64",
        shim=_SHIMS["remote"][0],
        runtime_class=_SHIMS["remote"][1],
        evidence="az-snp-vtpm",
        reference_values=_RV_AZ_SNP,
        initdata_binding="vtpm-pcr8",
        platform=_p(securityType="ConfidentialVM", generation="V2"),
    ),
    Offering(
        "azure",
        "tdx",
        "peer-pods",
        families=("DCesv5", "DCedsv5", "ECesv5", "ECedsv5"),
        default_size="Standard_DC2es_v5",
        arch="amd64",
        shim=_SHIMS["remote"][0],
        runtime_class=_SHIMS["remote"][1],
        evidence="az-tdx-vtpm",
        reference_values=_RV_AZ_TDX,
        initdata_binding="vtpm-pcr8",
        platform=_p(securityType="ConfidentialVM", generation="V2"),
    ),
    # AKS confidential VM node pools: any CVM size, os_sku Ubuntu or Ubuntu2404 (AzureLinux needs
    # a preview flag). Source: learn.microsoft.com/azure/aks/use-cvm. Pods run with runc on the
    # confidential node: the node is attested by Azure, not by the stack's KBS.
    Offering(
        "azure",
        "snp",
        "nodes",
        families=("DCasv5", "DCadsv5", "ECasv5", "ECadsv5"),
        default_size="Standard_DC4as_v5",
        arch="amd64",
        shim=None,
        runtime_class=None,
        evidence=None,
        reference_values=(),
        initdata_binding=None,
        platform=_p(osSku="Ubuntu", securityType="ConfidentialVM"),
        note="node-level confidentiality: pods run with runc on confidential VM nodes",
    ),
    # SGX: DCsv3/DCdsv3 (SGX2) nodes with the AKS ACCSGXDevicePlugin add-on. CoCo removed its
    # SGX runtime (enclave-cc) in v0.18.0 (confidential-containers releases/v0.18.0.md), so no
    # RuntimeClass: workloads must be SGX-enabled themselves.
    Offering(
        "azure",
        "sgx",
        "nodes",
        families=("DCsv3", "DCdsv3"),
        default_size="Standard_DC4s_v3",
        arch="amd64",
        shim=None,
        runtime_class=None,
        evidence=None,
        reference_values=(),
        initdata_binding=None,
        platform=_p(addon="ACCSGXDevicePlugin"),
        note="SGX device plugin only: no CoCo runtime (enclave-cc was removed in CoCo v0.18)",
    ),
    # --- AWS ---------------------------------------------------------------------------------
    # SEV-SNP on C6a, M6a, R6a only, set at launch with cpu_options amd_sev_snp=enabled and a
    # UEFI AMI. Source: docs.aws.amazon.com/AWSEC2/latest/UserGuide/sev-snp.html. Regions from
    # the same page (the list grows; (unverified) beyond these two).
    # Peer-pod default: PODVM_INSTANCE_TYPE m6a.large (cloud-api-adaptor aws provider docs).
    # Evidence: the SNP report signed with a VLEK (trustee deps/verifier/src/snp). initdata:
    # cloud-api-adaptor v0.22.0 extends its digest into vTPM PCR 8 on every cloud
    # (podvm/mkosi.images/*/process-user-data.service.d/10-override.conf), but snp evidence
    # carries no TPM quote and EC2 cannot set HOST_DATA, so it is not bound on AWS.
    Offering(
        "aws",
        "snp",
        "peer-pods",
        families=("c6a", "m6a", "r6a"),
        default_size="m6a.large",
        arch="amd64",
        shim=_SHIMS["remote"][0],
        runtime_class=_SHIMS["remote"][1],
        evidence="snp",
        reference_values=_RV_SNP,
        initdata_binding=None,
        platform=_p(amdSevSnp="enabled", bootMode="uefi"),
        regions=("us-east-2", "eu-west-1"),
    ),
    Offering(
        "aws",
        "snp",
        "nodes",
        families=("c6a", "m6a", "r6a"),
        default_size="m6a.xlarge",
        arch="amd64",
        shim=None,
        runtime_class=None,
        evidence=None,
        reference_values=(),
        initdata_binding=None,
        platform=_p(amdSevSnp="enabled", bootMode="uefi"),
        regions=("us-east-2", "eu-west-1"),
        note="node-level confidentiality: pods run with runc on SEV-SNP nodes",
    ),
    # --- GCP ---------------------------------------------------------------------------------
    # Source: cloud.google.com/confidential-computing/confidential-vm/docs/supported-configurations
    # SEV: N2D, C2D; SEV_SNP: N2D with min CPU platform "AMD Milan"; TDX: C3. Host maintenance
    # TERMINATE for SEV-SNP and TDX (MIGRATE only for SEV on Milan or later).
    # SEV also on C3D and C4D (docs.cloud.google.com/dataproc/docs/concepts/configuring-clusters/
    # confidential-compute; main Compute Engine page unverified).
    # Peer pods: GCP_CONFIDENTIAL_TYPE SEV | SEV_SNP | TDX (cloud-api-adaptor src/cloud-providers/
    # gcp/manager.go@v0.22.0; its GCP_MACHINE_TYPE default e2-medium is not confidential, so the
    # catalogue sets its own defaults). Evidence: snp / tdx; legacy SEV has no attester
    # (guest-components attestation-agent detect_tee_type). initdata is not bound on GCP (the
    # PCR 8 extend is not covered by snp/tdx evidence). SEV-SNP peer pods are refused (REFUSED
    # below): cloud-api-adaptor v0.22.0 cannot set the minimum CPU platform SEV_SNP needs.
    Offering(
        "gcp",
        "sev",
        "peer-pods",
        families=("n2d", "c2d", "c3d", "c4d"),
        default_size="n2d-standard-2",
        arch="amd64",
        shim=_SHIMS["remote"][0],
        runtime_class=_SHIMS["remote"][1],
        evidence=None,
        reference_values=(),
        initdata_binding=None,
        platform=_p(confidentialInstanceType="SEV", onHostMaintenance="TERMINATE"),
        note="legacy SEV has no attestation report the KBS can verify: confidentiality only",
    ),
    Offering(
        "gcp",
        "tdx",
        "peer-pods",
        families=("c3",),
        default_size="c3-standard-4",
        arch="amd64",
        shim=_SHIMS["remote"][0],
        runtime_class=_SHIMS["remote"][1],
        evidence="tdx",
        reference_values=_RV_TDX,
        initdata_binding=None,
        platform=_p(confidentialInstanceType="TDX", onHostMaintenance="TERMINATE"),
    ),
    Offering(
        "gcp",
        "sev",
        "nodes",
        families=("n2d", "c2d", "c3d", "c4d"),
        default_size="n2d-standard-4",
        arch="amd64",
        shim=None,
        runtime_class=None,
        evidence=None,
        reference_values=(),
        initdata_binding=None,
        platform=_p(confidentialInstanceType="SEV", onHostMaintenance="TERMINATE"),
        note="node-level confidentiality: pods run with runc on confidential GKE nodes",
    ),
    Offering(
        "gcp",
        "snp",
        "nodes",
        families=("n2d",),
        default_size="n2d-standard-4",
        arch="amd64",
        shim=None,
        runtime_class=None,
        evidence=None,
        reference_values=(),
        initdata_binding=None,
        platform=_p(
            confidentialInstanceType="SEV_SNP",
            minCpuPlatform="AMD Milan",
            onHostMaintenance="TERMINATE",
        ),
        note="node-level confidentiality: pods run with runc on confidential GKE nodes",
    ),
    Offering(
        "gcp",
        "tdx",
        "nodes",
        families=("c3",),
        default_size="c3-standard-4",
        arch="amd64",
        shim=None,
        runtime_class=None,
        evidence=None,
        reference_values=(),
        initdata_binding=None,
        platform=_p(confidentialInstanceType="TDX", onHostMaintenance="TERMINATE"),
        note="node-level confidentiality: pods run with runc on confidential GKE nodes",
    ),
    # --- IBM Cloud ---------------------------------------------------------------------------
    # Secure Execution peer pods on bz2e profiles (s390x). Source: cloud-api-adaptor ibmcloud
    # provider docs (IBMCLOUD_PODVM_INSTANCE_PROFILE_NAME, SE images built with pvimg/genprotimg).
    Offering(
        "ibmcloud",
        "se",
        "peer-pods",
        families=("bz2e",),
        default_size="bz2e-2x8",
        arch="s390x",
        shim=_SHIMS["remote"][0],
        runtime_class=_SHIMS["remote"][1],
        evidence="se",
        reference_values=_RV_SE,
        initdata_binding=None,
        platform=_p(image="Secure Execution encrypted (pvimg create)"),
    ),
    # --- Bare metal --------------------------------------------------------------------------
    # kata starts the TEE VM on the host itself. Host requirements: ../shared/facts/clouds-tee.md
    # (kata reads /sys/module/kvm_amd/parameters/sev_snp, /sys/module/kvm_intel/parameters/tdx).
    # initdata: HOST_DATA for SNP, MRCONFIGID for TDX (trustee kbs/docs/initdata.md).
    Offering(
        "baremetal",
        "snp",
        "bare-metal",
        families=(),
        default_size=None,
        arch="amd64",
        shim=_SHIMS["snp"][0],
        runtime_class=_SHIMS["snp"][1],
        evidence="snp",
        reference_values=_RV_SNP,
        initdata_binding="snp-host-data",
        platform=_p(host="EPYC Milan or later, SNP enabled in BIOS, kernel >= 6.11"),
    ),
    Offering(
        "baremetal",
        "tdx",
        "bare-metal",
        families=(),
        default_size=None,
        arch="amd64",
        shim=_SHIMS["tdx"][0],
        runtime_class=_SHIMS["tdx"][1],
        evidence="tdx",
        reference_values=_RV_TDX,
        initdata_binding="tdx-mrconfigid",
        platform=_p(host="Xeon 5th gen or Xeon 6, kvm_intel.tdx=1, TDX module initialised"),
    ),
    Offering(
        "baremetal",
        "se",
        "bare-metal",
        families=(),
        default_size=None,
        arch="s390x",
        shim=_SHIMS["se"][0],
        runtime_class=_SHIMS["se"][1],
        evidence="se",
        reference_values=_RV_SE,
        initdata_binding=None,
        platform=_p(host="IBM z15 / LinuxONE III or later, prot_virt=1"),
    ),
    # coco-dev: the CoCo stack without a TEE, on any node with KVM; evidence comes from the
    # sample attester (trustee deps/verifier/src/sample).
    Offering(
        "baremetal",
        "none",
        "bare-metal",
        families=(),
        default_size=None,
        arch="amd64",
        shim=_SHIMS["none"][0],
        runtime_class=_SHIMS["none"][1],
        evidence="sample",
        reference_values=_RV_SAMPLE,
        initdata_binding=None,
        platform=_p(host="any node with KVM"),
        note="no TEE: development only, refused in production",
    ),
)

# Offerings a cloud documents but that fail today (the cloud refuses them, or cloud-api-adaptor
# cannot create them), each with the open upstream issue or the source showing the gap: refused by
# the spec with the reason and the working alternative (check_pool), absent from OFFERINGS (so from
# the support matrix and every "available on" hint). Move one back into OFFERINGS when its issue
# closes or the upstream gap is fixed.
@dataclass(frozen=True)
class Refusal:
    offering: Offering
    reason: str
    hint: str
    issue: str  # the upstream issue to watch, or the source showing the gap


REFUSED: Mapping[tuple[str, str, str], Refusal] = MappingProxyType(
    {
        r.offering.key: r
        for r in (
            # AKS confidential VM node pools with TDX sizes (DCesv5, ECesv5, ...): AKS refuses
            # them today (Azure/AKS#5618, open, a known issue on AKS's own tracker), though
            # learn.microsoft.com/azure/aks/use-cvm lists the sizes. TDX peer pods are ordinary
            # Azure confidential VMs started by cloud-api-adaptor and work.
            Refusal(
                Offering(
                    "azure",
                    "tdx",
                    "nodes",
                    families=("DCesv5", "DCedsv5", "ECesv5", "ECedsv5"),
                    default_size="Standard_DC4es_v5",
                    arch="amd64",
                    shim=None,
                    runtime_class=None,
                    evidence=None,
                    reference_values=(),
                    initdata_binding=None,
                    platform=_p(osSku="Ubuntu", securityType="ConfidentialVM"),
                    note="node-level confidentiality: pods run with runc on confidential VM nodes",
                ),
                reason="AKS refuses TDX confidential VM node pools today (Azure/AKS#5618, open), "
                "so `pulumi up` would fail when it creates this node pool",
                hint="use mode: peer-pods for TDX on Azure (each pod in its own TDX confidential "
                "VM, RuntimeClass kata-remote), or snp nodes; tdx nodes return once Azure/AKS#5618 "
                "is fixed",
                issue="https://github.com/Azure/AKS/issues/5618",
            ),
            # SEV-SNP peer pods on GCP: Compute Engine creates SEV_SNP instances only with
            # minCpuPlatform "AMD Milan" (pulumi_gcp InstanceConfidentialInstanceConfig docs:
            # "If SEV_SNP, currently min_cpu_platform has to be set to "AMD Milan" or this will
            # fail to create the VM"; ../shared/facts/clouds-tee.md, GCP SEV-SNP), and
            # cloud-api-adaptor v0.22.0 never sets it: CreateInstance in
            # src/cloud-providers/gcp/provider.go@src/cloud-api-adaptor/v0.22.0 sets only
            # ConfidentialInstanceConfig and Scheduling.OnHostMaintenance TERMINATE, and no
            # GCP_* setting of manager.go reaches MinCpuPlatform. Every pod VM would fail to start.
            # Confidential GKE Nodes (snp nodes) set min_cpu_platform on the node pool and work.
            Refusal(
                Offering(
                    "gcp",
                    "snp",
                    "peer-pods",
                    families=("n2d",),
                    default_size="n2d-standard-2",
                    arch="amd64",
                    shim=_SHIMS["remote"][0],
                    runtime_class=_SHIMS["remote"][1],
                    evidence="snp",
                    reference_values=_RV_SNP,
                    initdata_binding=None,
                    platform=_p(
                        confidentialInstanceType="SEV_SNP",
                        minCpuPlatform="AMD Milan",
                        onHostMaintenance="TERMINATE",
                    ),
                ),
                reason="GCP creates SEV-SNP VMs only with the minimum CPU platform \"AMD Milan\", "
                "which cloud-api-adaptor v0.22.0 never sets on the pod VMs it creates, so every "
                "pod VM would fail to start",
                hint="use mode: nodes for SEV-SNP on GCP (Confidential GKE Nodes on N2D, which "
                "set the minimum CPU platform), or tee: tdx peer pods (C3); snp peer pods return "
                "once cloud-api-adaptor sets the minimum CPU platform",
                issue="https://github.com/confidential-containers/cloud-api-adaptor/blob/"
                "src/cloud-api-adaptor/v0.22.0/src/cloud-providers/gcp/provider.go",
            ),
        )
    }
)


def refused(provider: str, tee: str, mode: str) -> Refusal | None:
    return REFUSED.get((provider, tee, mode))


_BY_KEY: Mapping[tuple[str, str, str], Offering] = MappingProxyType({o.key: o for o in OFFERINGS})

# Why a TEE is missing where it is missing: added to the generic "available on ..." message.
TEE_NOTES = {
    "sgx": "CoCo removed its SGX runtime (enclave-cc) in v0.18.0; SGX is only offered as Azure "
    "nodes pools (DCsv3) with the SGX device plugin",
    "se": "IBM Secure Execution needs IBM Z (s390x): IBM Cloud bz2e pod VMs or your own "
    "z15/LinuxONE III hosts",
    "sev": "legacy SEV is only sold by GCP (N2D, C2D); prefer snp",
}


def find(provider: str, tee: str, mode: str) -> Offering | None:
    return _BY_KEY.get((provider, tee, mode))


def where_available(tee: str) -> str:
    """'azure (nodes, peer-pods), gcp (nodes)': every provider and mode offering the TEE."""
    by_provider: dict[str, list[str]] = {}
    for o in OFFERINGS:
        if o.tee == tee:
            by_provider.setdefault(o.provider, []).append(o.mode)
    return ", ".join(f"{p} ({', '.join(sorted(m))})" for p, m in sorted(by_provider.items()))


def modes_for(provider: str, tee: str) -> list[str]:
    return sorted(o.mode for o in OFFERINGS if o.provider == provider and o.tee == tee)


def tees_for(provider: str) -> list[str]:
    return sorted({o.tee for o in OFFERINGS if o.provider == provider})


# Instance family of an instance type, per provider.
# Azure sizes: Standard_<family letters><vCPUs>[-constrained]<features>_v<version>, the family
# written without the vCPU count (Standard_DC4as_v5 -> DCasv5). Source: learn.microsoft.com/
# azure/virtual-machines/vm-naming-conventions.
_AZURE_SIZE = re.compile(r"^Standard_([A-Z]+)(\d+)(?:-\d+)?([a-z]*)_v(\d+)$")
_AWS_TYPE = re.compile(r"^([a-z][a-z0-9-]*)\.([a-z0-9]+)$")
_GCP_TYPE = re.compile(r"^([a-z][a-z0-9]*)-([a-z]+)-(\d+)$")
_IBM_PROFILE = re.compile(r"^([a-z][a-z0-9]*)-(\d+)x(\d+)$")

SIZE_EXAMPLES = {
    "azure": "Standard_DC4as_v5",
    "aws": "m6a.large",
    "gcp": "n2d-standard-4",
    "ibmcloud": "bz2e-2x8",
}


def family_of(provider: str, instance_type: str) -> str | None:
    """The family of a well-formed instance type, or None when it is not well formed."""
    if provider == "azure":
        m = _AZURE_SIZE.match(instance_type)
        return f"{m.group(1)}{m.group(3)}v{m.group(4)}" if m else None
    if provider == "aws":
        m = _AWS_TYPE.match(instance_type)
        return m.group(1) if m else None
    if provider == "gcp":
        m = _GCP_TYPE.match(instance_type)
        return m.group(1) if m else None
    if provider == "ibmcloud":
        m = _IBM_PROFILE.match(instance_type)
        return m.group(1) if m else None
    return None


# Region and zone name shapes, checked offline; whether a size is really offered there is the
# job of `coco check --live` (cloud APIs).
REGION_PATTERNS = {
    "azure": (re.compile(r"^[a-z]+[a-z0-9]*$"), "westeurope"),
    "aws": (re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$"), "eu-west-1"),
    "gcp": (re.compile(r"^[a-z]+-[a-z]+\d+$"), "europe-west4"),
    "ibmcloud": (re.compile(r"^[a-z]{2}-[a-z]+$"), "eu-de"),
}
ZONE_PATTERNS = {
    "aws": (re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$"), "eu-west-1a"),
    "gcp": (re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$"), "europe-west4-a"),
    "ibmcloud": (re.compile(r"^[a-z]{2}-[a-z]+-\d$"), "eu-de-1"),
}


# Boot-disk types Compute Engine accepts per machine series, our preferred one first (the
# default we set). CAA v0.22.0 boots every GCP pod VM from a disk of GCP_DISK_TYPE, default
# pd-standard (src/cloud-providers/gcp/manager.go `disk-type`, passed as-is to
# zones/<zone>/diskTypes/<type> in provider.go CreateInstance), which C3 and C3D refuse
# (confidential-containers/cloud-api-adaptor#2258) and the Hyperdisk-only series C4, C4D and N4
# cannot attach at all. Sources: cloud.google.com/compute/docs/general-purpose-machines and
# compute-optimized-machines, "Supported disk types" of each series (N2D, C2D: Persistent Disk
# standard, balanced, SSD; C3, C3D: Persistent Disk balanced and SSD, Hyperdisk Balanced, no
# pd-standard; C4, C4D, N4: Hyperdisk only, Hyperdisk Balanced as boot disk); Hyperdisk Extreme
# and Throughput cannot be boot disks (cloud.google.com/compute/docs/disks/hyperdisks, feature
# summary). pd-extreme is left out: it is sold for large N2/M-series sizes, none of ours.
GCP_BOOT_DISK_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "c2d": ("pd-balanced", "pd-ssd", "pd-standard"),
        "c3": ("pd-balanced", "hyperdisk-balanced", "pd-ssd"),
        "c3d": ("pd-balanced", "hyperdisk-balanced", "pd-ssd"),
        "c4": ("hyperdisk-balanced",),
        "c4d": ("hyperdisk-balanced",),
        "n2d": ("pd-balanced", "pd-ssd", "pd-standard"),
        "n4": ("hyperdisk-balanced",),
    }
)
# Confidential VMs with Intel TDX (C3) take only balanced disks: Hyperdisk Balanced and
# Persistent Disk balanced (cloud.google.com/confidential-computing/confidential-vm/docs/
# supported-configurations, Intel TDX; (unverified): a warning, never a refusal).
GCP_TDX_BOOT_DISK_TYPES = ("pd-balanced", "hyperdisk-balanced")


def gcp_disk_types(instance_type: str) -> tuple[str, ...] | None:
    """Boot-disk types the machine series of a GCP machine type accepts (None: not in the table)."""
    family = family_of("gcp", instance_type)
    return GCP_BOOT_DISK_TYPES.get(family) if family else None


def gcp_boot_disk_type(instance_type: str) -> str | None:
    """Our preferred boot disk of the machine type's series (the first the table lists); None
    when the series is not in the table (GKE's or Compute Engine's default then applies)."""
    accepted = gcp_disk_types(instance_type)
    return accepted[0] if accepted else None


def gcp_common_disk_type(instance_types: list[str]) -> str | None:
    """The first disk type, in our order of preference, that every machine type accepts; None
    when they share none (or one is not in the table)."""
    tables = [gcp_disk_types(t) for t in instance_types]
    if not tables or any(t is None for t in tables):
        return None
    first, *rest = (t for t in tables if t is not None)
    return next((d for d in first if all(d in r for r in rest)), None)
