"""Typed errors. Library code raises these; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Literal

from spec.redact import redact_urls


class ExitCode(IntEnum):
    """The exit codes of every `coco` command, defined once. Each CocoError carries its own
    (`exit_code`); the CLI returns it, so one kind of failure exits the same way everywhere."""

    OK = 0
    CHANGES = 1  # only with --exit-code (diff, render --diff) and image lock --check: changed
    INVALID = 2  # invalid input or usage: a bad stack, file, flag or argument
    UNREACHABLE = 3  # something could not be reached: network, KBS, registry, cloud API
    FAILED = 4  # an unexpected failure (a bug: rerun with --debug) or a failed operation


EXIT_CODES: tuple[tuple[ExitCode, str], ...] = (
    (ExitCode.OK, "success"),
    (ExitCode.CHANGES, "changes found (with --exit-code: diff, render --diff; image lock --check)"),
    (ExitCode.INVALID, "invalid input or usage (stack, file, option); every error is printed"),
    (ExitCode.UNREACHABLE, "something could not be reached (network, KBS, registry, cloud API)"),
    (
        ExitCode.FAILED,
        "a failed operation (build, boot, measurement) or an unexpected error "
        "(--debug shows the traceback)",
    ),
)


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem with the stack configuration, located by its full key path.

    `path` is written exactly as users write config keys, for example
    `coco:nodePools[1].instanceType`; `message` says what is wrong; `hint` what to do instead.
    """

    path: str
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"

    def render(self) -> str:
        text = f"{self.severity}: {self.path}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return redact_urls(text)


def report_unexpected(debug: bool) -> int:
    """For the CLIs' last resort: the traceback under --debug, else one line; exit code 4."""
    import sys
    import traceback

    if debug:
        traceback.print_exc()
    else:
        # the exception's type only: its text may quote what it failed on, a secret included
        print(
            f"error: unexpected failure: {type(sys.exc_info()[1]).__name__} (rerun with "
            "--debug for the details)",
            file=sys.stderr,
        )
    return int(ExitCode.FAILED)


class CocoError(Exception):
    """Base class of every error coco-stack raises on purpose. `exit_code` is what the CLI
    exits with: invalid input unless a subclass says otherwise. Its text and hint never show
    URL credentials (spec.redact)."""

    _hint: str = ""
    exit_code: ClassVar[ExitCode] = ExitCode.INVALID

    @property
    def hint(self) -> str:
        return redact_urls(self._hint)

    @hint.setter
    def hint(self, value: str) -> None:
        self._hint = value

    def __str__(self) -> str:
        return redact_urls(super().__str__())


class Unreachable(CocoError):
    """Something outside could not be reached or did not answer: the network, a KBS, a
    registry, a cloud API. Not the input's fault; retrying may help."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class SpecError(CocoError):
    """The stack configuration is invalid. Carries every problem found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(i for i in issues if i.severity == "error")
        self.warnings = sorted(i for i in issues if i.severity == "warning")
        count = len(self.issues)
        lines = [f"the stack configuration has {count} error{'s' if count != 1 else ''}:"]
        lines += [issue.render() for issue in self.issues]
        super().__init__("\n".join(lines))


class StackFileError(CocoError):
    """A stack name or stack file could not be found or read."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class NotYetSupported(CocoError):
    """The spec accepts this setting, but no component provisions it yet."""

    def __init__(self, path: str, message: str, hint: str = "") -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.hint = hint


class RenderError(CocoError):
    """`coco render` cannot write its output where asked."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class NoCredentials(CocoError):
    """`coco check --live` found no credentials for a cloud; only the offline checks ran."""

    def __init__(self, cloud: str, message: str, hint: str = "") -> None:
        super().__init__(f"{cloud}: {message}")
        self.cloud = cloud
        self.hint = hint
