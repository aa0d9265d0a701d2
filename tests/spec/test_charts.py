"""`coco:charts`: local chart directories and OCI mirrors, every refusal with its key path; and the
stand-in charts' schemas (tests/charts/) against the values every sample stack passes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from spec import runtime_plan, stackfile, versions
from spec.errors import ConfigIssue, SpecError
from spec.rules.charts import tree_digest
from spec.validate import validate
from tests.conftest import ROOT, STACKS

CHARTS = ROOT / "tests" / "charts"
STAND_IN = {"runtime": CHARTS / "confidential-containers", "peerPods": CHARTS / "peerpods"}
BASE: dict[str, Any] = {
    "coco:cluster": {"provider": "existing"},
    "coco:nodePools": [
        {"name": "dev", "tee": "none", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
    ],
}


def _config(charts: Any, environment: str = "dev") -> dict[str, Any]:
    return {**BASE, "coco:environment": environment, "coco:charts": charts}


def _errors(config: dict[str, Any], base_dir: Path = ROOT) -> dict[str, ConfigIssue]:
    with pytest.raises(SpecError) as info:
        validate(config, stack="t", base_dir=str(base_dir))
    return {i.path: i for i in info.value.issues}


def _warnings(config: dict[str, Any], base_dir: Path = ROOT) -> dict[str, ConfigIssue]:
    _, warnings = validate(config, stack="t", base_dir=str(base_dir))
    return {i.path: i for i in warnings}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """A copy of the runtime stand-in in a scratch project directory."""
    copy = tmp_path / "charts" / "confidential-containers"
    shutil.copytree(STAND_IN["runtime"], copy)
    return copy


def _set_version(chart: Path, version: str) -> None:
    text = (chart / "Chart.yaml").read_text()
    (chart / "Chart.yaml").write_text(
        text.replace(f"version: {versions.COCO_CHART.version}", f"version: {version}")
    )


class TestStandIns:
    """The stand-ins carry the pinned names and versions and say what they are everywhere."""

    @pytest.mark.parametrize(
        ("key", "pinned"), [("runtime", versions.COCO_CHART), ("peerPods", versions.PEERPODS_CHART)]
    )
    def test_name_version_and_stand_in_label(self, key: str, pinned: versions.ChartRef) -> None:
        import yaml

        meta = yaml.safe_load((STAND_IN[key] / "Chart.yaml").read_text())
        assert (meta["name"], str(meta["version"])) == (pinned.name, pinned.version)
        assert "STAND-IN for tests: not the upstream chart" in meta["description"]
        for name in ("values.yaml", "templates/configmap.yaml"):
            text = (STAND_IN[key] / name).read_text()
            assert "STAND-IN for tests: not the upstream chart" in text
        schema = json.loads((STAND_IN[key] / "values.schema.json").read_text())
        assert schema["title"].startswith("STAND-IN for tests")
        assert "-stand-in" in (STAND_IN[key] / "templates" / "configmap.yaml").read_text()

    def test_every_object_we_set_is_closed(self) -> None:
        schema = json.loads((STAND_IN["runtime"] / "values.schema.json").read_text())
        kata = schema["definitions"]["kataDeploy"]
        assert schema["additionalProperties"] is False and kata["additionalProperties"] is False
        for key in ("shims", "defaultShim", "runtimeClasses", "snapshotter"):
            assert kata["properties"][key]["additionalProperties"] is False, key
        shim = schema["definitions"]["shim"]
        assert shim["additionalProperties"] is False
        for key in ("containerd", "crio", "agent", "runtimeClass"):
            assert shim["properties"][key]["additionalProperties"] is False, key


class TestPathCharts:
    def test_stand_in_accepted_and_resolved_absolute(self) -> None:
        spec, warnings = validate(
            _config({"runtime": {"path": "tests/charts/confidential-containers"}}),
            stack="t",
            base_dir=str(ROOT),
        )
        assert spec.charts.runtime is not None
        assert spec.charts.runtime.path == str(STAND_IN["runtime"])
        assert spec.charts.peer_pods is None and spec.charts.cert_manager is None
        # not pinned: the warning names the digest to pin
        (unpinned,) = [w for w in warnings if w.path == "coco:charts.runtime.digest"]
        digest = tree_digest(STAND_IN["runtime"])
        assert f"its digest is {digest}" in unpinned.message
        assert f"digest: {digest}" in unpinned.hint

    def test_pinned_digest_accepted_quietly(self) -> None:
        digest = tree_digest(STAND_IN["peerPods"])
        warnings = _warnings(
            _config({"peerPods": {"path": str(STAND_IN["peerPods"]), "digest": digest}})
        )
        assert not [p for p in warnings if p.startswith("coco:charts")]

    def test_missing_directory(self) -> None:
        errors = _errors(_config({"runtime": {"path": "charts/nowhere"}}))
        issue = errors["coco:charts.runtime.path"]
        assert "'charts/nowhere' (relative to the project directory) does not exist" in (
            issue.message
        )
        assert f"--version {versions.COCO_CHART.version} --untar" in issue.hint

    def test_relative_to_the_project_directory(self, chart: Path) -> None:
        project = chart.parent.parent
        spec, _ = validate(
            _config({"runtime": {"path": "charts/confidential-containers"}}),
            stack="t",
            base_dir=str(project),
        )
        assert spec.charts.runtime is not None and spec.charts.runtime.path == str(chart)

    def test_a_file_is_not_a_chart_directory(self, chart: Path) -> None:
        errors = _errors(_config({"runtime": {"path": str(chart / "Chart.yaml")}}))
        assert "is not a directory" in errors["coco:charts.runtime.path"].message
        assert "helm pull --untar" in errors["coco:charts.runtime.path"].hint

    def test_no_chart_yaml(self, chart: Path) -> None:
        (chart / "Chart.yaml").unlink()
        errors = _errors(_config({"runtime": {"path": str(chart)}}))
        assert "has no Chart.yaml" in errors["coco:charts.runtime.path"].message

    def test_broken_chart_yaml(self, chart: Path) -> None:
        (chart / "Chart.yaml").write_text("name: [\n")
        errors = _errors(_config({"runtime": {"path": str(chart)}}))
        assert "not valid YAML at line" in errors["coco:charts.runtime.path"].message

    def test_other_chart_name(self) -> None:
        # the peerpods stand-in where the runtime chart belongs
        errors = _errors(_config({"runtime": {"path": str(STAND_IN["peerPods"])}}))
        issue = errors["coco:charts.runtime.path"]
        assert "holds chart 'peerpods', not 'confidential-containers'" in issue.message
        assert f"confidential-containers chart {versions.COCO_CHART.version}" in issue.hint

    def test_other_version_warns_in_dev(self, chart: Path) -> None:
        _set_version(chart, "0.21.0")
        warnings = _warnings(_config({"runtime": {"path": str(chart)}}))
        issue = warnings["coco:charts.runtime.path"]
        assert "holds confidential-containers 0.21.0" in issue.message
        assert f"pins {versions.COCO_CHART.version}" in issue.message
        assert "refused in staging and production" in issue.hint

    @pytest.mark.parametrize("environment", ["staging", "production"])
    def test_other_version_refused_outside_dev(self, chart: Path, environment: str) -> None:
        _set_version(chart, "0.21.0")
        errors = _errors(_config({"runtime": {"path": str(chart)}}, environment))
        issue = errors["coco:charts.runtime.path"]
        assert f"refused in {environment}" in issue.message
        assert issue.severity == "error"

    def test_digest_mismatch_names_the_computed_digest(self, chart: Path) -> None:
        pinned = tree_digest(chart)
        (chart / "templates" / "extra.yaml").write_text("# changed\n")
        errors = _errors(_config({"runtime": {"path": str(chart), "digest": pinned}}))
        issue = errors["coco:charts.runtime.digest"]
        assert f"has digest {tree_digest(chart)}, not the pinned {pinned}" in issue.message
        assert "pin the new digest" in issue.hint

    def test_symlink_cannot_be_pinned(self, chart: Path) -> None:
        (chart / "templates" / "link.yaml").symlink_to(chart / "values.yaml")
        errors = _errors(_config({"runtime": {"path": str(chart)}}))
        assert "cannot be pinned: templates/link.yaml is a symlink" in (
            errors["coco:charts.runtime.path"].message
        )

    def test_every_problem_at_once(self, chart: Path) -> None:
        errors = _errors(
            _config(
                {
                    "runtime": {"path": "missing"},
                    "peerPods": {"path": str(STAND_IN["runtime"])},
                    "certManager": {"path": str(chart)},
                }
            )
        )
        assert {
            "coco:charts.runtime.path",
            "coco:charts.peerPods.path",
            "coco:charts.certManager.path",
        } <= set(errors)


class TestDigest:
    def test_covers_paths_and_contents_not_mtimes(self, chart: Path) -> None:
        first = tree_digest(chart)
        assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
        (chart / "values.yaml").touch()
        assert tree_digest(chart) == first
        (chart / "values.yaml").rename(chart / "values2.yaml")
        assert tree_digest(chart) != first

    def test_matches_the_documented_shell_recipe(self, chart: Path) -> None:
        # docs/air-gapped.md gives a find | sort | sha256sum pipeline that computes the same
        import hashlib

        lines = []
        for f in sorted(p.relative_to(chart).as_posix() for p in chart.rglob("*") if p.is_file()):
            lines.append(f"{f}\0{hashlib.sha256((chart / f).read_bytes()).hexdigest()}\n")
        expected = hashlib.sha256("".join(lines).encode()).hexdigest()
        assert tree_digest(chart) == f"sha256:{expected}"


class TestModel:
    @pytest.mark.parametrize(
        ("entry", "path", "text"),
        [
            ({}, "coco:charts.runtime", "exactly one of path"),
            ({"path": "x", "repository": "oci://m/c"}, "coco:charts.runtime", "exactly one"),
            (
                {"repository": "oci://m/c", "digest": "sha256:" + "0" * 64},
                "coco:charts.runtime",
                "digest pins a local chart directory",
            ),
            (
                {"path": "x", "digest": "sha256:ABC"},
                "coco:charts.runtime.digest",
                "is not a chart digest",
            ),
            (
                {"repository": "https://mirror.example/charts"},
                "coco:charts.runtime.repository",
                "is not an oci:// repository",
            ),
            (
                {"repository": "http://mirror.example/charts"},
                "coco:charts.runtime.repository",
                "is not an oci:// repository",
            ),
            (
                {"repository": "oci://user:secret@mirror.example/charts"},
                "coco:charts.runtime.repository",
                "without user, password",
            ),
            (
                {"repository": "oci://mirror.example/charts?x=1"},
                "coco:charts.runtime.repository",
                "query",
            ),
            ({"path": ""}, "coco:charts.runtime.path", "must not be empty"),
            ({"path": "x", "version": "1"}, "coco:charts.runtime.version", "unknown key"),
        ],
    )
    def test_refusals(self, entry: dict[str, Any], path: str, text: str) -> None:
        errors = _errors(_config({"runtime": entry}))
        assert path in errors, errors
        assert text in errors[path].message

    def test_credentials_hint_names_helm_registry_login(self) -> None:
        errors = _errors(_config({"peerPods": {"repository": "oci://u:p@m.example/c"}}))
        assert "helm registry login" in errors["coco:charts.peerPods.repository"].hint

    def test_unknown_chart_key(self) -> None:
        errors = _errors(_config({"peerpods": {"repository": "oci://m.example/c"}}))
        assert "did you mean 'peerPods'" in errors["coco:charts.peerpods"].hint

    def test_mirror_trailing_slash_dropped(self) -> None:
        spec, _ = validate(
            _config({"certManager": {"repository": "oci://mirror.example/charts/"}}), stack="t"
        )
        assert spec.charts.cert_manager is not None
        assert spec.charts.cert_manager.repository == "oci://mirror.example/charts"


# --- the stand-ins' schemas against the values the sample stacks pass ---------------------------

jsonschema = pytest.importorskip("jsonschema")


def _validator(key: str) -> Any:
    schema = json.loads((STAND_IN[key] / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _problems(key: str, values: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in _validator(key).iter_errors(values)
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_sample_stack_runtime_values_fit_the_chart(stack: str) -> None:
    """Every key runtime_plan.chart_values passes exists in confidential-containers 0.22.0
    (kata-deploy 4.0.0 under kata-as-coco-runtime): the real chart would silently ignore a
    misspelt one."""
    sf = stackfile.load(stack, ROOT)
    spec, _ = validate(
        sf.config, stack=sf.name, secure_paths=sf.secure_paths, base_dir=str(sf.project_dir)
    )
    assert _problems("runtime", runtime_plan.chart_values(spec)) == []


def test_a_misspelt_runtime_key_is_refused() -> None:
    sf = stackfile.load("dev", ROOT)
    spec, _ = validate(sf.config, stack=sf.name, base_dir=str(ROOT))
    values = runtime_plan.chart_values(spec)
    kata = values["kata-as-coco-runtime"]
    shim = next(k for k, v in kata["shims"].items() if k != "disableAll" and v["enabled"])
    kata["shims"][shim]["containerd"]["forceGuestPul"] = True
    kata["runtimeClass"] = {"enabled": False}
    kata["nodeFeatureRules"] = {"create": False}  # kata-deploy 4.1.0, not 4.0.0
    problems = _problems("runtime", values)
    assert any("'forceGuestPul' was unexpected" in p for p in problems)
    top = [p for p in problems if p.startswith("kata-as-coco-runtime: ")]
    assert len(top) == 1 and "'nodeFeatureRules', 'runtimeClass' were unexpected" in top[0]
    values["kata-deploy"] = {}  # the peerpods chart's name for it, not the umbrella's alias
    assert any("'kata-deploy' was unexpected" in p for p in _problems("runtime", values))


def test_a_misspelt_peer_pods_key_is_refused() -> None:
    values = {
        "provider": "aws",
        "secrets": {"mode": "reference", "existingSecretName": "", "exisitngTlsSecret": ""},
        "daemonset": {"podLabels": {}, "serviceAcount": {}},
        "kata-deploy": {"enabled": False, "shim": {}},
    }
    problems = _problems("peerPods", values)
    assert len(problems) == 3, problems


def test_chart_values_do_not_share_module_state() -> None:
    """Editing the values one render returned changes no later render (they once shared the
    nested pull settings with spec.runtime_plan.PULL)."""
    sf = stackfile.load("dev", ROOT)
    spec, _ = validate(sf.config, stack=sf.name, base_dir=str(ROOT))
    first = runtime_plan.chart_values(spec)
    shims = first["kata-as-coco-runtime"]["shims"]
    shim = next(k for k, v in shims.items() if k != "disableAll" and v["enabled"])
    shims[shim]["containerd"]["forceGuestPull"] = "edited"
    again = runtime_plan.chart_values(spec)["kata-as-coco-runtime"]["shims"][shim]
    assert again["containerd"]["forceGuestPull"] is False
