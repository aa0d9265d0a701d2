"""`coco diff BASE_DIR HEAD_DIR`: Markdown summary of what changes between two `coco render`
output directories, for a pull-request comment.

Wire into cli.main.build_parser with `diff_cli.add_parsers(sub)`. Exit codes: 0 whether or
not something changed (1 with --exit-code when something changed), 2 when a directory is not
readable `coco render` output (DiffError's exit code, reported by cli.main). `-o json`: the
same content as data (cli/schemas/diff.schema.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli import danger, diff, options, output
from spec.errors import ExitCode

EXIT_CHANGED = ExitCode.CHANGES
EXIT_INVALID = ExitCode.INVALID


def cmd_diff(args: argparse.Namespace) -> int:
    result = diff.diff_dirs(Path(args.base), Path(args.head))
    if getattr(args, "output", "text") == "json":
        output.emit("diff", to_json(result))
    else:
        sys.stdout.write(diff.markdown(result))
    return EXIT_CHANGED if args.exit_code and not result.empty else ExitCode.OK


def add_parsers(sub: Any) -> None:
    """Add `diff` to the `coco` subcommands."""
    p = options.command(
        sub,
        "diff",
        help="Markdown summary of the changes between two `coco render` outputs "
        "(not `pulumi preview`); dangerous changes (stateful objects replaced or deleted) first",
        json=True,
        examples="""
  coco render dev --out base && git switch topic && coco render dev --out head
  coco diff base head                  Markdown for a pull-request comment
  coco diff base head --exit-code      exit 1 when something changed
  coco diff base head -o json | jq '.dangerous'
""",
    )
    p.add_argument("base", metavar="BASE_DIR", help="`coco render --out` directory of the base")
    p.add_argument("head", metavar="HEAD_DIR", help="`coco render --out` directory of the head")
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when something changed (0 otherwise), as `git diff --exit-code`",
    )
    p.set_defaults(func=cmd_diff)


def _json_change(change: diff.Change) -> dict[str, Any]:
    """One change: `old`/`new` are absent where the path does not exist on that side."""
    found: dict[str, Any] = {"path": change.path}
    if change.old is not diff.MISSING:
        found["old"] = change.old
    if change.new is not diff.MISSING:
        found["new"] = change.new
    return found


def _json_resource(resource: dict[str, Any]) -> dict[str, Any]:
    return {"type": resource["type"], "name": resource["name"], "parent": resource.get("parent")}


def to_json(result: diff.Diff) -> dict[str, Any]:
    """`coco diff -o json` (cli/schemas/diff.schema.json, without schemaVersion and command):
    the Markdown's content as data. Secrets stay "[secret]"."""
    return {
        "base": {"stack": result.base.stack, "path": str(result.base.path)},
        "head": {"stack": result.head.stack, "path": str(result.head.path)},
        "empty": result.empty,
        "dangerous": [
            {"type": d.type, "name": d.name, "action": d.action, "reason": d.reason}
            for d in danger.dangerous(result)
        ],
        "resources": {
            "added": [_json_resource(r) for r in result.added],
            "removed": [_json_resource(r) for r in result.removed],
            "changed": [
                {
                    "type": rc.type,
                    "name": rc.name,
                    "changes": [_json_change(c) for c in rc.changes],
                    "secretsUnknown": [p or "(value)" for p in rc.secrets],
                }
                for rc in result.changed
            ],
        },
        "outputs": [_json_change(c) for c in result.outputs],
        "manifests": {
            "added": result.manifests_added,
            "removed": result.manifests_removed,
            "changed": result.manifests_changed,
        },
        "secretValues": diff.secret_count(result.head),
    }
