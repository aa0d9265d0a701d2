"""Rego policies checked with a real engine: the OPA CLI (`opa`), when there is one.

What the KBS of Trustee v0.21.0 (spec.versions.TRUSTEE_VERSION) does with a policy, read from
its source:
- Engine: regorus 0.10.1 (deps/policy-engine/src/policy/rego.rs), created with
  `regorus::Engine::new()`, which parses Rego v1 (`if` before rule bodies, `contains` for
  multi-value rules; `import rego.v1` allowed). OPA 1.x parses v1 by default, so `opa check`
  runs without `--v0-compatible`: a v0-only policy (`allow { ... }`) is refused by both.
- Resource policy: kbs/src/api_server.rs evaluates `data.policy.allow` with `input` = the claims
  of the requester's verified attestation token and `data` = {"plugin", "resource-path" (the
  request path after the plugin, a list), "query"}. An undefined or non-boolean `allow` denies.
- Attestation policy: attestation-service/src/ear_token/broker.rs evaluates
  `data.policy.trust_claims` with the extension function `query_reference_value(name)` (one
  string argument), which OPA does not know: it is declared by a stub module when checking.
- Token claims (EAR, attestation-service/docs/example.token.json): `submods.<class><n>` (cpu0,
  ...) each with "ear.status" (affirming, warning, contraindicated), "ear.trustworthiness-vector",
  "ear.appraisal-policy-id" and "ear.veraison.annotated-evidence" = {<tee>: the TEE's claims,
  init_data, init_data_claims, report_data, runtime_data_claims} (broker.rs transform_claims;
  <tee> is the serialized kbs-types Tee name, attestation-service/docs/tcb_claims.md).

`opa` is looked up on PATH, then in the cache of `python3 tools/build.py opa` (a development
checkout). Without it the spec rules fall back to spec.attestation.rego_problem and say so once.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOW_TO_GET_OPA = (
    "put the OPA CLI on PATH (https://www.openpolicyagent.org/docs, 'Running OPA', or "
    "`python3 tools/build.py opa` in a coco-stack checkout)"
)
TIMEOUT = 30.0  # seconds for one opa run; a policy that takes longer is reported

# Every TEE name Trustee v0.21.0 can put in a token's annotated evidence
# (attestation-service/docs/tcb_claims.md; deps/verifier/src/lib.rs and
# ear_default_policy_gpu.rego for sampledevice).
TRUSTEE_TEES = (
    "az-snp-vtpm", "az-tdx-vtpm", "cca", "csv", "hygondcu", "nvidia", "sample",
    "sampledevice", "se", "sgx", "snp", "tdx", "tpm",
)
# What transform_claims (attestation-service/src/ear_token/broker.rs@v0.21.0) puts next to the
# TEE's own claims in "ear.veraison.annotated-evidence".
EVIDENCE_CLAIMS = ("init_data", "init_data_claims", "report_data", "runtime_data_claims")


def find_opa() -> str | None:
    """The `opa` to run: PATH first, then the newest one `python3 tools/build.py opa` built
    (its cache, tools/README.md "Cache"; a glob, so nothing slow runs here)."""
    found = shutil.which("opa")
    if found:
        return found
    root = os.environ.get("COCO_TOOLS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "coco-stack", "tools"
    )
    pattern = os.path.join(root, "opa-*", "bin", "opa")
    built = [p for p in glob.glob(pattern) if os.access(p, os.X_OK)]
    return max(built, key=os.path.getmtime) if built else None


class OpaError(Exception):
    """opa could not run, or failed in a way that is not a problem of the policy."""


def _run(
    opa: str, args: Sequence[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [opa, *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpaError(f"{os.path.basename(opa)} {args[0]}: {exc}") from exc


# query_reference_value as the attestation service registers it: one argument, any result.
_AS_EXTENSIONS = """package policy

import rego.v1

query_reference_value(name) := data.coco_stack_reference_values[name]
"""


def _errors(stdout: str, stderr: str, files: Mapping[str, str]) -> list[str]:
    """opa's JSON errors as `FILE:LINE: code: message`, FILE as the user wrote it."""
    found = None
    for stream in (stdout, stderr):  # opa check writes its JSON to stderr, opa eval to stdout
        try:
            found = json.loads(stream).get("errors") or found
        except (ValueError, AttributeError):
            continue
    if not found:
        return [(stderr or stdout).strip() or "opa failed without a message"]
    out = []
    for e in found:
        loc = e.get("location") or {}
        where = files.get(loc.get("file", ""), loc.get("file", ""))
        at = f"{where}:{loc['row']}: " if where and loc.get("row") else ""
        message = str(e.get("message", ""))
        for tmp, shown in files.items():
            message = message.replace(tmp, shown)
        out.append(" ".join(f"{at}{e.get('code', 'error')}: {message}".split()))
    return out


