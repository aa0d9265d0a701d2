"""GuestImage: builds one guest-image recipe during `pulumi up` and exposes what it produced.

Scope: run the image builder (images/, `coco image build RECIPE --out DIR --json`) on the machine
running Pulumi, keyed on the recipe's content hash, and export the artifact paths, their sha256
digests, the full measurements.json and the reference values (Trustee names:
snp_launch_measurement, tpm_pcr4, tpm_pcr11) for the cloud issues to publish and the KBS to trust.
Non-goals: uploading images to a cloud (the cloud issues), registering reference values with the
KBS (the KBS issue), removing built files on destroy (they are the user's; nothing is deleted).

Why pulumi_command's local.Command and not a dynamic provider:
- the build is a long external process with one input that matters, the recipe's content hash;
  local.Command's `triggers` replaces the resource exactly when that hash changes, and its
  recorded `stdout` (the measurements JSON) is the state, so a refresh or an unchanged recipe
  never rebuilds;
- a Python dynamic provider is pickled (with the code it closes over) into the stack state, so a
  refactor of images/ can break `pulumi up` on existing stacks, and it runs in a separate
  interpreter that must import the builder with the same environment; the command provider only
  needs this interpreter's path;
- under `coco render` (Pulumi mocks) nothing runs: the mock echoes inputs, stdout is empty and the
  outputs below are empty, so renders stay fast and need no root or Debian tools.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command

from components.kbs.config import ReferenceValue
from images import recipe as recipes
from images.build import OUTPUT_FILES


@dataclass(frozen=True)
class GuestImageArgs:
    """`recipe`: a recipe name in images/recipes/ or a path to a recipe file; `out_dir`: where
    the artifacts go (created); `python`: the interpreter that has coco-stack installed."""

    recipe: str
    out_dir: Path
    python: str = field(default_factory=lambda: sys.executable)


def _parse(stdout: str | None) -> dict[str, Any]:
    if not stdout or not stdout.strip():
        return {}  # under mocks nothing ran
    parsed: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return parsed


class GuestImage(pulumi.ComponentResource):
    """One built, measured guest image."""

    def __init__(
        self, name: str, args: GuestImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("coco:image:GuestImage", name, None, opts)
        spec = recipes.load(args.recipe)
        self.recipe_hash = spec.content_hash()
        # what each payload source is pinned by (known at preview: reviewers see it in the diff)
        self.payload_pins: dict[str, str] = spec.payload_pins()
        out_dir = args.out_dir.resolve()
        argv = [
            args.python,
            "-m",
            "cli.image",
            "image",
            "build",
            str(spec.path),
            "--out",
            str(out_dir),
            "--json",
        ]
        self.build = command.local.Command(
            f"{name}-build",
            create=shlex.join(argv),
            update=shlex.join(argv),
            # the pins are covered by the hash; listed so a preview and a render show them
            triggers=[self.recipe_hash, self.payload_pins],
            opts=pulumi.ResourceOptions(parent=self),
        )
        measurements = self.build.stdout.apply(_parse)
        self.measurements: pulumi.Output[dict[str, Any]] = measurements
        self.artifacts: pulumi.Output[dict[str, str]] = measurements.apply(
            lambda m: {
                name: str(out_dir / name)
                for name in sorted(m.get("artifacts", {}))
                if name in (*OUTPUT_FILES.values(), "uki.efi")
            }
        )
        self.digests: pulumi.Output[dict[str, str]] = measurements.apply(
            lambda m: {n: a["sha256"] for n, a in sorted(m.get("artifacts", {}).items())}
        )
        self.reference_values: pulumi.Output[Mapping[str, ReferenceValue]] = measurements.apply(
            lambda m: dict(m.get("reference_values", {}))
        )
        self.root_hash: pulumi.Output[str] = measurements.apply(
            lambda m: str(m.get("dm_verity", {}).get("root_hash", ""))
        )
        self.register_outputs(
            {
                "recipeHash": self.recipe_hash,
                "payloadPins": self.payload_pins,
                "artifacts": self.artifacts,
                "digests": self.digests,
                "referenceValues": self.reference_values,
                "rootHash": self.root_hash,
                "measurements": self.measurements,
            }
        )
