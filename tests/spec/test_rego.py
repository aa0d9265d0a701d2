"""Rego with a real engine (spec/rego.py): the shipped policies compile strictly and pass their
`opa test` unit tests (components/policies/*_test.rego); user policy files are compiled and the
resource policy is evaluated against tokens it must refuse (spec/rules/kbs.py).

The OPA CLI comes from `python3 tools/build.py opa` (or PATH). Without it the tests that run it
skip with a one-line reason, or fail under COCO_REQUIRE_OPA=1 (CI) or COCO_REQUIRE_E2E_TESTS=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from spec import rego
from spec.errors import ConfigIssue, SpecError
from spec.validate import validate

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "components" / "policies"
SHIPPED = sorted(p for p in POLICIES.glob("*.rego") if not p.name.endswith("_test.rego"))


def _find_opa() -> str | None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build

        found = build.find("opa")
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return str(found) if found else shutil.which("opa")


@pytest.fixture(scope="module")
def opa() -> str:
    found = _find_opa()
    if found is None:
        names = ("COCO_REQUIRE_OPA", "COCO_REQUIRE_E2E_TESTS")
        required = [v for v in names if os.environ.get(v) == "1"]
        if required:
            pytest.fail(f"opa is not built ({required[0]}=1): python3 tools/build.py opa")
        pytest.skip("opa is not built: python3 tools/build.py opa")
    return found


@pytest.fixture
def with_opa(opa: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The spec rules use the built opa, whatever PATH holds."""
    monkeypatch.setattr(rego, "find_opa", lambda: opa)
    return opa


