"""Install time and venv size per extra, and what the base install can do.

For each of base (no extra), azure, aws, gcp and all: a fresh venv, `pip install` of a wheel of
this checkout with that extra, timed, and the venv's size on disk. In the base venv,
`coco check dev` and `coco render dev` must work (targets: base under 2 minutes and 300 MB).
`--cold` passes --no-cache-dir so every package is downloaded, as on a fresh machine.

    python benchmarks/install_bench.py [--cold] [--extras base,azure] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("base", "azure", "aws", "gcp", "all")
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", "out")


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def wheel(tmp: Path) -> Path:
    """A wheel of the working tree, built from a copy (setuptools writes build/ in the source)."""
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp), str(source)],
        check=True,
    )
    return next(tmp.glob("coco_stack-*.whl"))


def install(tmp: Path, whl: Path, extra: str, cold: bool) -> dict[str, float]:
    venv = tmp / f"venv-{extra}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if cold:
        pip.append("--no-cache-dir")
    target = str(whl) if extra == "base" else f"coco-stack[{extra}] @ {whl.as_uri()}"
    started = time.perf_counter()
    subprocess.run([*pip, target], check=True)
    return {"seconds": time.perf_counter() - started, "mb": size_mb(venv)}


def base_works(tmp: Path) -> None:
    """`coco check dev` and `coco render dev` in the base venv (cwd: the checkout's stacks)."""
    coco = str(tmp / "venv-base" / "bin" / "coco")
    subprocess.run([coco, "check", "dev"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(
        [coco, "render", "dev", "--out", str(tmp / "render-dev")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    done = subprocess.run([coco, "check", "azure-snp"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "pip install 'coco-stack[azure]'" in done.stderr, done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="pip --no-cache-dir")
    parser.add_argument("--extras", default=",".join(EXTRAS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="coco-install-") as name:
        tmp = Path(name)
        whl = wheel(tmp)
        for extra in args.extras.split(","):
            results[extra] = install(tmp, whl, extra, args.cold)
            print(
                f"{extra:6s} {results[extra]['seconds']:7.1f} s  {results[extra]['mb']:7.0f} MB",
                flush=True,
            )
        if "base" in results:
            base_works(tmp)
            print("base install: coco check dev, coco render dev work; azure-snp names its extra")
    ok = "base" not in results or (results["base"]["seconds"] < 120 and results["base"]["mb"] < 300)
    print("targets met" if ok else "TARGETS MISSED")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
