"""Command-line latency: `coco --help` (target under 0.3 s) and `coco check dev` (under 0.5 s).

Each is the best of --repeat runs of the installed `coco` entry point in a fresh process, so it
includes interpreter start and every import: what a user waits for at the prompt.

    python benchmarks/cli_bench.py [--repeat 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"coco --help": (["--help"], 0.3), "coco check dev": (["check", "dev"], 0.5)}


def best(argv: list[str], repeat: int) -> float:
    coco = shutil.which("coco", path=str(Path(sys.executable).parent)) or "coco"
    fastest = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([coco, *argv], cwd=ROOT, check=True, capture_output=True)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {name: best(argv, args.repeat) for name, (argv, _) in TARGETS.items()}
    ok = True
    for name, seconds in results.items():
        target = TARGETS[name][1]
        ok &= seconds < target
        print(f"{name:20s} {seconds:6.3f} s   (target < {target} s)")
    print("targets met" if ok else "TARGETS MISSED")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
