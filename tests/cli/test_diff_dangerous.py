"""`coco diff` marks changes that replace or delete stateful objects (PersistentVolumeClaims,
Secrets holding keys, TLS keys, clusters and node pools) as dangerous, at the top of the
Markdown and in the JSON, so a moved PVC does not read as an ordinary change."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cli import danger, diff, diff_cli, main, output, render
from spec import stackfile

ROOT = Path(__file__).resolve().parents[2]
PVC = "kubernetes:core/v1:PersistentVolumeClaim"


def pvc(namespace: str = "coco-kbs", name: str = "kbs-storage", size: str = "1Gi") -> Any:
    return {
        "type": PVC,
        "name": "coco-kbs-storage",
        "parent": "coco-kbs",
        "inputs": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                "storageClassName": "standard",
            },
        },
        "dependsOn": [],
    }


def deployment(replicas: int = 1) -> Any:
    return {
        "type": "kubernetes:apps/v1:Deployment",
        "name": "coco-kbs",
        "parent": "coco-kbs",
        "inputs": {"metadata": {"name": "kbs", "namespace": "coco-kbs"},
                   "spec": {"replicas": replicas}},
        "dependsOn": [],
    }


def secret(keys: tuple[str, ...] = ("admin.pub", "kbs.key")) -> Any:
    return {
        "type": "kubernetes:core/v1:Secret",
        "name": "coco-kbs-keys",
        "parent": "coco-kbs",
        "inputs": {"metadata": {"name": "kbs-keys", "namespace": "coco-kbs"},
                   "data": dict.fromkeys(keys, "[secret]")},
        "dependsOn": [],
    }


def write(path: Path, resources: list[Any]) -> Path:
    path.mkdir(parents=True)
    document = {"notice": "", "project": "coco", "stack": "dev", "outputs": {},
                "resources": sorted(resources, key=lambda r: (r["type"], r["name"]))}
    (path / "resources.json").write_text(json.dumps(document))
    return path


def compare(tmp_path: Path, base: list[Any], head: list[Any]) -> diff.Diff:
    return diff.diff_dirs(write(tmp_path / "base", base), write(tmp_path / "head", head))


class TestClassification:
    def test_moved_pvc_is_a_dangerous_replacement(self, tmp_path: Path) -> None:
        found = danger.dangerous(compare(tmp_path, [pvc(), deployment()],
                                       [pvc(namespace="kbs"), deployment(2)]))
        assert [(d.type, d.name, d.action) for d in found] == [
            (PVC, "coco-kbs-storage", "replace")
        ]
        assert "metadata.namespace" in found[0].reason

    def test_renamed_pulumi_resource_is_a_delete(self, tmp_path: Path) -> None:
        moved = copy.deepcopy(pvc())
        moved["name"] = "coco-kbs-data"
        found = danger.dangerous(compare(tmp_path, [pvc()], [moved]))
        assert [(d.name, d.action) for d in found] == [("coco-kbs-storage", "delete")]

    def test_immutable_pvc_spec_is_a_replacement(self, tmp_path: Path) -> None:
        changed = pvc()
        changed["inputs"]["spec"]["storageClassName"] = "premium"
        found = danger.dangerous(compare(tmp_path, [pvc()], [changed]))
        assert [d.action for d in found] == ["replace"]

    def test_safe_changes_are_not_dangerous(self, tmp_path: Path) -> None:
        """A larger storage request (PVCs may grow) and an ordinary Deployment change."""
        result = compare(tmp_path, [pvc(), deployment()], [pvc(size="5Gi"), deployment(3)])
        assert not result.empty and danger.dangerous(result) == []
        assert "Dangerous" not in diff.markdown(result)

    def test_secret_losing_a_key(self, tmp_path: Path) -> None:
        found = danger.dangerous(compare(tmp_path, [secret()], [secret(("admin.pub",))]))
        assert [(d.action, d.type) for d in found] == [("delete", "kubernetes:core/v1:Secret")]
        assert "kbs.key" in found[0].reason

    def test_removed_cluster(self, tmp_path: Path) -> None:
        cluster = {"type": "aws:eks/cluster:Cluster", "name": "coco-cluster", "parent": None,
                   "inputs": {"name": "coco"}, "dependsOn": []}
        found = danger.dangerous(compare(tmp_path, [cluster, deployment()], [deployment()]))
        assert [(d.type, d.action) for d in found] == [("aws:eks/cluster:Cluster", "delete")]


class TestReport:
    def test_top_of_the_markdown_and_json(self, tmp_path: Path, capsys) -> None:
        compare(tmp_path, [pvc(), deployment()], [pvc(namespace="kbs"), deployment(2)])
        code = main.main(["diff", str(tmp_path / "base"), str(tmp_path / "head")])
        text = capsys.readouterr().out
        assert code == 0
        head, _, rest = text.partition("#### ")
        assert "Dangerous: 1 change" in head  # before the first section
        assert "coco-kbs-storage" in head and "Dangerous" not in rest
        code = main.main(["diff", str(tmp_path / "base"), str(tmp_path / "head"), "-o", "json"])
        document = json.loads(capsys.readouterr().out)
        jsonschema.validate(document, output.schema("diff"))
        assert document["dangerous"] == [
            {"type": PVC, "name": "coco-kbs-storage", "action": "replace",
             "reason": document["dangerous"][0]["reason"]}
        ]
        changed = {c["type"] for c in document["resources"]["changed"]}
        assert changed == {PVC, "kubernetes:apps/v1:Deployment"}


@pytest.fixture(scope="module")
def moved_kbs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The dev stack, and the same with the KBS in another namespace: its PVC moves."""
    sf = stackfile.load("dev", ROOT)
    out = tmp_path_factory.mktemp("moved")
    render.write(render.run(sf.config, stack="dev", project_dir=ROOT), out / "base")
    config = copy.deepcopy(sf.config)
    config["coco:kbs"] = {**config.get("coco:kbs", {}), "namespace": "kbs-moved"}
    render.write(render.run(config, stack="dev", project_dir=ROOT), out / "head")
    return out / "base", out / "head"


