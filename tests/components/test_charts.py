"""`coco:charts` through the program: where each Helm release takes its chart from, a rendered
document that stays relocatable, and the peer-pods values of every sample stack against the
stand-in peerpods chart's schema (tests/charts/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cli import render
from spec import stackfile, versions
from spec.rules.charts import tree_digest
from tests.components.kbs.tls_mocks import patch_render_mocks
from tests.components.test_stack_peerpods import STACKS as PEER_POD_STACKS
from tests.conftest import ROOT, one

RELEASE = "kubernetes:helm.sh/v3:Release"
CHARTS = ROOT / "tests" / "charts"
DEV = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "existing"},
    "coco:nodePools": [
        {"name": "dev", "tee": "none", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
    ],
    "coco:kbs": {"enabled": False},
}


def _render(config: dict[str, Any], stack: str = "t") -> render.Render:
    mp = pytest.MonkeyPatch()
    patch_render_mocks(mp)  # real CA and certificates: peer pods' initdata needs them
    secure = stackfile.load(stack, ROOT).secure_paths if stack in PEER_POD_STACKS else frozenset()
    try:
        return render.run(config, stack=stack, secure_paths=secure, project_dir=ROOT)
    finally:
        mp.undo()


def _peer_pods_config(stack: str, charts: dict[str, Any] | None = None) -> dict[str, Any]:
    """A sample peer-pods stack's config, with `coco:charts` when given."""
    config = dict(stackfile.load(stack, ROOT).config)
    if charts is not None:
        config["coco:charts"] = charts
    return config


class TestRuntimeChart:
    def test_upstream_by_default(self, render_config) -> None:
        release = one(render_config(DEV), RELEASE, "coco-runtime-chart")
        assert release.inputs["chart"] == versions.COCO_CHART.reference
        assert release.inputs["version"] == versions.COCO_CHART.version

    def test_path_chart_reaches_the_release_and_not_the_checkout_path(self) -> None:
        path = "tests/charts/confidential-containers"
        digest = tree_digest(CHARTS / "confidential-containers")
        result = _render({**DEV, "coco:charts": {"runtime": {"path": path, "digest": digest}}})
        release = one(result, RELEASE, "coco-runtime-chart")
        # the absolute directory: Helm reads it, whatever the program's working directory
        assert release.inputs["chart"] == str(CHARTS / "confidential-containers")
        assert "version" not in release.inputs and "repositoryOpts" not in release.inputs
        text = render.dumps_json(result.document())
        assert f'"chart": "<project>/{path}"' in text
        assert str(ROOT) not in text and sys.executable not in text
        assert not [w for w in result.warnings if "coco:charts" in w]

    def test_mirror_keeps_the_pinned_version(self, render_config) -> None:
        result = render_config(
            {**DEV, "coco:charts": {"runtime": {"repository": "oci://mirror.example/charts"}}}
        )
        release = one(result, RELEASE, "coco-runtime-chart")
        assert release.inputs["chart"] == "oci://mirror.example/charts/confidential-containers"
        assert release.inputs["version"] == versions.COCO_CHART.version

    def test_bad_chart_registers_nothing(self, render_config) -> None:
        from spec.errors import SpecError

        with pytest.raises(SpecError) as info:
            render_config({**DEV, "coco:charts": {"runtime": {"path": "tests/charts/peerpods"}}})
        assert [i.path for i in info.value.issues] == ["coco:charts.runtime.path"]


class TestPeerPodsCharts:
    def test_path_and_mirror(self, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
        # a relative path: resolved from the project directory whatever the working directory
        # (`coco render` may run anywhere)
        monkeypatch.chdir(tmp_path)
        result = _render(
            _peer_pods_config(
                "gcp-tdx",
                {
                    "peerPods": {"path": "tests/charts/peerpods"},
                    "certManager": {"repository": "oci://mirror.example/charts"},
                },
            ),
            "gcp-tdx",
        )
        chart = one(result, RELEASE, "coco-peer-pods-chart")
        assert chart.inputs["chart"] == str(CHARTS / "peerpods")
        assert "version" not in chart.inputs
        cert_manager = one(result, RELEASE, "coco-peer-pods-cert-manager")
        assert cert_manager.inputs["chart"] == "oci://mirror.example/charts/cert-manager"
        assert cert_manager.inputs["version"] == versions.CERT_MANAGER_VERSION
        assert "repositoryOpts" not in cert_manager.inputs  # not the upstream Helm repository
        # the runtime chart is still the upstream one
        runtime = one(result, RELEASE, "coco-runtime-chart")
        assert runtime.inputs["chart"] == versions.COCO_CHART.reference
        assert str(ROOT) not in render.dumps_json(result.document())


def _computed(value: Any) -> Any:
    """Values a cloud computes (a role ARN, an identity's client id) are unknown under mocks and
    come back as None; the real value is a string, so stand one in."""
    if isinstance(value, dict):
        return {k: _computed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_computed(v) for v in value]
    return "<computed>" if value is None else value


@pytest.fixture(scope="module")
def peer_pods_values() -> dict[str, dict[str, Any]]:
    values = {}
    for stack in sorted(PEER_POD_STACKS):
        chart = one(_render(_peer_pods_config(stack), stack), RELEASE, "coco-peer-pods-chart")
        values[stack] = _computed(render.unwrap(chart.inputs["values"]))
    return values


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((CHARTS / "peerpods" / "values.schema.json").read_text())
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("stack", sorted(PEER_POD_STACKS))
def test_sample_stack_peer_pods_values_fit_the_chart(
    peer_pods_values: dict[str, dict[str, Any]], stack: str
) -> None:
    """Every key components.peerpods passes exists in peerpods 0.4.0 (and its subcharts)."""
    problems = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator().iter_errors(peer_pods_values[stack])
    ]
    assert problems == []


def test_a_misspelt_peer_pods_key_in_real_values_is_refused(
    peer_pods_values: dict[str, dict[str, Any]],
) -> None:
    values = json.loads(json.dumps(peer_pods_values["gcp-tdx"]))
    values["resourceCtrl"]["serviceAcount"] = values["resourceCtrl"].pop("serviceAccount")
    errors = list(_validator().iter_errors(values))
    assert [e.message for e in errors] == [
        "Additional properties are not allowed ('serviceAcount' was unexpected)"
    ]


def test_stand_in_directory_is_inside_the_project() -> None:
    # the render test above relies on it: <project> replaces the checkout path
    assert Path(CHARTS).is_relative_to(ROOT)