def _run(opa: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [opa, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


# --- the shipped policies ----------------------------------------------------------------------


@pytest.mark.parametrize("policy", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_compiles_strictly(opa: str, policy: Path) -> None:
    done = _run(opa, "check", "--strict", policy, policy.with_name(f"{policy.stem}_test.rego"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("policy", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_unit_tests(opa: str, policy: Path) -> None:
    tests = policy.with_name(f"{policy.stem}_test.rego")
    assert tests.is_file(), f"every shipped policy has `opa test` unit tests: {tests.name}"
    done = _run(opa, "test", "-v", policy, tests)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout and "FAIL" not in done.stdout


def test_unit_tests_can_fail(opa: str, tmp_path: Path) -> None:
    """The affirming policy's tests run against allow-all fail: they test behaviour."""
    policy = tmp_path / "policy.rego"
    policy.write_text(
        (POLICIES / "resource-allow-all.rego").read_text() + "\ntees := set()\n"
    )
    done = _run(opa, "test", policy, POLICIES / "resource-affirming_test.rego")
    assert done.returncode != 0
    assert "test_warning_denied" in done.stdout and "FAIL" in done.stdout


def test_shipped_tees_are_what_coco_stack_runs() -> None:
    everything = rego.stack_tees([])  # a stack without pools: every TEE but sample
    affirming = (POLICIES / "resource-affirming.rego").read_text()
    sample = (POLICIES / "resource-affirming-sample.rego").read_text()
    assert rego.builtin_resource_policy(affirming, everything) == affirming
    assert rego.builtin_resource_policy(sample, [*everything, "sample"]) == sample
    assert set(everything) < set(rego.TRUSTEE_TEES)


@pytest.mark.parametrize(
    ("name", "tees"),
    [
        ("resource-affirming.rego", ["snp"]),
        ("resource-affirming.rego", ["tdx"]),
        ("resource-affirming.rego", ["az-snp-vtpm", "az-tdx-vtpm"]),
        ("resource-affirming.rego", ["se"]),
        ("resource-affirming.rego", rego.stack_tees([])),
        ("resource-affirming-sample.rego", ["sample"]),
        ("resource-affirming-sample.rego", ["sample", "snp"]),
    ],
)
def test_builtin_policy_passes_the_release_check(opa: str, name: str, tees: list[str]) -> None:
    text = rego.builtin_resource_policy((POLICIES / name).read_text(), tees)
    assert rego.check(opa, text, name) == []
    cases = rego.release_cases(tees)
    allowed = rego.allowed_cases(opa, text, cases, ["default/key/1", "team/db/password"])
    assert [c.name for c in cases if c.must_deny and c.name in allowed] == []
    # and it does release to an affirming guest of each TEE the stack runs, at every path
    for tee in tees:
        assert allowed[f"affirming {tee} evidence"] == ["default/key/1", "team/db/password"]


def test_allow_all_fails_every_case(opa: str) -> None:
    cases = rego.release_cases(["snp"])
    allowed = rego.allowed_cases(opa, (POLICIES / "resource-allow-all.rego").read_text(), cases, [])
    assert set(allowed) == {c.name for c in cases}


# --- the release cases without opa --------------------------------------------------------------


def test_release_cases() -> None:
    cases = rego.release_cases(["snp", "tdx"])
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    assert [c.name for c in cases if not c.must_deny] == [
        "affirming snp evidence",
        "affirming tdx evidence",
    ]
    for expected in (
        "snp evidence with ear.status warning",
        "tdx evidence with ear.status contraindicated",
        "snp evidence without ear.status",
        "a token without submodules",
        "affirming sample evidence (no TEE: anyone can produce it)",
        "affirming se evidence (a TEE this stack does not run)",
        "affirming sgx evidence (a TEE this stack does not run)",
    ):
        assert expected in names
    # with a tee: none pool, sample evidence is the stack's own
    assert "affirming sample evidence" in [
        c.name for c in rego.release_cases(["sample"]) if not c.must_deny
    ]
    warning = next(c for c in cases if c.name == "snp evidence with ear.status warning")
    submod = warning.claims["submods"]["cpu0"]
    assert submod["ear.trustworthiness-vector"]["executables"] == 33
    assert set(submod["ear.veraison.annotated-evidence"]) == {*rego.EVIDENCE_CLAIMS, "snp"}


def test_builtin_resource_policy_needs_one_tees_line() -> None:
    with pytest.raises(ValueError):
        rego.builtin_resource_policy("package policy\n", ["snp"])
    text = rego.builtin_resource_policy("package policy\ntees := {}\n", ["tdx", "snp", "snp"])
    assert text == 'package policy\ntees := {"snp", "tdx"}\n'


# --- user policy files in `coco check` ----------------------------------------------------------


def _config(env: str, tee: str = "snp", **kbs: Any) -> dict[str, Any]:
    return {
        "coco:environment": env,
        "coco:cluster": {"provider": "existing"},
        "coco:nodePools": [
            {"name": "p", "tee": tee, "mode": "bare-metal", "nodeSelector": {"a": "b"}}
        ],
        "coco:kbs": {"resources": [{"path": "default/key/1", "value": "x"}], **kbs},
    }


def _issues(config: dict[str, Any], base: Path) -> list[ConfigIssue]:
    try:
        _, warnings = validate(config, stack="t", base_dir=str(base))
    except SpecError as exc:
        return [*exc.issues, *exc.warnings]
    return warnings


def _at(issues: list[ConfigIssue], key: str) -> list[ConfigIssue]:
    return [i for i in issues if i.path == f"coco:kbs.{key}"]


ALLOW_ALL = (POLICIES / "resource-allow-all.rego").read_text()
# Mentions "affirming" and has no `default allow := true`, so a text search passes it; it also
# releases on "warning".
AFFIRMING_IN_TEXT_ONLY = """package policy

import rego.v1

default allow := false

allow if {
	some _, submod in input.submods
	submod["ear.status"] in {"affirming", "warning"}
}
"""


def test_syntax_error_is_refused_at_its_key_path(with_opa: str, tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package policy\n\nallow if {\n\tinput.x ==\n}\n")
    (tmp_path / "v0.rego").write_text("package policy\n\ntrust_claims {\n\ttrue\n}\n")
    issues = _issues(
        _config("dev", resourcePolicy="bad.rego", attestationPolicy="v0.rego"), tmp_path
    )
    (bad,) = _at(issues, "resourcePolicy")
    assert bad.severity == "error"
    assert "policy file 'bad.rego' does not compile: bad.rego:" in bad.message
    assert "rego_parse_error" in bad.message
    (v0,) = _at(issues, "attestationPolicy")
    assert "v0.rego:3: rego_parse_error: `if` keyword is required before rule body" in v0.message
    assert "Rego v1" in v0.hint


def test_attestation_policy_may_query_reference_values(with_opa: str, tmp_path: Path) -> None:
    # ear_default_policy_cpu.rego@v0.21.0 style: the AS's query_reference_value extension
    (tmp_path / "as.rego").write_text(
        "package policy\n\nimport rego.v1\n\ndefault executables := 33\n\n"
        'executables := 3 if {\n\tinput.snp.measurement in query_reference_value("m")\n}\n\n'
        "trust_claims := {\"executables\": executables}\n"
    )
    # the KBS registers no extension for the resource policy
    (tmp_path / "res.rego").write_text(
        "package policy\n\nimport rego.v1\n\ndefault allow := false\n\n"
        'allow if "x" in query_reference_value("m")\n'
    )
    config = _config("dev", resourcePolicy="res.rego", attestationPolicy="as.rego")
    issues = _issues(config, tmp_path)
    assert _at(issues, "attestationPolicy") == []
    (res,) = _at(issues, "resourcePolicy")
    assert "undefined function query_reference_value" in res.message


def test_allow_all_file_is_refused_in_production_naming_the_case(
    with_opa: str, tmp_path: Path
) -> None:
    (tmp_path / "mine.rego").write_text(ALLOW_ALL)
    (error,) = _at(_issues(_config("production", resourcePolicy="mine.rego"), tmp_path),
                   "resourcePolicy")
    assert error.severity == "error"
    assert error.message.startswith(
        "policy file 'mine.rego' releases resources for snp evidence with ear.status warning "
        "(and "
    )
    assert error.message.endswith("; refused in production")


def test_text_search_passes_what_evaluation_refuses(with_opa: str, tmp_path: Path) -> None:
    from policy import coco_policies

    # the CrossGuard pack's text check (policy/coco_policies.py) finds nothing wrong
    found: list[str] = []
    args = SimpleNamespace(
        resource_type=coco_policies.CONFIGMAP,
        props={"data": {"resource-policy.rego": AFFIRMING_IN_TEXT_ONLY}},
    )
    coco_policies._resource_policy(args, lambda message, urn=None: found.append(message))
    assert found == []
    # evaluating it does
    (tmp_path / "text.rego").write_text(AFFIRMING_IN_TEXT_ONLY)
    (error,) = _at(_issues(_config("production", resourcePolicy="text.rego"), tmp_path),
                   "resourcePolicy")
    assert "releases resources for snp evidence with ear.status warning" in error.message
    assert "refused in production" in error.message


def test_tee_the_stack_does_not_run_is_refused(with_opa: str, tmp_path: Path) -> None:
    """Trustee's sample affirming policy (kbs/sample_policies/affirming.rego@v0.21.0, `not
    any_not_affirming`) releases to any affirming TEE, and when ear.status is missing."""
    (tmp_path / "trustee.rego").write_text(
        "package policy\nimport rego.v1\n\ndefault allow = false\n\n"
        "allow if {\n    not any_not_affirming\n    count(input.submods) > 0\n}\n\n"
        "any_not_affirming if {\n    some _, submod in input.submods\n"
        '    submod["ear.status"] != "affirming"\n}\n'
    )
    (error,) = _at(_issues(_config("production", resourcePolicy="trustee.rego"), tmp_path),
                   "resourcePolicy")
    assert error.message.startswith(
        "policy file 'trustee.rego' releases resources for snp evidence without ear.status"
    )
    assert "(a TEE this stack does not run)" in error.message or "more case(s)" in error.message


def test_shipped_affirming_policy_passes(with_opa: str, tmp_path: Path) -> None:
    text = rego.builtin_resource_policy((POLICIES / "resource-affirming.rego").read_text(), ["tdx"])
    (tmp_path / "ours.rego").write_text(text)
    config = _config("production", tee="tdx", resourcePolicy="ours.rego")
    assert _at(_issues(config, tmp_path), "resourcePolicy") == []
    # as shipped (every TEE coco-stack runs) it is too wide for a tdx-only stack
    (tmp_path / "wide.rego").write_text((POLICIES / "resource-affirming.rego").read_text())
    config = _config("production", tee="tdx", resourcePolicy="wide.rego")
    (error,) = _at(_issues(config, tmp_path), "resourcePolicy")
    assert "affirming az-snp-vtpm evidence (a TEE this stack does not run)" in error.message


def test_dev_only_warns(with_opa: str, tmp_path: Path) -> None:
    (warning,) = _at(_issues(_config("dev", resourcePolicy="allow-all"), tmp_path),
                     "resourcePolicy")
    assert warning.severity == "warning" and "allow-all" in warning.message
    (tmp_path / "mine.rego").write_text(ALLOW_ALL)
    (warning,) = _at(_issues(_config("dev", resourcePolicy="mine.rego"), tmp_path),
                     "resourcePolicy")
    assert warning.severity == "warning"
    assert "releases resources for snp evidence with ear.status warning" in warning.message
    assert warning.hint.endswith("refused in production")


def test_builtin_policies_run_no_opa(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no(*_: object, **__: object) -> None:
        raise AssertionError("opa ran for a built-in policy")

    monkeypatch.setattr(rego, "find_opa", no)
    monkeypatch.setattr(rego, "_run", no)
    issues = _issues(_config("production", resourcePolicy="affirming"), tmp_path)
    assert [i for i in issues if "Policy" in i.path] == []


def test_without_opa_one_line_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(rego, "find_opa", lambda: None)
    (tmp_path / "mine.rego").write_text(ALLOW_ALL)
    (tmp_path / "as.rego").write_text("package policy\n")
    issues = _issues(
        _config("production", resourcePolicy="mine.rego", attestationPolicy="as.rego"), tmp_path
    )
    (notice,) = [i for i in issues if i.path.startswith("coco:kbs.") and "opa" in i.message]
    assert notice.severity == "warning" and notice.path == "coco:kbs.resourcePolicy"
    assert "\n" not in notice.render()
    assert "'mine.rego' and 'as.rego' only checked lightly" in notice.message
    assert "not evaluated for production safety" in notice.message
    assert "tools/build.py opa" in notice.message
    # today's checks still run: the package line, and allow-all by name
    (tmp_path / "as.rego").write_text("package agent_policy\n")
    issues = _issues(
        _config("production", resourcePolicy="allow-all", attestationPolicy="as.rego"), tmp_path
    )
    assert [i.severity for i in _at(issues, "resourcePolicy")] == ["error"]
    assert "agent_policy" in _at(issues, "attestationPolicy")[0].message


def test_policy_failing_on_a_token_is_refused(with_opa: str, tmp_path: Path) -> None:
    """The KBS answers an evaluation error with an error, never the resource; coco-stack
    refuses such a policy in production all the same, with OPA's message."""
    (tmp_path / "conflict.rego").write_text(
        "package policy\n\nimport rego.v1\n\nallow := true if input.submods.cpu0\n"
        'allow := false if input.submods.cpu0["ear.status"] == "warning"\n'
    )
    (error,) = _at(_issues(_config("production", resourcePolicy="conflict.rego"), tmp_path),
                   "resourcePolicy")
    assert error.message.startswith(
        "policy file 'conflict.rego' fails when evaluated: conflict.rego:6: eval_conflict_error"
    )
    assert "/tmp" not in error.message and "\n" not in error.message
