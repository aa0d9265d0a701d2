"""Reference-value coverage: which evidence each pool's guests present, which reference values
the pinned default attestation policy needs to call that evidence "affirming", and what a stack
lacks, with where each missing value can come from. No Pulumi, no I/O.

Source of the requirements: Trustee v0.21.0 (spec.versions.TRUSTEE_VERSION)
attestation-service/src/ear_token/ear_default_policy_cpu.rego. Its defaults are executables 33
("warning"), hardware 97 ("contraindicated") and configuration 36 ("warning"); a submodule's
ear.status is the worst tier of its claims (AR4SI: 2-31 affirming, 32-95 warning, 96-127
contraindicated), and coco-stack's resource policy releases only when every submodule is
"affirming". So each of the three claims must reach an affirming tier, which for most evidence
types takes reference values. Which evidence a pool presents is the catalogue's
`Offering.evidence` (spec/catalogue.py names the source per offering).

What the stack supplies by itself (`provided`):
- `tee: none` pools: the sample verifier's fixed values (spec.attestation.SAMPLE_REFERENCE_VALUES),
  added by the KBS component whenever a pool uses sample evidence;
- bare-metal SNP pools: `snp_launch_measurement` when `coco:kbs.kataGuest` is set (images.kata,
  measured during `pulumi up`).
The guest-image build (`coco:image.recipe`) predicts `snp_launch_measurement` for QEMU with
Debian's OVMF and TPM PCR 4/11 (images/report.py): none of the pools it boots reports those
under the names the default policy reads (cloud firmware is not Debian's OVMF; Azure reads PCR
11 as snp_pcr11/tdx_pcr11), so the messages name it as where to copy a value from, but it does
not count as covering a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from spec import catalogue
from spec.attestation import SAMPLE_REFERENCE_VALUES
from spec.model import Kbs, NodePool


@dataclass(frozen=True)
class Claim:
    """One AR4SI trust claim of the default policy for one evidence type."""

    name: str  # executables, hardware, configuration
    # Sets of reference value names, best first: the claim is affirming when every name of one
    # set is present. An empty set: affirming without any reference value.
    affirming: tuple[tuple[str, ...], ...]
    default: str  # what the claim is when no set matches
    # Conditions on the evidence alone, for the docs.
    also: str = ""


_EXE_DEFAULT = "33 (warning)"
_HW_DEFAULT = "97 (contraindicated)"
_CONF_DEFAULT = "36 (warning)"
_SNP_CONFIG = (
    "snp_smt_enabled",
    "snp_tsme_enabled",
    "snp_guest_abi_major",
    "snp_guest_abi_minor",
    "snp_single_socket",
    "snp_smt_allowed",
)
_AZ_SNP_CONFIG = (
    "smt_enabled",
    "tsme_enabled",
    "abi_major",
    "abi_minor",
    "single_socket",
    "smt_allowed",
)

# ear_default_policy_cpu.rego@v0.21.0, rule by rule.
DEFAULT_POLICY: Mapping[str, tuple[Claim, ...]] = MappingProxyType(
    {
        "sample": (
            Claim("executables", (("launch_digest",),), _EXE_DEFAULT),
            Claim(
                "hardware", (("svn", "major_version", "minimum_minor_version"),), _HW_DEFAULT
            ),
            Claim("configuration", ((),), _CONF_DEFAULT, "debug == false (always, for sample)"),
        ),
        "snp": (
            Claim("executables", (("snp_launch_measurement",),), _EXE_DEFAULT),
            Claim(
                "hardware",
                (("snp_bootloader", "snp_microcode", "snp_snp_svn", "snp_tee_svn"),),
                _HW_DEFAULT,
            ),
            # 2 with every flag, else 3 (still affirming) with debug and migration agent off
            Claim(
                "configuration",
                (_SNP_CONFIG, ()),
                _CONF_DEFAULT,
                "guest policy: debug and migration agent off",
            ),
        ),
        "tdx": (
            # 3 with the UEFI event digests too, else 4 (still affirming) with RTMR 1 and 2
            Claim(
                "executables",
                (("rtmr_1", "rtmr_2", "tdvfkernel", "tdvfkernelparams"), ("rtmr_1", "rtmr_2")),
                _EXE_DEFAULT,
            ),
            Claim(
                "hardware",
                (("mr_td",),),
                _HW_DEFAULT,
                "Intel-signed quote, TCB status UpToDate, collateral not expired",
            ),
            Claim("configuration", (("xfam",),), _CONF_DEFAULT, "TD attribute debug off"),
        ),
        "az-snp-vtpm": (
            Claim("executables", (("measurement", "snp_pcr11"),), _EXE_DEFAULT),
            Claim(
                "hardware",
                (("tcb_bootloader", "tcb_microcode", "tcb_snp", "tcb_tee"),),
                _HW_DEFAULT,
            ),
            Claim("configuration", (_AZ_SNP_CONFIG,), _CONF_DEFAULT),
        ),
        "az-tdx-vtpm": (
            Claim("executables", (("tdx_pcr11",),), _EXE_DEFAULT),
            Claim(
                "hardware",
                (("mr_td",),),
                _HW_DEFAULT,
                "Intel-signed quote, TCB status UpToDate",
            ),
            Claim("configuration", (("xfam",),), _CONF_DEFAULT),
        ),
        "tpm": (
            Claim("executables", (("tpm_pcr11", "trusted_aks"),), _EXE_DEFAULT),
            Claim("hardware", ((),), _HW_DEFAULT, "any TPM evidence"),
            Claim("configuration", ((),), _CONF_DEFAULT, "0: no claim"),
        ),
        # "trust the verifier": the SE verifier checked the image's signature and measurement
        "se": (
            Claim("executables", ((),), _EXE_DEFAULT, "the SE verifier accepted the evidence"),
            Claim("hardware", ((),), _HW_DEFAULT, "the SE verifier accepted the evidence"),
            Claim("configuration", ((),), _CONF_DEFAULT, "the SE verifier accepted the evidence"),
        ),
    }
)


def required(evidence: str) -> tuple[str, ...]:
    """The fewest names that make every claim of `evidence` affirming, sorted."""
    names: set[str] = set()
    for claim in DEFAULT_POLICY[evidence]:
        fewest: tuple[str, ...] = min(claim.affirming, key=lambda alt: len(alt))
        names |= set(fewest)
    return tuple(sorted(names))


@dataclass(frozen=True)
class Gap:
    """What one pool lacks: the evidence, the missing names, the claims they leave
    non-affirming (with their tier) and where each name can come from."""

    evidence: str
    missing: tuple[str, ...]
    claims: tuple[tuple[str, str], ...]  # (claim, tier without the names)
    sources: tuple[tuple[str, str], ...]  # (name, where it can come from), in `missing` order


def provided(pool: NodePool, kbs: Kbs) -> frozenset[str]:
    """Reference value names the stack supplies itself for this pool's evidence."""
    found: set[str] = set()
    if pool.tee == "none":
        found |= set(SAMPLE_REFERENCE_VALUES)
    if kbs.kata_guest is not None and pool.tee == "snp" and pool.mode == "bare-metal":
        found.add("snp_launch_measurement")
    return frozenset(found)