def test_real_render_moved_kbs_pvc(moved_kbs: tuple[Path, Path]) -> None:
    result = diff.diff_dirs(*moved_kbs)
    found = danger.dangerous(result)
    assert PVC in {d.type for d in found}
    assert all(d.type in danger.STATEFUL for d in found)
    jsonschema.validate(
        output.document("diff", diff_cli.to_json(result)), output.schema("diff")
    )
    assert diff.markdown(result).split("\n#### ", 1)[0].count("PersistentVolumeClaim") == 1


# -- type tokens come from the real renders, so a wrong token cannot pass (review1 #1) --------

_POOLISH = ("Cluster", "NodeGroup", "NodePool", "AgentPool", "ManagedCluster")


def _rendered_types(render_stack: Any) -> dict[str, set[str]]:
    from tests.conftest import STACKS

    types: dict[str, set[str]] = {}
    for stack in STACKS:
        for r in render_stack(stack).registrations:
            if r.custom:
                types.setdefault(r.type, set()).add(stack)
    return types


def test_every_stateful_token_is_one_a_stack_registers(render_stack: Any) -> None:
    rendered = _rendered_types(render_stack)
    # PersistentVolume: none of stacks/ registers one (the KBS uses a claim); keep it listed
    unused = sorted(set(danger.STATEFUL) - set(rendered) - {"kubernetes:core/v1:PersistentVolume"})
    assert unused == [], f"STATEFUL lists types no stack renders: {unused}"


def test_every_rendered_cluster_and_pool_is_stateful(render_stack: Any) -> None:
    rendered = _rendered_types(render_stack)
    clusters = {
        t for t in rendered
        if not t.startswith(("coco:", "kubernetes:", "pulumi:")) and t.endswith(_POOLISH)
    }
    assert {"aws:eks/cluster:Cluster", "gcp:container/nodePool:NodePool"} <= clusters
    assert sorted(clusters - set(danger.STATEFUL)) == []


@pytest.mark.parametrize("stack", ["aws-snp-nodes", "gcp-sev-nodes", "azure-cvm"])
def test_real_render_removed_cloud_cluster_and_pool_are_dangerous(
    stack: str, tmp_path: Path
) -> None:
    """The whole cloud part removed (head without a pool and cluster): each cluster and node
    pool the base render registered is a dangerous delete."""
    sf = stackfile.load(stack, ROOT)
    base = render.run(sf.config, stack=stack, secure_paths=sf.secure_paths, project_dir=ROOT)
    render.write(base, tmp_path / "base")
    document = json.loads((tmp_path / "base" / "resources.json").read_text())
    cloud = [r for r in document["resources"]
             if r["type"].endswith(_POOLISH) and not r["type"].startswith("coco:")]
    assert len({r["type"] for r in cloud}) >= 2  # a cluster and a pool
    document["resources"] = [r for r in document["resources"] if r not in cloud]
    head = tmp_path / "head"
    head.mkdir()
    (head / "resources.json").write_text(json.dumps(document))
    (head / ".coco-render").write_text("")
    found = danger.dangerous(diff.diff_dirs(tmp_path / "base", head))
    assert {(d.type, d.name, d.action) for d in found} == {
        (r["type"], r["name"], "delete") for r in cloud
    }


def test_real_render_secret_losing_a_kbs_resource_is_dangerous(tmp_path: Path) -> None:
    """The KBS resources Secret's stringData is marked secret as a whole: the render keeps its
    keys (values "[secret]") so a dropped resource is seen (review1 #2)."""
    sf = stackfile.load("dev", ROOT)
    resources = [
        {"path": "default/dev/a", "value": "value-A-S3CRET"},
        {"path": "default/dev/b", "value": "value-B-S3CRET"},
    ]
    outs = []
    for name, kept in (("base", resources), ("head", resources[:1])):
        config = copy.deepcopy(sf.config)
        config["coco:kbs"] = {**config.get("coco:kbs", {}), "resources": kept}
        render.write(render.run(config, stack="dev", project_dir=ROOT), tmp_path / name)
        outs.append(tmp_path / name)
    blob = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
    assert b"S3CRET" not in blob
    found = danger.dangerous(diff.diff_dirs(*outs))
    secrets = [d for d in found if d.type == "kubernetes:core/v1:Secret"]
    assert len(secrets) == 1 and secrets[0].action == "delete"
    assert "loses key(s) stringData.res-" in secrets[0].reason
