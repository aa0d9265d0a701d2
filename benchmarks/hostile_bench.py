"""The hostile-input corpus's figures (issue 18): cases, refused cleanly with the key path,
crashes, leaks of the planted secret, and the slowest case; plus a 5 MB stack file's answer.

    PYTHONPATH=. .venv/bin/python benchmarks/hostile_bench.py [--skip CASE_ID ...] [--no-big]

(--skip and --no-big exist to run the corpus against older code, where some cases never end.)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spec.errors import SpecError, StackFileError
from tests.spec.hostile_corpus import CASES, FILE, SECRET, run


def _big_stack(size: int) -> str:
    lines = ["config:", "  coco:environment: dev", "  coco:kbs:", "    resources:"]
    i = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines += [f"      - path: default/key/k{i}", f"        value: value-{i}-{'x' * 32}"]
        i += 1
    return "\n".join(lines) + "\n"


def main() -> int:
    args = sys.argv[1:]
    skip = {args[i + 1] for i, a in enumerate(args) if a == "--skip"}
    refused = crashes = leaks = 0
    slowest = (0.0, "")
    with tempfile.TemporaryDirectory() as tmp:
        for case_id, text, path, fragment, _ in CASES:
            if case_id in skip:
                print(f"skipped: {case_id}")
                continue
            outcome = run(text, Path(tmp))
            error = outcome.error
            if outcome.seconds > slowest[0]:
                slowest = (outcome.seconds, case_id)
            if any(SECRET in m for m in outcome.messages):
                leaks += 1
                print(f"leak: {case_id}")
            if error is not None and not isinstance(error, SpecError | StackFileError):
                crashes += 1
                print(f"crash: {case_id}: {type(error).__name__}")
            elif (path == FILE and isinstance(error, StackFileError) and fragment in "\n".join(
                outcome.messages
            )) or (isinstance(error, SpecError) and any(
                i.path == path and fragment in i.render() for i in error.issues
            )):
                refused += 1
            else:
                print(f"not refused as expected: {case_id}")
        print(f"cases: {len(CASES)}")
        print(f"refused with the key path and expected message: {refused}")
        print(f"crashes: {crashes}")
        print(f"leaks: {leaks}")
        print(f"slowest: {slowest[1]} {slowest[0] * 1000:.0f} ms")
        for size in () if "--no-big" in args else (900_000, 5_000_000):
            outcome = run(_big_stack(size), Path(tmp))
            kind = type(outcome.error).__name__ if outcome.error else "accepted"
            print(f"{size / 1e6:.1f} MB stack file: {outcome.seconds:.2f} s ({kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
