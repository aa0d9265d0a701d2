"""The GuestImage component under Pulumi mocks: one build command keyed on the recipe hash."""

from __future__ import annotations

from pathlib import Path

from images import recipe
from tests.conftest import one, render_program


class TestGuestImage:
    """The build runs as a local.Command replaced exactly when the recipe's content changes.
    Assertions run on the recorded registrations and outputs, after the program finished."""

    def test_command_keyed_on_recipe_hash(self, tmp_path: Path):
        import pulumi

        from components.image import GuestImage, GuestImageArgs

        def program() -> None:
            image = GuestImage("img", GuestImageArgs("minimal", tmp_path / "out", python="/py"))
            pulumi.export("refs", image.reference_values)
            pulumi.export("artifacts", image.artifacts)

        result = render_program(program)
        build = one(result, "command:local:Command")
        assert build.name == "img-build"
        assert build.parent_urn == one(result, "coco:image:GuestImage").urn
        minimal = recipe.load("minimal")
        assert build.inputs["triggers"] == [minimal.content_hash(), minimal.payload_pins()]
        assert build.inputs["create"].startswith("/py -m cli.image image build ")
        assert build.inputs["create"].endswith(f"--out {tmp_path / 'out'} --json")
        # under mocks nothing is built, so there is nothing to export
        assert result.outputs["refs"] == {} and result.outputs["artifacts"] == {}
