"""The user's workflow with the real engine: `pulumi preview --diff`, `up`, `refresh`, `destroy`.

The Pulumi CLI, its Python language host and the kubernetes, random, tls and command provider
plugins come from tools/build.py (groups pulumi and pulumi-providers); the cluster is the
loopback control plane of tools/cluster.py with kwok nodes (tests/e2e/conftest.py). State is a
local file backend, secrets use the passphrase provider, plugins come only from PATH: nothing is
downloaded. The runtime chart is the stand-in in tests/charts/ (Helm charts cannot be pulled
here), installed through `coco:charts.runtime.path`, the key air-gapped users set.

Each stack runs in a copy of the project (Pulumi.yaml, __main__.py, its stack file) so that
`pulumi config set` never writes into the repository's stacks/.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli import preview
from spec.runtime_plan import KATA_RUNTIME_READY
from tests.e2e.conftest import eventually, pod_ready
from tests.e2e.pulumi_cli import ROOT, Cli, bin_dirs, cli_env, harness

STAND_IN_CHART = ROOT / "tests" / "charts" / "confidential-containers"
KBS_NAMESPACE = "coco-kbs"


@dataclass
class Project(Cli):
    """A copy of the project with one stack, and the environment the CLI runs in."""

    def config_set(self, path: str, value: str, *, secret: bool = False) -> None:
        # exactly as README tells users: pulumi config set [--secret] --path 'coco:...' VALUE
        self.run("config", "set", *(["--secret"] if secret else []), "--path", path, value)

    def export(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "export").stdout)

    def resources(self) -> list[dict[str, Any]]:
        return self.export().get("deployment", {}).get("resources") or []


def make_project(
    tmp: Path, stack: str, config: dict[str, Any], bins: list[Path], cluster: harness.Cluster
) -> Project:
    project = tmp / "project"
    (project / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "__main__.py", project / "__main__.py")
    manifest = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    # the copy runs the checkout's code from the checkout's venv
    manifest["runtime"]["options"]["virtualenv"] = str(Path(sys.prefix))
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (project / "stacks" / f"Pulumi.{stack}.yaml").write_text(
        yaml.safe_dump({"config": config}, sort_keys=False)
    )
    env = cli_env(
        tmp,
        bins,
        cluster,
        PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK="1",
        PYTHONPATH=str(ROOT),
    )
    result = Project(project, env, stack)
    result.run("stack", "init", "--secrets-provider", "passphrase")
    return result


def dev_config() -> dict[str, Any]:
    """The dev sample, its KBS resource value left out: the test sets it as a secret."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    for resource in config["coco:kbs"]["resources"]:
        resource.pop("value")
    return config


def mixed_config() -> dict[str, Any]:
    """An existing cluster with SNP, TDX and development pools on the harness's kwok nodes
    (labelled as the stack labels the nodes of its bare-metal pools)."""
    return {
        "coco:environment": "dev",
        "coco:cluster": {"provider": "existing"},
        "coco:nodePools": [
            {
                "name": "snp",
                "tee": "snp",
                "mode": "bare-metal",
                "nodeSelector": {"coco-stack.io/tee": "snp"},
            },
            {
                "name": "tdx",
                "tee": "tdx",
                "mode": "bare-metal",
                "nodeSelector": {"coco-stack.io/tee": "tdx"},
            },
            {
                "name": "dev",
                "tee": "none",
                "mode": "bare-metal",
                "nodeSelector": {"node.kubernetes.io/worker": ""},
            },
        ],
        "coco:kbs": {
            "enabled": True,
            "expose": "clusterip",
            "resources": [{"path": "default/e2e/key"}],
            # hand-set reference values: kwok nodes have no guests to measure
            "referenceValues": {
                "snp_launch_measurement": ["ab" * 48],
                "mr_td": ["cd" * 48],
            },
        },
    }


def preview_json(project: Project) -> dict[str, Any]:
    return json.loads(project.run("preview", "--json").stdout)


def preview_steps(project: Project) -> dict[str, str]:
    """URN -> operation of every step `pulumi preview --json` plans that is not `same`."""
    steps = preview_json(project).get("steps", [])
    return {s["urn"]: s["op"] for s in steps if s.get("op") != "same"}


