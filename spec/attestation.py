"""What attestation needs to say "affirming": the reference values Trustee's default policy
compares, their shapes, and the checks a policy file must pass. No Pulumi, no I/O.

Source of every rule here: Trustee v0.21.0 (spec.versions.TRUSTEE_VERSION),
attestation-service/src/ear_token/ear_default_policy_cpu.rego and rvps/src/reference_value.rs.
"""

from __future__ import annotations

import re

# A reference value as the policy reads it: one scalar, or a list of accepted values.
Scalar = str | int | bool
ReferenceValue = Scalar | list[Scalar]


_REFERENCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# Names the default attestation policy compares with `==` or `>=` against one value
# (attestation-service/src/ear_token/ear_default_policy_cpu.rego@v0.21.0: sample platform
# version, the SNP platform and guest-policy flags, TDX tdvfkernel/tdvfkernelparams). Every other
# name is tested with `in`, which only matches inside a collection: those are stored as lists
# even when one value is given, or the policy could never match.
SCALAR_REFERENCE_VALUES = frozenset(
    {
        "major_version",
        "minimum_minor_version",
        "snp_guest_abi_major",
        "snp_guest_abi_minor",
        "snp_single_socket",
        "snp_smt_allowed",
        "snp_smt_enabled",
        "snp_tsme_enabled",
        "tdvfkernel",
        "tdvfkernelparams",
    }
)


# What the sample (no-TEE) guests of `tee: none` pools report, so that the default policy
# affirms them. Trustee v0.21.0 deps/verifier/src/sample/mod.rs (parse_tee_evidence) reports
# launch_digest "abcde" and platform_version {major: 1, minor: 4} whatever the guest sends;
# guest-components attestation-agent/attester/src/sample/mod.rs (CoCo v0.22.0) sends svn "1" (a
# string). ear_default_policy_cpu.rego@v0.21.0 affirms them with launch_digest in [...],
# svn in [...], major == major_version and minor >= minimum_minor_version. These are not
# secrets: anyone can produce sample evidence (docs/security.md).
SAMPLE_REFERENCE_VALUES: dict[str, ReferenceValue] = {
    "launch_digest": ["abcde"],
    "major_version": 1,
    "minimum_minor_version": 4,
    "svn": ["1"],
}


_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*(#.*)?$", re.MULTILINE)


def rego_problem(text: str, package: str) -> str | None:
    """Why `text` is not a usable Rego policy of `package`, or None. A light check (no Rego
    parser here): non-empty, and its `package` line names the expected package."""
    code = [line for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not code:
        return "is empty"
    found = _PACKAGE.search(text)
    if found is None:
        return f"has no package line (expected 'package {package}')"
    if found.group(1) != package:
        return f"declares package {found.group(1)!r}, the KBS queries package {package!r}"
    return None


def reference_value_problem(name: str, value: ReferenceValue) -> str | None:
    if not _REFERENCE_NAME.match(name):
        return f"reference value name {name!r} is not a plain name like 'snp_launch_measurement'"
    items = value if isinstance(value, list) else [value]
    if not items or any(v == "" for v in items):
        return f"reference value {name!r} needs a value or a non-empty list of values"
    if name in SCALAR_REFERENCE_VALUES and len(set(map(repr, items))) > 1:
        return (
            f"reference value {name!r} is compared with == or >= by the default policy, so it "
            "takes one value, not a list"
        )
    return None
