"""`coco diff`: Markdown summary of two `coco render` output directories.

Real renders of small configs (the program under mocks, written by cli.render.write) for
the behaviour end to end, and hand-built resources.json pairs where a change must show exactly
and alone (cloud pools do not render yet: spec.support refuses them).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cli import diff, main, render
from tests.conftest import ROOT

SECRET_ONE = "hello-one-DO-NOT-PRINT"
SECRET_TWO = "other-two-DO-NOT-PRINT"

BASE: dict[str, Any] = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "existing"},
    "coco:nodePools": [
        {"name": "dev", "tee": "none", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
    ],
    "coco:kbs": {"resources": [{"path": "default/dev/key", "value": SECRET_ONE}]},
}


def _variant(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    if "storage" in changes:
        config["coco:kbs"]["storageSize"] = changes["storage"]
    if "secret" in changes:
        config["coco:kbs"]["resources"][0]["value"] = changes["secret"]
    if "pool" in changes:
        config["coco:nodePools"].append(changes["pool"])
    return config


VARIANTS = {
    "base": _variant(),
    "base-again": _variant(),
    "storage": _variant(storage="5Gi"),
    "secret": _variant(secret=SECRET_TWO),
    "snp-pool": _variant(
        pool={"name": "snp", "tee": "snp", "mode": "bare-metal", "nodeSelector": {"t": "snp"}}
    ),
}


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each variant rendered once into its own `coco render` output directory."""
    out = tmp_path_factory.mktemp("renders")
    dirs = {}
    for name, config in VARIANTS.items():
        result = render.run(config, stack="pr", project_dir=ROOT)
        render.write(result, out / name)
        dirs[name] = out / name
    return dirs


def run_cli(*argv: str) -> int:
    """`coco diff ...` through the real entry point: its exit code, errors included."""
    return main.main(["diff", *argv])


def markdown(base: Path, head: Path) -> str:
    return diff.markdown(diff.diff_dirs(base, head))


def _document(pool: dict[str, Any], instance_type: str) -> dict[str, Any]:
    """A resources.json as `coco render` would write it once AKS pools render."""
    return {
        "notice": "coco render output: NOT `pulumi preview`.",
        "project": "coco",
        "stack": "prod",
        "resources": [
            {
                "type": "azure-native:containerservice:AgentPool",
                "name": "coco-pool-snp",
                "parent": "coco-pool-snp",
                "inputs": {**pool, "vmSize": instance_type},
                "dependsOn": ["coco-cluster"],
            },
            {
                "type": "coco:pools:NodePool",
                "name": "coco-pool-snp",
                "parent": "coco",
                "inputs": {},
                "dependsOn": [],
            },
        ],
        "outputs": {
            "kbsAdminToken": "[secret]",
            "pools": {"snp": {"instanceType": instance_type, "tee": "snp"}},
        },
    }


def _write(path: Path, document: dict[str, Any], manifests: dict[str, str] | None = None) -> Path:
    (path / "manifests").mkdir(parents=True)
    (path / "resources.json").write_text(render.dumps_json(document), encoding="utf-8")
    for name, text in (manifests or {}).items():
        (path / "manifests" / name).write_text(text, encoding="utf-8")
    return path


class TestNoChanges:
    """Two renders of the same config compare as no changes, and --exit-code stays 0."""

    def test_identical_renders(self, renders, capsys):
        text = markdown(renders["base"], renders["base-again"])
        assert "\nNo changes.\n" in text
        for section in ("#### Added", "#### Removed", "#### Changed", "#### Manifests"):
            assert section not in text
        assert run_cli(str(renders["base"]), str(renders["base-again"]), "--exit-code") == 0
        assert capsys.readouterr().out == text