def evidence_of(pool: NodePool) -> str | None:
    offering = catalogue.find(pool.provider or "", pool.tee, pool.mode or "")
    return offering.evidence if offering is not None else None


def gap(pool: NodePool, kbs: Kbs) -> Gap | None:
    """What this pool's guests lack to be affirmed by the default policy; None when nothing
    (or when the pool presents no evidence the KBS attests)."""
    evidence = evidence_of(pool)
    if evidence is None or evidence not in DEFAULT_POLICY:
        return None
    present = set(kbs.reference_values) | provided(pool, kbs)
    missing: set[str] = set()
    claims: list[tuple[str, str]] = []
    for claim in DEFAULT_POLICY[evidence]:
        if any(set(names) <= present for names in claim.affirming):
            continue
        closest = min(claim.affirming, key=lambda names: len(set(names) - present))
        missing |= set(closest) - present
        claims.append((claim.name, claim.default))
    if not missing:
        return None
    ordered = tuple(sorted(missing))
    return Gap(
        evidence,
        ordered,
        tuple(claims),
        tuple((name, source(name, pool)) for name in ordered),
    )


_HAND = "by hand"
_CLOUD = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Azure", "ibmcloud": "IBM Cloud"}


def source(name: str, pool: NodePool) -> str:
    """Where the value of `name` can come from, for this pool's guests."""
    bare = pool.mode == "bare-metal"
    where = "these hosts" if bare else "a pod VM"
    report = "a guest's attestation report" if bare else "a pod VM's attestation report"
    cloud = _CLOUD.get(pool.provider or "", pool.provider or "")
    if name in SAMPLE_REFERENCE_VALUES:
        return "added by coco-stack for tee: none pools (the sample verifier's fixed value)"
    if name == "snp_launch_measurement":
        if bare:
            return (
                "coco:kbs.kataGuest (the kata guest, measured by `pulumi up`), or by hand"
            )
        return (
            f"{_HAND}, from a pod VM's attestation report: the image build measures its image "
            f"for QEMU with Debian's OVMF, not {cloud}'s firmware"
        )
    if name in ("snp_bootloader", "snp_microcode", "snp_snp_svn", "snp_tee_svn"):
        if bare:
            return (
                f"{_HAND}: the reported TCB of these hosts (`snphost show tcb` on a host, or "
                "`snpguest display report` in a guest)"
            )
        return f"{_HAND}: the reported TCB in {report} (`snpguest display report`)"
    if name in _SNP_CONFIG:
        return f"{_HAND}: the platform info and guest policy in {report}"
    if name in ("mr_td", "rtmr_1", "rtmr_2", "xfam", "tdvfkernel", "tdvfkernelparams"):
        return (
            f"{_HAND}, from a TD quote of {where} (coco-stack computes no TDX measurement: "
            "docs/images.md)"
        )
    if name in ("snp_pcr11", "tdx_pcr11"):
        return (
            f"{_HAND}: the image build's PCR 11 prediction (GuestImage output "
            "referenceValues.tpm_pcr11) under this name; equality on Azure's vTPM unverified"
        )
    if name == "measurement":
        return f"{_HAND}: the SNP launch measurement of Azure's paravisor, from a pod VM's report"
    if name.startswith("tcb_"):
        return f"{_HAND}: the reported TCB of a pod VM's SNP report"
    if name in _AZ_SNP_CONFIG:
        return f"{_HAND}: the platform info and guest policy of a pod VM's SNP report"
    if name == "tpm_pcr11":
        return "the image build (coco:image.recipe) predicts it"
    return _HAND


def grouped_sources(found: Gap) -> str:
    """'a, b (where); c (where)': names sharing a source written once."""
    by_source: dict[str, list[str]] = {}
    for name, where in found.sources:
        by_source.setdefault(where, []).append(name)
    return "; ".join(f"{', '.join(names)}: {where}" for where, names in by_source.items())