def ours(api: harness.Api) -> dict[str, list[str]]:
    """Every object the stacks author, found by what they are named and labelled."""
    found: dict[str, list[str]] = {}
    namespaces = [
        n["metadata"]["name"]
        for n in api.get("/api/v1/namespaces")["items"]
        if n["metadata"]["name"] in (KBS_NAMESPACE, "coco-system")
        and n["status"].get("phase") != "Terminating"
    ]
    if namespaces:
        found["namespaces"] = namespaces
    runtime_classes = [
        r["metadata"]["name"]
        for r in api.get("/apis/node.k8s.io/v1/runtimeclasses")["items"]
        if r["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "coco-stack"
    ]
    if runtime_classes:
        found["runtimeclasses"] = runtime_classes
    return found


@pytest.fixture(scope="module")
def bins() -> list[Path]:
    return bin_dirs()


@pytest.fixture(scope="module")
def dev(
    tmp_path_factory: pytest.TempPathFactory, bins: list[Path], cluster: harness.Cluster
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("dev"), "e2e-dev", dev_config(), bins, cluster)
    project.config_set("coco:kbs.resources[0].value", "hello from the e2e KBS", secret=True)
    project.config_set("coco:charts.runtime.path", str(STAND_IN_CHART))
    yield project
    project.run("destroy", "--yes", "--skip-preview", ok=False)


class TestDevStack:
    """One stack's whole life, in order (the tests share the stack)."""

    def test_secret_stored_encrypted(self, dev: Project) -> None:
        text = (dev.dir / "stacks" / "Pulumi.e2e-dev.yaml").read_text()
        assert "hello from the e2e KBS" not in text
        assert "secure:" in text

    def test_preview_diff(self, dev: Project) -> None:
        done = dev.run("preview", "--diff")
        assert "coco:kbs:KeyBroker" in done.stdout
        assert "hello from the e2e KBS" not in done.stdout + done.stderr
        summary = preview.markdown(preview_json(dev), "e2e-dev")
        assert "| create | `kubernetes:apps/v1:Deployment` | `coco-kbs-deployment` |" in summary
        assert "| create | `kubernetes:core/v1:Secret` | `coco-kbs-resources` |" in summary
        assert "hello from the e2e KBS" not in summary

    def test_up(self, dev: Project, cluster: harness.Cluster) -> None:
        started = time.monotonic()
        done = dev.run("up", "--yes", "--skip-preview")
        print(f"\npulumi up of the dev stack: {time.monotonic() - started:.1f} s")
        assert "hello from the e2e KBS" not in done.stdout + done.stderr
        api = cluster.api
        kbs_ns = api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}")
        assert kbs_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        runtime_ns = api.get("/api/v1/namespaces/coco-system")
        assert (
            runtime_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
        )
        rc = api.get("/apis/node.k8s.io/v1/runtimeclasses/kata-qemu-coco-dev")
        assert rc["handler"] == "kata-qemu-coco-dev"
        # the pool's selector, and the label kata-deploy sets once the runtime is installed
        assert rc["scheduling"]["nodeSelector"] == {
            "node.kubernetes.io/worker": "",
            KATA_RUNTIME_READY: "true",
        }
        deployment = api.get(f"/apis/apps/v1/namespaces/{KBS_NAMESPACE}/deployments/kbs")
        assert deployment["status"].get("availableReplicas") == 1
        assert api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}/services/kbs")["spec"]["type"] == (
            "ClusterIP"
        )
        pvc = api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}/persistentvolumeclaims/kbs-storage")
        assert pvc["status"]["phase"] == "Bound"
        for secret in ("kbs-keys", "kbs-resources"):
            assert api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}/secrets/{secret}")["type"] == (
                "Opaque"
            )
        for config_map in ("kbs-config", "kbs-policies", "kbs-reference-values"):
            assert api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}/configmaps/{config_map}")
        # the KBS pod was admitted under `restricted` and runs (kwok marks it ready)
        pods = api.get(
            f"/api/v1/namespaces/{KBS_NAMESPACE}/pods?labelSelector=app.kubernetes.io/name%3Dkbs"
        )["items"]
        assert len(pods) == 1 and pod_ready(pods[0])
        # the stand-in runtime chart was installed from the local directory
        assert api.get("/api/v1/namespaces/coco-system/configmaps/coco-stand-in")

    def test_second_up_changes_nothing(self, dev: Project) -> None:
        assert preview_steps(dev) == {}
        dev.run("up", "--yes", "--expect-no-changes")

    def test_refresh_finds_no_drift(self, dev: Project) -> None:
        # --expect-no-changes makes pulumi exit non-zero on any drift; run() fails on that
        done = dev.run("refresh", "--yes", "--expect-no-changes")
        assert done.returncode == 0

    def test_changing_one_kbs_value_rolls_the_kbs(
        self, dev: Project, cluster: harness.Cluster
    ) -> None:
        api = cluster.api
        selector = "labelSelector=app.kubernetes.io/name%3Dkbs"
        before = {
            p["metadata"]["uid"]
            for p in api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}/pods?{selector}")["items"]
        }
        dev.config_set("coco:kbs.resources[0].value", "a new greeting", secret=True)
        steps = {urn.rsplit("::", 1)[1]: op for urn, op in preview_steps(dev).items()}
        # exactly the resources Secret (pulumi-kubernetes replaces a Secret whose data changes
        # unless the provider's enableSecretMutable is set) and the Deployment, whose pod
        # template carries the digest of the declared resources (it rolls)
        assert steps == {"coco-kbs-resources": "replace", "coco-kbs-deployment": "update"}, steps
        text = dev.run("preview", "--diff").stdout
        assert "a new greeting" not in text and "hello from the e2e KBS" not in text
        # the pull-request summary of this real plan: the two resources, no value
        summary = preview.markdown(preview_json(dev), "e2e-dev")
        assert "1 to replace, 1 to update" in summary
        assert "| replace | `kubernetes:core/v1:Secret` | `coco-kbs-resources` |" in summary
        # exactly the pod template's digest of the declared resources: the rollout
        assert (
            "| update | `kubernetes:apps/v1:Deployment` | `coco-kbs-deployment` | "
            '`spec.template.metadata.annotations["coco-stack.io/resources-digest"]` |'
        ) in summary
        assert "a new greeting" not in summary and "hello from the e2e KBS" not in summary
        dev.run("up", "--yes", "--skip-preview")

        def rolled() -> list[dict[str, Any]] | None:
            pods = api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}/pods?{selector}")["items"]
            fresh = [p for p in pods if p["metadata"]["uid"] not in before and pod_ready(p)]
            return fresh or None

        eventually("a new KBS pod", rolled, 120)

    def test_destroy_leaves_nothing(self, dev: Project, cluster: harness.Cluster) -> None:
        dev.run("destroy", "--yes", "--skip-preview")
        eventually("no object of the stack left", lambda: ours(cluster.api) == {} or None, 120)
        assert [r["type"] for r in dev.resources()] == []


