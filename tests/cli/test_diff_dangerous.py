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
        cluster = {"type": "aws:eks:Cluster", "name": "coco-cluster", "parent": None,
                   "inputs": {"name": "coco"}, "dependsOn": []}
        found = danger.dangerous(compare(tmp_path, [cluster, deployment()], [deployment()]))
        assert [(d.type, d.action) for d in found] == [("aws:eks:Cluster", "delete")]


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
