"""What `coco` writes for machines (`--output json`) and how it reports errors.

The contract (docs/cli.md):
- `--output json` (`-o json`): stdout holds exactly one JSON document, sorted keys, with
  `schemaVersion` and `command`; its schema is cli/schemas/<command>.schema.json. Progress and
  warnings that are not part of the document go to stderr as text.
- An error exits with its class's code (spec.errors.ExitCode). In text mode stderr says
  `error: ...` and `  hint: ...`; under `--output json` stdout stays empty and the last line of
  stderr is one JSON object (cli/schemas/error.schema.json): pipelines read it from there.

`schemaVersion` changes only when a field is removed or changes meaning; adding a field keeps it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from spec.errors import ConfigIssue, ExitCode

SCHEMA_VERSION = 1
SCHEMAS = Path(__file__).parent / "schemas"


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def document(command: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with the fields every JSON output carries."""
    return {"schemaVersion": SCHEMA_VERSION, "command": command, **body}


def emit(command: str, body: dict[str, Any]) -> None:
    sys.stdout.write(dumps(document(command, body)))


def issue(i: ConfigIssue) -> dict[str, str]:
    return {"path": i.path, "message": i.message, "hint": i.hint, "severity": i.severity}


def error(
    command: str,
    json_mode: bool,
    message: str,
    hint: str = "",
    code: int = ExitCode.INVALID,
    issues: list[ConfigIssue] | None = None,
    warnings: list[ConfigIssue] | None = None,
) -> int:
    """Report one failure on stderr, text or JSON, and return its exit code."""
    if json_mode:
        found = {
            "exitCode": int(code),
            "message": message,
            "hint": hint,
            "issues": [issue(i) for i in [*(issues or []), *(warnings or [])]],
        }
        body = {"error": found}
        print(
            json.dumps(document(command, body), sort_keys=True, ensure_ascii=False), file=sys.stderr
        )
        return int(code)
    if issues is not None:
        for i in [*issues, *(warnings or [])]:
            print(i.render(), file=sys.stderr)
        print(message, file=sys.stderr)
        return int(code)
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)
    return int(code)


def schema(command: str) -> dict[str, Any]:
    """The JSON Schema of a command's output ("check", "kbs-get-reference-value", "error")."""
    loaded: dict[str, Any] = json.loads(
        (SCHEMAS / f"{command}.schema.json").read_text(encoding="utf-8")
    )
    return loaded


# Exceptions these libraries define mean the outside failed (a cloud API, the network), not us.
_OUTSIDE = ("botocore", "boto3", "google", "azure", "requests", "urllib3", "msal", "http")


def from_outside(exc: BaseException) -> bool:
    """An error of the network or a cloud API: exit code 3, not a bug (4)."""
    import socket
    import urllib.error

    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | urllib.error.URLError):
        return True
    module = type(exc).__module__.split(".")[0]
    return module in _OUTSIDE