class TestMixedStack:
    """An existing cluster with SNP, TDX and development pools on kwok nodes."""

    def test_up_and_destroy(
        self, tmp_path: Path, bins: list[Path], cluster: harness.Cluster
    ) -> None:
        project = make_project(tmp_path, "e2e-mixed", mixed_config(), bins, cluster)
        project.config_set("coco:kbs.resources[0].value", "mixed key", secret=True)
        project.config_set("coco:charts.runtime.path", str(STAND_IN_CHART))
        try:
            project.run("preview", "--diff")
            project.run("up", "--yes", "--skip-preview")
            api = cluster.api
            classes = {
                r["metadata"]["name"]: r
                for r in api.get("/apis/node.k8s.io/v1/runtimeclasses")["items"]
            }
            assert {"kata-qemu-snp", "kata-qemu-tdx", "kata-qemu-coco-dev"} <= set(classes)
            for tee in ("snp", "tdx"):
                assert classes[f"kata-qemu-{tee}"]["scheduling"]["nodeSelector"] == {
                    "coco-stack.io/tee": tee,
                    KATA_RUNTIME_READY: "true",
                }
            rvs = api.get(f"/api/v1/namespaces/{KBS_NAMESPACE}/configmaps/kbs-reference-values")
            text = json.dumps(rvs["data"])
            assert "ab" * 48 in text and "cd" * 48 in text
            assert preview_steps(project) == {}
        finally:
            project.run("destroy", "--yes", "--skip-preview", ok=False)
        eventually("no object of the stack left", lambda: ours(cluster.api) == {} or None, 120)


class TestBadInput:
    def test_invalid_value_registers_nothing(
        self, tmp_path: Path, bins: list[Path], cluster: harness.Cluster
    ) -> None:
        config = dev_config()
        config["coco:nodePools"][0]["tee"] = "sgxx"
        project = make_project(tmp_path, "e2e-bad", config, bins, cluster)
        preview = project.run("preview", ok=False)
        assert preview.returncode != 0
        assert "coco:nodePools[0].tee" in preview.stdout + preview.stderr
        assert "Traceback" not in preview.stdout + preview.stderr
        up = project.run("up", "--yes", "--skip-preview", ok=False)
        assert up.returncode != 0
        # nothing but the stack itself was ever registered
        assert [r["type"] for r in project.resources()] in ([], ["pulumi:pulumi:Stack"])
        assert ours(cluster.api) == {}
