"""The options every `coco` command accepts anywhere on the line, declared once.

`--debug`, `-o/--output` and `-s/--stack` are added to the top-level parser (with their real
defaults) and to every subcommand with `default=argparse.SUPPRESS`: a subcommand that was not
given the option leaves the namespace alone, so `coco --debug check dev` and
`coco check dev --debug` both work and neither clobbers the other (the pattern argparse's docs
give for parent parsers shared by subcommands). `finish()` then resolves the stack (positional
or -s) and refuses options a command cannot honour, as usage errors (exit code 2).

Only argparse here: `coco --help` must stay fast (tests/test_layout.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

OUTPUTS = ("text", "json")
JSON_COMMANDS = "check, diff, initdata, render, kbs get-reference-value"
StackMode = Literal["required", "optional"] | None
_STACK_HELP = "a stack name in stacks/ or a path to a stack YAML file"


def stack_names(prefix: str = "", **_: Any) -> list[str]:
    """Shell completion of STACK: the stack names in ./stacks and the project's stacks/."""
    names: set[str] = set()
    for folder in (Path.cwd() / "stacks", Path(__file__).resolve().parents[1] / "stacks"):
        names |= {p.name[len("Pulumi.") : -len(".yaml")] for p in folder.glob("Pulumi.*.yaml")}
    return sorted(n for n in names if n.startswith(prefix))


def add_common(
    parser: argparse.ArgumentParser,
    *,
    top: bool = False,
    takes_stack: bool = True,
    has_json: bool = True,
) -> None:
    """--debug, -o/--output and -s/--stack; SUPPRESS defaults below the top level. A command
    without a stack or JSON output still accepts -s and -o anywhere (finish() refuses them with
    a clear usage error) but its help does not show them."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show tracebacks, library warnings and every external command",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default=default("text"),
        help=f"text (default) or json: one JSON document on stdout ({JSON_COMMANDS})"
        if has_json
        else argparse.SUPPRESS,
    )
    stack = parser.add_argument(
        "-s",
        "--stack",
        metavar="STACK",
        default=default(None),
        help=_STACK_HELP + " (as pulumi)" if takes_stack else argparse.SUPPRESS,
    )
    stack.completer = stack_names  # type: ignore[attr-defined]


def command(
    sub: Any,
    name: str,
    *,
    help: str,
    examples: str,
    description: str | None = None,
    stack: StackMode = None,
    json: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand with the common options, a STACK positional when it takes a stack, and an
    epilog of examples. `name` is what error reports and JSON call the command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name.rsplit(" ", 1)[-1],
        help=help,
        description=description or help,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(parser, takes_stack=stack is not None, has_json=json)
    if stack:
        positional = parser.add_argument(
            "stack_arg", metavar="STACK", nargs="?", default=None, help=_STACK_HELP + " (or -s)"
        )
        positional.completer = stack_names  # type: ignore[attr-defined]
    parser.set_defaults(command_name=name, stack_mode=stack, json_output=json, parser=parser)
    return parser


def finish(top: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Resolve the stack and refuse what the command cannot do, as usage errors (exit 2)."""
    parser: argparse.ArgumentParser = getattr(args, "parser", top)
    name = getattr(args, "command_name", "")
    mode: StackMode = getattr(args, "stack_mode", None)
    given = getattr(args, "stack_arg", None)
    flag = getattr(args, "stack", None)
    if mode is None:
        if flag:
            parser.error(f"coco {name} takes no stack: drop -s/--stack {flag}")
    else:
        if given and flag and given != flag:
            parser.error(f"two different stacks: STACK {given!r} and -s/--stack {flag!r}; give one")
        args.stack = given or flag
        if mode == "required" and not args.stack:
            parser.error(f"a stack is needed: coco {name} STACK (or -s STACK)")
    if getattr(args, "output", "text") == "json" and not getattr(args, "json_output", False):
        parser.error(f"coco {name} has no JSON output; --output json works with: {JSON_COMMANDS}")
    return args
