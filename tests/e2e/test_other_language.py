"""coco-stack's components from another Pulumi language, with the real CLI: Go.

The user's workflow of docs/architecture.md ("Other languages"): in a Go program
(tests/e2e/go_program: Pulumi.yaml, main.go, go.mod, go.sum), `pulumi package add
<checkout>/components/plugin` generates the Go SDK of our component package (sdks/coco-stack),
links it in go.mod and records the package in Pulumi.yaml; `pulumi preview` then builds the
program, which registers NodePool, Runtime and KeyBroker; the Python plugin constructs them.

Go rather than TypeScript: the Pulumi Go SDK comes from the module proxy that tools/build.py
already uses (its modules are in the module cache once the pulumi group is built), and neither
language host is served upstream, so ours (tools/go/pulumi/cmd/pulumi-language-go) is a small
Go program; see tools/README.md for the timings.

The CLI, our Go and Python language hosts and the providers come from tools/build.py (groups
pulumi, pulumi-providers); the cluster is the loopback control plane (tests/e2e/conftest.py).
Helm charts cannot be pulled here: the program passes the stand-in chart of tests/charts/ as the
Runtime's `chart` input. Without Go the test skips with one line, unless
COCO_REQUIRE_E2E_TESTS=1, which fails it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.pulumi_cli import ROOT, Cli, bin_dirs, cli_env, harness

PROGRAM = Path(__file__).resolve().parent / "go_program"
PLUGIN = ROOT / "components" / "plugin"
STAND_IN_CHART = ROOT / "tests" / "charts" / "confidential-containers"
STACK = "e2e-go"
KBS_VALUE = "hello from the Go program"  # set as a secret; must never appear in plain text
# go build of the program and the plugin's virtualenv (pip) are slow on a cold machine
TIMEOUT = 1800


class GoProject(Cli):
    """The Go program's copy; `--stack` only where a command takes it."""

    def preview(
        self, *, ok: bool = True
    ) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        done = self.run("preview", "--json", "--stack", STACK, ok=ok)
        return json.loads(done.stdout), done


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, cluster: harness.Cluster
) -> Iterator[GoProject]:
    bins = bin_dirs(need_go=True)
    tmp = tmp_path_factory.mktemp("go")
    work = tmp / "program"
    shutil.copytree(PROGRAM, work)
    result = GoProject(work, cli_env(tmp, bins, cluster), timeout=TIMEOUT)
    result.run("stack", "init", STACK, "--secrets-provider", "passphrase")
    yield result