class TestOnePoolChange:
    """The acceptance case: a change to one pool shows exactly that change and nothing else."""

    def test_instance_type_only(self, tmp_path):
        pool = {"count": 2, "mode": "System", "osType": "Linux", "tags": {"a": "b"}}
        base = _write(tmp_path / "base", _document(pool, "Standard_DC4as_v5"))
        head = _write(tmp_path / "head", _document(pool, "Standard_DC8as_v5"))
        assert markdown(base, head) == (
            "### coco diff: stack `prod` (base) -> stack `prod` (head)\n"
            "\n"
            "Resources: 0 added, 0 removed, 1 changed; outputs: 1 change; manifests: 0 added, "
            "0 removed, 0 changed.\n"
            "\n"
            "#### Changed\n"
            "\n"
            "- `azure-native:containerservice:AgentPool` `coco-pool-snp`\n"
            '  - `vmSize`: `"Standard_DC4as_v5"` -> `"Standard_DC8as_v5"`\n'
            "\n"
            "#### Outputs changed\n"
            "\n"
            '- `pools.snp.instanceType`: `"Standard_DC4as_v5"` -> `"Standard_DC8as_v5"`\n'
            "\n"
            "> This compares `coco render` outputs (the program run under the Pulumi SDK's mock "
            "monitor), not `pulumi preview`: no provider computed this diff and nothing was read "
            "from a cloud or cluster.\n"
            "> Secret values are redacted in both renders (1 secret value in head): a change to "
            "a secret alone does not show here.\n"
        )

    def test_pool_size_only(self, tmp_path):
        base = _write(tmp_path / "base", _document({"count": 2}, "Standard_DC4as_v5"))
        head = _write(tmp_path / "head", _document({"count": 3}, "Standard_DC4as_v5"))
        text = markdown(base, head)
        changes = [line for line in text.splitlines() if line.startswith("  - ")]
        assert changes == ["  - `count`: `2` -> `3`"]
        assert "Resources: 0 added, 0 removed, 1 changed; outputs: 0 changes;" in text

    def test_rendered_storage_size(self, renders):
        """A real render pair: only the KBS volume size (and its manifest) changes."""
        text = markdown(renders["base"], renders["storage"])
        assert (
            "Resources: 0 added, 0 removed, 1 changed; outputs: 0 changes; manifests: 0 "
            "added, 0 removed, 1 changed." in text
        )
        assert (
            "- `kubernetes:core/v1:PersistentVolumeClaim` `coco-kbs-storage`\n"
            '  - `spec.resources.requests.storage`: `"1Gi"` -> `"5Gi"`\n' in text
        )
        assert "- changed `persistentvolumeclaim-coco-kbs-kbs-storage.yaml`" in text
        assert [line for line in text.splitlines() if line.startswith("  - ")] == [
            '  - `spec.resources.requests.storage`: `"1Gi"` -> `"5Gi"`'
        ]


class TestSecrets:
    """No secret text reaches the diff; a secret-only change is not guessed at."""

    def test_secret_value_change_prints_no_secret(self, renders, capsys):
        assert run_cli(str(renders["base"]), str(renders["secret"])) == 0
        out = capsys.readouterr().out
        for value in (SECRET_ONE, SECRET_TWO):
            assert value not in out
        # the render redacts the value and its digest, so the two renders cannot be told apart
        assert "No changes." in out
        assert "a change to a secret alone does not show here" in out

    def test_redacted_paths_of_changed_resources(self, tmp_path):
        doc = _document({"count": 2}, "Standard_DC4as_v5")
        doc["resources"][0]["inputs"]["linuxProfile"] = {"ssh": "[secret]"}
        head_doc = copy.deepcopy(doc)
        head_doc["resources"][0]["inputs"]["count"] = 4
        head_doc["outputs"]["kbsAdminToken"] = {"plain": "new"}
        text = markdown(_write(tmp_path / "b", doc), _write(tmp_path / "h", head_doc))
        assert "  - `linuxProfile.ssh`: secret (redacted): cannot tell whether it changed" in text
        assert '- `kbsAdminToken`: secret (redacted) -> `{"plain": "new"}`' in text
        assert "[secret]" not in text


class TestAddedRemoved:
    """Resources are keyed by (type, name): a new pool is added, and removed the other way."""

    def test_added_pool(self, renders):
        text = markdown(renders["base"], renders["snp-pool"])
        added = text.split("#### Added\n\n")[1].split("\n\n")[0].splitlines()
        assert added == [
            "- `coco:pools:NodePool` `coco-pool-snp` (parent `coco`)",
            "- `kubernetes:node.k8s.io/v1:RuntimeClass` `coco-runtime-kata-qemu-snp` "
            "(parent `coco-runtime`)",
        ]
        assert "#### Removed" not in text
        assert "- added `runtimeclass-_cluster-kata-qemu-snp.yaml`" in text
        assert '- `runtimeClasses.snp`: (absent) -> `"kata-qemu-snp"`' in text
        # every unused shim is off by name (spec.runtime_plan.KATA_DEPLOY_SHIMS), so a new
        # pool's shim turns on rather than appears
        assert "`values.kata-as-coco-runtime.shims.qemu-snp.enabled`: `false` -> `true`" in text

    def test_removed_pool(self, renders):
        text = markdown(renders["snp-pool"], renders["base"])
        assert "#### Added" not in text
        assert (
            "- `coco:pools:NodePool` `coco-pool-snp` (parent `coco`)"
            in text.split("#### Removed")[1]
        )
        assert "- removed `runtimeclass-_cluster-kata-qemu-snp.yaml`" in text
        assert "Resources: 0 added, 2 removed," in text


