"""The GuestImage component under Pulumi mocks: one build command keyed on the recipe hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest

from images import recipe


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.created.append((args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        if args.typ == "command:local:Command":
            outputs["stdout"] = ""
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


@pytest.fixture
def mocks() -> _Mocks:
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    return mocks


class TestGuestImage:
    """The build runs as a local.Command replaced exactly when the recipe's content changes."""

    @pulumi.runtime.test
    def test_command_keyed_on_recipe_hash(self, mocks: _Mocks, tmp_path: Path):
        from components.image import GuestImage, GuestImageArgs

        image = GuestImage("img", GuestImageArgs("minimal", tmp_path / "out", python="/py"))

        def check(values: list[Any]) -> None:
            refs, artifacts = values
            commands = [c for c in mocks.created if c[0] == "command:local:Command"]
            assert [c[1] for c in commands] == ["img-build"]
            inputs = commands[0][2]
            assert inputs["triggers"] == [recipe.load("minimal").content_hash()]
            assert inputs["create"].startswith("/py -m images.cli image build ")
            assert inputs["create"].endswith(f"--out {tmp_path / 'out'} --json")
            # under mocks nothing is built, so there is nothing to export
            assert refs == {} and artifacts == {}
            types = {c[0] for c in mocks.created}
            assert "coco:image:GuestImage" in types

        return pulumi.Output.all(image.reference_values, image.artifacts).apply(check)