@pytest.fixture(scope="module")
def added(project: GoProject) -> Iterator[subprocess.CompletedProcess[str]]:
    """`pulumi package add <checkout>/components/plugin`, exactly as the docs tell users.

    That creates the plugin's virtualenv in the checkout (components/plugin/venv, as
    PulumiPlugin.yaml says); removed afterwards when this test made it: tests/test_layout.py
    reads every .py file under components/, the virtualenv's too."""
    venv = PLUGIN / "venv"
    made = not venv.exists()
    try:
        yield project.run("package", "add", str(PLUGIN))
    finally:
        if made:
            shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def valid_preview(project: GoProject, added: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    project.run("config", "set", "--secret", "kbsValue", KBS_VALUE, "--stack", STACK)
    project.run("config", "set", "runtimeChart", str(STAND_IN_CHART), "--stack", STACK)
    preview, done = project.preview()
    assert KBS_VALUE not in done.stdout + done.stderr
    return preview


def _steps(preview: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """URN -> the step's new state."""
    return {s["urn"]: s.get("newState") or {} for s in preview.get("steps", [])}


def _one(steps: dict[str, dict[str, Any]], type_: str, name: str) -> tuple[str, dict[str, Any]]:
    found = [
        (urn, st)
        for urn, st in steps.items()
        if urn.endswith(f"${type_}::{name}") or urn.endswith(f"::{type_}::{name}")
    ]
    assert len(found) == 1, f"{type_} {name}: {sorted(steps)}"
    return found[0]


class TestPackageAdd:
    """`pulumi package add` generates a Go SDK of our package and links it into the program."""

    def test_sdk_generated_and_linked(
        self, project: GoProject, added: subprocess.CompletedProcess[str]
    ) -> None:
        sdk = project.dir / "sdks" / "coco-stack"
        assert (sdk / "go.mod").is_file()
        for component in ("nodePool", "runtime", "keyBroker", "guestImage"):
            assert (sdk / "cocostack" / f"{component}.go").is_file(), component
        go_mod = (project.dir / "go.mod").read_text()
        assert "example.com/pulumi-coco-stack/sdk/go => ./sdks/coco-stack" in go_mod
        manifest = yaml.safe_load((project.dir / "Pulumi.yaml").read_text())
        assert manifest["packages"] == {"coco-stack": str(PLUGIN)}
        assert (
            'import "example.com/pulumi-coco-stack/sdk/go/cocostack"' in added.stdout + added.stderr
        )

    def test_go_sdk_defines_every_input_type(
        self, project: GoProject, added: subprocess.CompletedProcess[str]
    ) -> None:
        """The types a Go program needs for Runtime's pools and KeyBroker's resources exist
        (before components.plugin.serve, KbsResourceArgs was used but never defined)."""
        types = (project.dir / "sdks" / "coco-stack" / "cocostack" / "pulumiTypes.go").read_text()
        for name in ("PoolArgs", "KbsResourceArgs"):
            assert f"type {name} struct" in types, name


class TestPreview:
    """`pulumi preview --json` of the Go program: our components and their children."""

    def test_components_registered(self, valid_preview: dict[str, Any]) -> None:
        steps = _steps(valid_preview)
        types = {st.get("type") for st in steps.values()}
        assert {
            "coco-stack:index:NodePool",
            "coco-stack:index:Runtime",
            "coco-stack:index:KeyBroker",
        } <= types
        errors = [d for d in valid_preview.get("diagnostics", []) if d.get("severity") == "error"]
        assert errors == []

    def test_runtime_children(self, valid_preview: dict[str, Any]) -> None:
        steps = _steps(valid_preview)
        runtime_urn, _ = _one(steps, "coco-stack:index:Runtime", "coco")
        inner_urn, inner = _one(steps, "coco:runtime:CocoRuntime", "coco-runtime")
        assert inner["parent"] == runtime_urn
        for tee in ("snp", "tdx"):
            _, rc = _one(
                steps, "kubernetes:node.k8s.io/v1:RuntimeClass", f"coco-runtime-kata-qemu-{tee}"
            )
            assert rc["parent"] == inner_urn
            inputs = rc["inputs"]
            assert inputs["handler"] == f"kata-qemu-{tee}"
            assert inputs["scheduling"]["nodeSelector"]["coco-stack.io/tee"] == tee
        _, ns = _one(steps, "kubernetes:core/v1:Namespace", "coco-runtime-namespace")
        labels = ns["inputs"]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
        _, release = _one(steps, "kubernetes:helm.sh/v3:Release", "coco-runtime-chart")
        assert release["inputs"]["chart"] == str(STAND_IN_CHART)

    def test_node_pool_and_key_broker(self, valid_preview: dict[str, Any]) -> None:
        steps = _steps(valid_preview)
        pool_urn, _ = _one(steps, "coco-stack:index:NodePool", "snp")
        _, inner_pool = _one(steps, "coco:pools:NodePool", "snp-pool")
        assert inner_pool["parent"] == pool_urn
        kbs_urn, _ = _one(steps, "coco-stack:index:KeyBroker", "kbs")
        kbs_inner_urn, kbs_inner = _one(steps, "coco:kbs:KeyBroker", "kbs-kbs")
        assert kbs_inner["parent"] == kbs_urn
        _, ns = _one(steps, "kubernetes:core/v1:Namespace", "kbs-kbs-namespace")
        assert (
            ns["inputs"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        )
        _, secret = _one(steps, "kubernetes:core/v1:Secret", "kbs-kbs-resources")
        assert secret["parent"] == kbs_inner_urn
        # the Go program's secret config value stays a secret through the component
        assert secret["inputs"]["data"] == "[secret]"
        assert "default/go/key" in json.dumps(secret["inputs"]["metadata"])
        _one(steps, "kubernetes:apps/v1:Deployment", "kbs-kbs-deployment")
        assert KBS_VALUE not in json.dumps(valid_preview)


class TestBadInput:
    """Bad inputs through the Go SDK fail with our key-path errors, all at once, and register
    nothing of the component they were given to."""

    def test_invalid_tee_and_chart(self, project: GoProject, valid_preview: dict[str, Any]) -> None:
        missing = project.dir / "no-such-chart"
        project.run("config", "set", "tdxTee", "sgx", "--stack", STACK)
        project.run("config", "set", "runtimeChart", str(missing), "--stack", STACK)
        try:
            preview, done = project.preview(ok=False)
        finally:
            project.run("config", "rm", "tdxTee", "--stack", STACK)
            project.run("config", "set", "runtimeChart", str(STAND_IN_CHART), "--stack", STACK)
        assert done.returncode != 0
        errors = "\n".join(
            d["message"] for d in preview.get("diagnostics", []) if d.get("severity") == "error"
        )
        assert "Runtime 'coco': invalid inputs" in errors
        assert "pools[1].tee: Intel SGX is not offered on baremetal" in errors
        assert f"chartPath: chart directory '{missing}' does not exist" in errors
        steps = _steps(preview)
        assert not [u for u in steps if "coco-stack:index:Runtime" in u], sorted(steps)
        assert not [u for u in steps if "RuntimeClass" in u], sorted(steps)
