"""The stack builds its guest image during `pulumi up` and the KBS trusts its measurements."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli import render
from components.kbs import config as kbs_config
from spec.errors import SpecError
from spec.validate import validate
from tests.conftest import one, patch_provider_outputs

MEASURED = {
    "artifacts": {"disk.raw": {"sha256": "d" * 64, "size": 1}},
    "dm_verity": {"root_hash": "r" * 64},
    "reference_values": {"snp_launch_measurement": ["new"], "tpm_pcr11": ["p11"]},
}
CONFIG = {
    "coco:nodePools": [{"name": "s", "tee": "snp", "nodeSelector": {"a": "b"}}],
    "coco:kbs": {"referenceValues": {"snp_launch_measurement": ["old"]}},
    "coco:image": {"recipe": "minimal"},
}


@pytest.fixture
def built_image_mocks(monkeypatch):
    """Mocks whose local.Command prints what `coco image build --json` prints."""

    def outputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        if typ == "command:local:Command":
            return {**inputs, "stdout": json.dumps(MEASURED)}
        return None

    patch_provider_outputs(monkeypatch, outputs)


class TestImageInStack:
    def test_build_command_keyed_on_recipe(self, render_config):
        result = render_config(CONFIG)
        build = one(result, "command:local:Command")
        assert "image build" in build.inputs["create"] and "--json" in build.inputs["create"]
        recipe_hash, pins_shown = build.inputs["triggers"]
        assert len(recipe_hash) == 64
        assert isinstance(pins_shown, dict)  # what the payload is pinned by, for the preview
        assert build.parent_urn == one(result, "coco:image:GuestImage").urn

    def test_measurements_become_reference_values(self, render_config, built_image_mocks):
        result = render_config(CONFIG)
        data = render.unwrap(
            one(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values").inputs
        )["data"]
        assert data == {
            "snp_launch_measurement": kbs_config.reference_value_record(
                "snp_launch_measurement", ["new", "old"]),
            "tpm_pcr11": kbs_config.reference_value_record("tpm_pcr11", ["p11"]),
        }

    def test_unknown_recipe_refused(self):
        with pytest.raises(SpecError) as info:
            validate({"coco:image": {"recipe": "nope"}}, stack="t")
        (issue,) = info.value.issues
        assert issue.path == "coco:image.recipe" and "minimal" in issue.hint
