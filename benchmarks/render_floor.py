"""The floor for `coco render`: a bare Pulumi program with the same cost of being a program.

It imports the provider modules the real render of a stack imports, and registers as many
resources of the same types, with the same parents, under the same SDK mocks (cli.render.record),
but has no spec, no validation, no components of ours and no inputs. What `coco render` takes
beyond this is ours to answer for (issue: render within 2x of the floor).

    python benchmarks/render_floor.py --prepare STACK PLAN.json   # once: what to import/register
    python benchmarks/render_floor.py PLAN.json                     # timed: the floor program

render_bench.py runs both side by side.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare(stack: str, plan: Path) -> None:
    """Render the stack once and write the plan: the provider modules its render imported and
    every registration's type, name, kind and parent."""
    from cli import render

    result = render.run_stack(stack, ROOT)
    modules = sorted(
        name
        for name, module in sys.modules.items()
        if name.split(".")[0].startswith("pulumi_") and getattr(module, "__file__", None)
    )
    by_urn = {r.urn: i for i, r in enumerate(result.registrations)}
    resources = [
        {
            "type": r.type,
            "name": r.name,
            "custom": r.custom,
            "parent": by_urn.get(r.parent_urn),
        }
        for r in result.registrations
    ]
    plan.write_text(json.dumps({"stack": stack, "modules": modules, "resources": resources}))


def floor(plan_path: Path) -> int:
    plan = json.loads(plan_path.read_text())
    import pulumi

    from cli import render

    for module in plan["modules"]:
        importlib.import_module(module)

    def program() -> None:
        made: list[Any] = []
        for r in plan["resources"]:
            parent = made[r["parent"]] if r["parent"] is not None else None
            opts = pulumi.ResourceOptions(parent=parent)
            if r["custom"]:
                made.append(pulumi.CustomResource(r["type"], r["name"], {}, opts))
            else:
                made.append(pulumi.ComponentResource(r["type"], r["name"], None, opts))

    registrations, _ = render.record(program, stack=plan["stack"])
    print(f"floor: {len(registrations)} resources, {len(plan['modules'])} provider modules")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", metavar="STACK")
    parser.add_argument("plan", type=Path)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.plan)
        return 0
    return floor(args.plan)


if __name__ == "__main__":
    sys.exit(main())
