"""Render-time benchmark: the largest sample stack and generated stacks of 50 and 500 pools.

Targets (issue: foundation), on the 2-core project machine: 500 pools under 10 s, and growth
linear: t500 / t50 <= 11. Each measurement is the best of --repeat runs of the whole `coco render`
command in a fresh process (interpreter start, imports, validation, the program under mocks,
writing the output), so it is what a user or CI waits for.

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


def largest_sample() -> Path:
    def pools(path: Path) -> int:
        config = (yaml.safe_load(path.read_text()) or {}).get("config", {})
        return len(config.get("coco:nodePools") or [])

    return max(sorted((ROOT / "stacks").glob("Pulumi.*.yaml")), key=pools)


def time_render(stack_file: Path, repeat: int) -> float:
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
    sample = largest_sample()
    results[f"sample:{sample.name}"] = time_render(sample, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        extra = [int(n) for n in args.extra.split(",") if n]
        for n in (50, 500, *extra):
            path = Path(tmp) / f"Pulumi.gen{n}.yaml"
            path.write_text(yaml.safe_dump(generated_stack(n)))
            results[f"generated:{n}"] = time_render(path, args.repeat)

    ratio = results["generated:500"] / results["generated:50"]
    for name, seconds in results.items():
        print(f"{name:40s} {seconds:7.2f} s")
    print(f"{'t500 / t50':40s} {ratio:7.2f}   (target <= 11)")
    ok = results["generated:500"] < 10 and ratio <= 11
    print("targets met" if ok else "TARGETS MISSED")
    if args.json:
        args.json.write_text(json.dumps({**results, "ratio": ratio}, indent=2, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
