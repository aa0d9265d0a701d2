"""`coco preview-summary FILE`: Markdown of a real `pulumi preview --json`, for a pull request.

The workflow runs `pulumi preview --json` where a stack's credentials exist and posts this
summary (the plan the engine computed: operations per resource and the input keys that
changed); without credentials it posts `coco diff` of two renders instead. Only names, types,
operations and changed keys are shown: never a value, so nothing secret can reach a comment.

Input: the JSON document `pulumi preview --json` prints (fields `steps[].op`, `steps[].urn`,
`steps[].diffReasons`, `steps[].detailedDiff`, `changeSummary`, `diagnostics[]`; pulumi
pkg/display/json.go, previewDigest).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from spec.errors import ExitCode

EXIT_INVALID = ExitCode.INVALID
# the order operations are listed in, most consequential first
ORDER = (
    "delete",
    "replace",
    "create-replacement",
    "delete-replaced",
    "create",
    "update",
    "import",
    "refresh",
    "read",
    "same",
)
SHOWN = frozenset(ORDER) - {"same", "read", "refresh", "create-replacement", "delete-replaced"}


class PreviewError(ValueError):
    """The input is not `pulumi preview --json` output."""


@dataclass(frozen=True, order=True)
class Step:
    op: str
    type: str
    name: str
    keys: tuple[str, ...]


def _parse_urn(urn: str) -> tuple[str, str]:
    """(resource type, name) of urn:pulumi:STACK::PROJECT::PARENT$TYPE::NAME."""
    parts = urn.split("::")
    if len(parts) < 4 or not urn.startswith("urn:pulumi:"):
        raise PreviewError(f"not a resource URN: {urn!r}")
    return parts[2].rsplit("$", 1)[-1], "::".join(parts[3:])


def steps(doc: Any) -> list[Step]:
    if not isinstance(doc, dict) or not isinstance(doc.get("steps", []), list):
        raise PreviewError("expected the JSON object `pulumi preview --json` prints")
    found = []
    for raw in doc.get("steps") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("urn"), str):
            raise PreviewError("a step without a urn")
        op = str(raw.get("op", ""))
        if op not in SHOWN:
            continue
        kind, name = _parse_urn(raw["urn"])
        keys = sorted({*(raw.get("diffReasons") or []), *(raw.get("detailedDiff") or {})})
        found.append(Step(op, kind, name, tuple(str(k) for k in keys)))
    return sorted(found, key=lambda s: (ORDER.index(s.op), s.type, s.name))


def markdown(doc: Any, stack: str = "") -> str:
    found = steps(doc)
    counts: dict[str, int] = {}
    for step in found:
        counts[step.op] = counts.get(step.op, 0) + 1
    title = f"### `pulumi preview`{f' of {stack}' if stack else ''}"
    if not found:
        lines = [title, "", "No changes."]
    else:
        summary = ", ".join(f"{counts[op]} to {op}" for op in ORDER if op in counts)
        lines = [
            title,
            "",
            summary,
            "",
            "| operation | type | name | changed inputs |",
            "|---|---|---|---|",
        ]
        for s in found:
            keys = ", ".join(f"`{k}`" for k in s.keys) or ""
            lines.append(f"| {s.op} | `{s.type}` | `{s.name}` | {keys} |")
    errors = [
        d.get("message", "").strip()
        for d in doc.get("diagnostics") or []
        if isinstance(d, dict) and d.get("severity") == "error"
    ]
    if errors:
        lines += [
            "",
            "**Errors:**",
            "",
            *(f"    {line}" for e in errors for line in e.splitlines()),
        ]
    return "\n".join(lines) + "\n"


def cmd_preview_summary(args: argparse.Namespace) -> int:
    from cli.userfiles import read_text
    from spec.errors import StackFileError

    try:
        text = read_text(args.file, "`pulumi preview --json` output", stdin=True)
        doc = json.loads(text)
        sys.stdout.write(markdown(doc, args.stack or ""))
    except StackFileError as exc:  # unreadable, or not UTF-8: its message names the file
        print(f"error: {exc}", file=sys.stderr)
        print("  hint: pulumi preview --json -s STACK > preview.json", file=sys.stderr)
        return EXIT_INVALID
    except (json.JSONDecodeError, PreviewError) as exc:
        what = exc
        print(
            f"error: {args.file}: not readable `pulumi preview --json` output: {what}",
            file=sys.stderr,
        )
        print("  hint: pulumi preview --json -s STACK > preview.json", file=sys.stderr)
        return EXIT_INVALID
    return 0


def add_parsers(sub: Any) -> None:
    """Add `preview-summary` to the `coco` subcommands."""
    from cli import options

    p = options.command(
        sub,
        "preview-summary",
        help="Markdown summary of `pulumi preview --json` output, for a pull request",
        stack="optional",  # -s/--stack: the stack name for the title
        examples="""
  pulumi preview --json -s dev > preview.json && coco preview-summary preview.json -s dev
  pulumi preview --json -s dev | coco preview-summary - --stack dev
""",
    )
    p.add_argument("file", metavar="FILE", help="the saved JSON, or - for stdin")
    p.set_defaults(func=cmd_preview_summary)
