"""Image-build benchmark for the minimal recipe (issue: guest images).

Targets on the 2-core project machine: a cold build (empty cache) in at most 3 minutes and at
most 4x a bare mmdebstrap of the same package set timed in the same run; a warm rebuild (rootfs
and boot-tree stages cached) in at most 30 s; the raw image at most 512 MiB. The bare mmdebstrap
is the recipe's root file system command alone (same variant, packages, path excludes, mirror);
the cold build additionally runs a second mmdebstrap (kernel and initramfs packages, extract
variant), so the ratio is the whole pipeline against its first step. Needs root and the tools in
images.run.TOOLS. Exit code 1 when a target is missed.

    python benchmarks/image_bench.py [--recipe minimal] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from images import build, recipe, rootfs  # noqa: E402
from images.run import configure, run  # noqa: E402

MIB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="minimal")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    spec = recipe.load(args.recipe)
    with tempfile.TemporaryDirectory(prefix="coco-image-bench-") as tmp:
        work = Path(tmp)
        os.environ["COCO_IMAGE_CACHE"] = str(work / "cache")

        configure(debug=False, source_date_epoch=spec.source_date_epoch)
        started = time.perf_counter()
        run(rootfs.rootfs_argv(spec, work / "bare.tar"))
        bare = time.perf_counter() - started

        started = time.perf_counter()
        cold_result = build.build_image(spec, work / "cold", quiet=True)
        cold = time.perf_counter() - started

        started = time.perf_counter()
        warm_result = build.build_image(spec, work / "warm", quiet=True)
        warm = time.perf_counter() - started

        raw_mib = (work / "cold" / "disk.raw").stat().st_size / MIB
        identical = cold_result.measurements == warm_result.measurements
    results = {
        "recipe": spec.name,
        "bare_mmdebstrap_s": round(bare, 1),
        "cold_build_s": round(cold, 1),
        "cold_over_bare": round(cold / bare, 2),
        "warm_rebuild_s": round(warm, 1),
        "raw_image_mib": round(raw_mib, 1),
        "warm_identical_to_cold": identical,
        "cold_steps_s": cold_result.timings,
        "warm_steps_s": warm_result.timings,
    }
    checks = {
        "cold build <= 180 s": cold <= 180,
        "cold build <= 4x bare mmdebstrap": cold <= 4 * bare,
        "warm rebuild <= 30 s": warm <= 30,
        "raw image <= 512 MiB": raw_mib <= 512,
        "warm rebuild identical": identical,
    }
    print(json.dumps(results, indent=2))
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "checks": checks}, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