@functools.lru_cache(maxsize=64)
def _check(opa: str, text: str, shown: str, attestation: bool) -> tuple[str, ...]:
    with tempfile.TemporaryDirectory(prefix="coco-rego-") as tmp:
        policy = os.path.join(tmp, "policy.rego")
        with open(policy, "w", encoding="utf-8") as f:
            f.write(text)
        args = ["check", "--format", "json", policy]
        if attestation:
            stub = os.path.join(tmp, "extensions.rego")
            with open(stub, "w", encoding="utf-8") as f:
                f.write(_AS_EXTENSIONS)
            args.append(stub)
        done = _run(opa, args)
        if done.returncode == 0:
            return ()
        return tuple(_errors(done.stdout, done.stderr, {policy: shown}))


def check(opa: str, text: str, shown: str, *, attestation: bool = False) -> list[str]:
    """What `opa check` says against the policy `text` (Rego v1, as Trustee's regorus reads it),
    each `SHOWN:LINE: code: message`; empty when it compiles. `attestation`: an attestation
    service policy, which may call query_reference_value."""
    return list(_check(opa, text, shown, attestation))


# ---------------------------------------------------------------------------------------------
# Release cases: synthetic token claims a production resource policy must deny.

# Trust vectors (draft-ietf-rats-ar4si tiers: 2-31 affirming, 32-95 warning, 96-127
# contraindicated). AFFIRMING is what ear_default_policy_cpu.rego@v0.21.0 gives a guest whose
# reference values match; WARNING and CONTRAINDICATED are its defaults when they do not
# (executables 33, configuration 36, hardware 97), as in attestation-service/docs/
# example.token.json.
_VECTOR = {
    "instance-identity": 0, "configuration": 2, "executables": 3, "file-system": 0,
    "hardware": 2, "runtime-opaque": 0, "storage-opaque": 0, "sourced-data": 0,
}
AFFIRMING = dict(_VECTOR)
WARNING = {**_VECTOR, "executables": 33, "configuration": 36}
CONTRAINDICATED = {**_VECTOR, "executables": 33, "configuration": 36, "hardware": 97}

# Placeholder claims per TEE: only their presence matters to the cases (a policy that also pins
# measurements or initdata digests denies these values whatever the status; see docs/kbs.md).
# Sample: what Trustee's sample verifier reports (spec.attestation.SAMPLE_REFERENCE_VALUES).
_TEE_CLAIMS: dict[str, dict[str, Any]] = {
    "sample": {"launch_digest": "abcde", "svn": "1", "platform_version": {"major": 1, "minor": 4},
               "debug": False},
}


def _submod(
    tee: str | None, status: str | None, vector: Mapping[str, int] | None
) -> dict[str, Any]:
    sub: dict[str, Any] = {"ear.appraisal-policy-id": "default"}
    if status is not None:
        sub["ear.status"] = status
    if vector is not None:
        sub["ear.trustworthiness-vector"] = dict(vector)
    if tee is not None:
        sub["ear.veraison.annotated-evidence"] = {
            "init_data": "00" * 32,
            "init_data_claims": None,
            "report_data": "00" * 64,
            "runtime_data_claims": None,
            tee: _TEE_CLAIMS.get(tee, {"placeholder": "coco-stack release check"}),
        }
    return sub


def _token(submods: Mapping[str, Any]) -> dict[str, Any]:
    """EAR claims as the KBS's token verifier returns them (example.token.json@v0.21.0)."""
    return {
        "eat_profile": "tag:github.com,2024:confidential-containers/Trustee",
        "iat": 1760426134,
        "exp": 1760426434,
        "ear.verifier-id": {
            "developer": "https://confidentialcontainers.org",
            "build": "attestation-service 0.1.0",
        },
        "submods": dict(submods),
    }


@dataclass(frozen=True)
class Case:
    name: str  # how messages name it
    claims: dict[str, Any]  # the policy's input
    must_deny: bool  # False: an affirming guest of a TEE the stack runs (the policy may allow)


def release_cases(tees: Iterable[str]) -> list[Case]:
    """The synthetic tokens a resource policy is evaluated against, for a stack whose guests
    present evidence `tees` (Trustee TEE names; "sample" only with a tee: none pool). Must
    deny: a warning or contraindicated status, missing claims, sample evidence when the stack
    has no tee: none pool, any TEE the stack does not run, and a second submodule that is not
    affirming."""
    ours = sorted(set(tees))
    cases: list[Case] = []
    for tee in ours:
        cases += [
            Case(f"affirming {tee} evidence",
                 _token({"cpu0": _submod(tee, "affirming", AFFIRMING)}), False),
            Case(f"{tee} evidence with ear.status warning",
                 _token({"cpu0": _submod(tee, "warning", WARNING)}), True),
            Case(f"{tee} evidence with ear.status contraindicated",
                 _token({"cpu0": _submod(tee, "contraindicated", CONTRAINDICATED)}), True),
            Case(f"{tee} evidence without ear.status",
                 _token({"cpu0": _submod(tee, None, AFFIRMING)}), True),
            Case(f"{tee} evidence without ear.status and trust vector",
                 _token({"cpu0": _submod(tee, None, None)}), True),
            Case(f"affirming {tee} evidence and a second submodule with ear.status warning",
                 _token({"cpu0": _submod(tee, "affirming", AFFIRMING),
                         "cpu1": _submod(tee, "warning", WARNING)}), True),
        ]
    cases += [
        Case("a token without claims", {}, True),
        Case("a token without submodules", _token({}), True),
        Case("ear.status affirming without evidence claims",
             _token({"cpu0": _submod(None, "affirming", AFFIRMING)}), True),
    ]
    if "sample" not in ours:
        cases.append(
            Case("affirming sample evidence (no TEE: anyone can produce it)",
                 _token({"cpu0": _submod("sample", "affirming", AFFIRMING)}), True)
        )
    for tee in TRUSTEE_TEES:
        if tee not in ours and tee != "sample":
            cases.append(
                Case(f"affirming {tee} evidence (a TEE this stack does not run)",
                     _token({"cpu0": _submod(tee, "affirming", AFFIRMING)}), True)
            )
    return cases


