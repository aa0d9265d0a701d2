"""`coco diff BASE_DIR HEAD_DIR`: Markdown summary of what changes between two `coco render`
output directories, for a pull-request comment.

Wire into cli.main.build_parser with `diff_cli.add_parsers(sub)`. Exit codes: 0 whether or
not something changed (1 with --exit-code when something changed), 2 when a directory is not
readable `coco render` output. This module handles its own DiffError, so the exit code does not
depend on which errors cli.main.main knows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli import diff

EXIT_CHANGED = 1
EXIT_INVALID = 2


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        result = diff.diff_dirs(Path(args.base), Path(args.head))
    except diff.DiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(diff.markdown(result))
    return EXIT_CHANGED if args.exit_code and not result.empty else 0


def add_parsers(sub: Any) -> None:
    """Add `diff` to the `coco` subcommands."""
    p = sub.add_parser(
        "diff",
        help="Markdown summary of the changes between two `coco render` outputs "
        "(not `pulumi preview`)",
    )
    p.add_argument("base", metavar="BASE_DIR", help="`coco render --out` directory of the base")
    p.add_argument("head", metavar="HEAD_DIR", help="`coco render --out` directory of the head")
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when something changed (0 otherwise), as `git diff --exit-code`",
    )
    p.set_defaults(func=cmd_diff)
