"""Render-time benchmark: the largest sample stack against its floor, and generated stacks of
50 and 500 pools.

Targets on the 2-core project machine: the largest sample (most resources) within 2x of the
floor program (benchmarks/render_floor.py: the same provider modules imported and as many
resources registered under the same mocks, nothing of ours), measured side by side, runs
interleaved; 500 pools under 10 s, and growth linear: t500 / t50 <= 11. Each measurement is the
best of --repeat runs of the whole `coco render` command in a fresh process (interpreter start,
imports, validation, the program under mocks, writing the output), so it is what a user or CI
waits for.

    python benchmarks/render_bench.py [--repeat 3] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEES = ("snp", "tdx", "none")


def generated_stack(pools: int) -> dict[str, object]:
    return {
        "config": {
            "coco:environment": "dev",
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [
                {
                    "name": f"pool-{i:04d}",
                    "tee": TEES[i % len(TEES)],
                    "mode": "bare-metal",
                    # pools of one TEE share a RuntimeClass: their nodes share the TEE label
                    "nodeSelector": {
                        "coco-stack.io/pool": f"pool-{i:04d}",
                        "coco-stack.io/tee": TEES[i % len(TEES)],
                    },
                }
                for i in range(pools)
            ],
            "coco:kbs": {
                "resources": [{"path": f"default/key/{i}", "value": f"v{i}"} for i in range(pools)]
            },
        }
    }


def largest_sample(plan: Path) -> str:
    """The sample stack whose render registers the most resources; its floor plan in `plan`."""
    probe = (
        "import json, sys; from pathlib import Path; from cli import render\n"
        "counts = {}\n"
        "for p in sorted(Path('stacks').glob('Pulumi.*.yaml')):\n"
        "    name = p.name[len('Pulumi.'):-len('.yaml')]\n"
        "    counts[name] = len(render.run_stack(name, Path('.')).registrations)\n"
        "print(json.dumps(counts))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    stack = max(sorted(counts), key=lambda name: counts[name])
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "render_floor.py"), "--prepare", stack, plan],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return stack


def time_floor_and_render(stack: str, plan: Path, repeat: int) -> tuple[float, float]:
    """Best of `repeat` for the floor and for `coco render STACK`, runs interleaved so that
    machine load hits both alike."""
    floor = render = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "render_floor.py"), str(plan)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        floor = min(floor, time.perf_counter() - started)
        render = min(render, time_render(stack, 1))
    return floor, render


def time_render(stack_file: Path | str, repeat: int) -> float:
    """Best of `repeat` runs of `coco render` of a stack name or a stack file."""
    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "cli.main", "render", str(stack_file), "--out", out],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--extra", default="", help="more pool counts, e.g. 1000,2000")
    args = parser.parse_args()

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "floor.json"
        sample = largest_sample(plan)
        floor, rendered = time_floor_and_render(sample, plan, args.repeat)
        results[f"sample:{sample}"] = rendered
        results[f"floor:{sample}"] = floor
        extra = [int(n) for n in args.extra.split(",") if n]
        for n in (50, 500, *extra):
            path = Path(tmp) / f"Pulumi.gen{n}.yaml"
            path.write_text(yaml.safe_dump(generated_stack(n)))
            results[f"generated:{n}"] = time_render(path, args.repeat)

    ratio = results["generated:500"] / results["generated:50"]
    over_floor = results[f"sample:{sample}"] / results[f"floor:{sample}"]
    for name, seconds in results.items():
        print(f"{name:40s} {seconds:7.2f} s")
    print(f"{'render / floor':40s} {over_floor:7.2f}   (target <= 2)")
    print(f"{'t500 / t50':40s} {ratio:7.2f}   (target <= 11)")
    ok = results["generated:500"] < 10 and ratio <= 11 and over_floor <= 2
    print("targets met" if ok else "TARGETS MISSED")
    if args.json:
        summary = {**results, "ratio": ratio, "render_over_floor": over_floor}
        args.json.write_text(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