# Evaluates data.policy.allow for every case and resource path in one opa run. The KBS releases
# only when allow is exactly true (api_server.rs: undefined or non-boolean is false).
_HARNESS = """package coco_stack_release_check

import rego.v1

allowed contains [name, path] if {
	some name, claims in input.cases
	some path in input.paths
	data.policy.allow == true with input as claims
		with data.plugin as "resource"
		with data["resource-path"] as path
		with data.query as {}
}
"""


@functools.lru_cache(maxsize=64)
def _evaluate(
    opa: str, text: str, shown: str, request: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    with tempfile.TemporaryDirectory(prefix="coco-rego-") as tmp:
        policy = os.path.join(tmp, "policy.rego")
        harness = os.path.join(tmp, "harness.rego")
        with open(policy, "w", encoding="utf-8") as f:
            f.write(text)
        with open(harness, "w", encoding="utf-8") as f:
            f.write(_HARNESS)
        done = _run(
            opa,
            ["eval", "--format", "json", "--stdin-input", "-d", policy, "-d", harness,
             "data.coco_stack_release_check.allowed"],
            stdin=request,
        )
        if done.returncode != 0:
            raise OpaError("; ".join(_errors(done.stdout, done.stderr, {policy: shown})))
        result = json.loads(done.stdout).get("result") or []
        pairs = result[0]["expressions"][0]["value"] if result else []
    found: dict[str, list[str]] = {}
    for name, path in pairs:
        found.setdefault(name, []).append("/".join(path))
    return tuple(sorted((k, tuple(sorted(v))) for k, v in found.items()))


def allowed_cases(
    opa: str,
    text: str,
    cases: Sequence[Case],
    resource_paths: Iterable[str],
    shown: str = "policy.rego",
) -> dict[str, list[str]]:
    """{case name: resource paths it released} for the cases the resource policy `text`
    allows, evaluated by `opa eval`. `resource_paths`: repository/type/tag as the stack
    declares them (a placeholder path when there are none); `shown`: the file name messages
    use. Raises OpaError when the policy cannot be evaluated (for example conflicting rule
    values)."""
    paths = sorted({p for p in resource_paths} or {"default/key/1"})
    request = json.dumps(
        {"cases": {c.name: c.claims for c in cases}, "paths": [p.split("/") for p in paths]},
        sort_keys=True,
    )
    return {name: list(found) for name, found in _evaluate(opa, text, shown, request)}


# ---------------------------------------------------------------------------------------------
# The built-in resource policies, written for the TEEs of one stack.


def stack_tees(pools: Iterable[Any]) -> list[str]:
    """The TEE names (as in tokens) of the evidence the guests of `pools` (spec.model.NodePool)
    present. A stack with no such pool (a KBS serving guests of other stacks) gets every TEE
    coco-stack runs, sample (tee: none) excepted."""
    from spec import catalogue

    found = {
        o.evidence
        for x in pools
        if (o := catalogue.find(x.provider or "", x.tee, x.mode or "")) is not None and o.evidence
    }
    if found:
        return sorted(found)
    return sorted({o.evidence for o in catalogue.OFFERINGS if o.evidence} - {"sample"})

_TEES_LINE = "tees := "


def builtin_resource_policy(text: str, tees: Iterable[str]) -> str:
    """A shipped resource policy (components/policies/resource-affirming*.rego) with its
    `tees := {...}` line listing `tees`, so it denies evidence of every other TEE."""
    names = sorted(set(tees))
    line = _TEES_LINE + ("{" + ", ".join(json.dumps(t) for t in names) + "}" if names else "set()")
    lines = text.splitlines(keepends=True)
    hits = [i for i, x in enumerate(lines) if x.startswith(_TEES_LINE)]
    if len(hits) != 1:
        raise ValueError("the policy has no single `tees := ...` line to set")
    lines[hits[0]] = line + "\n"
    return "".join(lines)