class TestListsAndText:
    """Lists of named mappings are matched by name; long values and texts are truncated."""

    def test_named_list_and_long_values(self, tmp_path):
        containers = [{"name": "kbs", "image": "a:1"}, {"name": "side", "image": "b:1"}]
        doc = _document({"containers": containers, "note": "x" * 50}, "t")
        head_doc = copy.deepcopy(doc)
        head_inputs = head_doc["resources"][0]["inputs"]
        head_inputs["containers"] = [
            {"name": "new", "image": "c:1"},
            {"name": "kbs", "image": "a:2"},
        ]
        head_inputs["note"] = "y" * 500
        text = markdown(_write(tmp_path / "b", doc), _write(tmp_path / "h", head_doc))
        assert '  - `containers[name=kbs].image`: `"a:1"` -> `"a:2"`' in text
        assert '  - `containers[name=new]`: (absent) -> `{"image": "c:1", "name": "new"}`' in text
        assert "  - `containers[name=side]`: `" in text
        assert "… (truncated, 502 characters)" in text
        assert "y" * 200 not in text

    def test_multiline_text_is_a_line_diff(self, tmp_path):
        config = "\n".join(f"line {i}" for i in range(100))
        doc = _document({"data": {"kbs-config.toml": config}}, "t")
        head_doc = copy.deepcopy(doc)
        head_doc["resources"][0]["inputs"]["data"]["kbs-config.toml"] = config.replace(
            "line 50", "line fifty"
        )
        text = markdown(_write(tmp_path / "b", doc), _write(tmp_path / "h", head_doc))
        assert '  - `data["kbs-config.toml"]`: text changed\n' in text
        assert "    -line 50\n    +line fifty\n" in text
        assert "line 10\n" not in text


class TestExitCodes:
    """0 with or without changes, 1 with --exit-code on a change, 2 on a bad directory."""

    def test_exit_code(self, renders, capsys):
        assert run_cli(str(renders["base"]), str(renders["storage"])) == 0
        assert run_cli(str(renders["base"]), str(renders["storage"]), "--exit-code") == 1
        capsys.readouterr()

    @pytest.mark.parametrize("case", ["missing", "file", "empty", "badjson", "nolist"])
    def test_bad_dirs(self, renders, tmp_path, capsys, case):
        bad = tmp_path / "bad"
        if case == "file":
            bad.write_text("x")
        elif case != "missing":
            bad.mkdir()
        if case == "badjson":
            (bad / "resources.json").write_text("{")
        if case == "nolist":
            (bad / "resources.json").write_text(json.dumps({"stack": "x"}))
        assert run_cli(str(renders["base"]), str(bad), "--exit-code") == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"error: {bad}") or f"{bad}/resources.json" in captured.err
        assert "hint: run `coco render STACK --out DIR` first" in captured.err
        if case == "empty":
            assert "holds no resources.json" in captured.err


class TestDeterminism:
    """The same two directories give byte-identical output, whatever order files were read."""

    def test_byte_identical(self, renders, capsys):
        outputs = []
        for _ in range(2):
            assert run_cli(str(renders["base"]), str(renders["snp-pool"])) == 0
            outputs.append(capsys.readouterr().out.encode())
        assert outputs[0] == outputs[1]
        assert b"#### Changed" in outputs[0]

    def test_sorted(self, tmp_path):
        doc = _document({"count": 1}, "t")
        shuffled = copy.deepcopy(doc)
        shuffled["resources"].reverse()
        shuffled["resources"][0]["inputs"] = dict(reversed(shuffled["resources"][0]["inputs"]))
        head = _document({"count": 2, "zone": "1"}, "u")
        a = markdown(_write(tmp_path / "a", doc), _write(tmp_path / "h1", head))
        b = markdown(_write(tmp_path / "b", shuffled), _write(tmp_path / "h2", head))
        assert a == b
