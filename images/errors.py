"""Typed errors of the image builder. Library code raises these; only the CLI prints them."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from spec.errors import CocoError, ExitCode


class ImageError(CocoError):
    """Base class of every error the image builder raises on purpose: a failed operation (exit
    code 4) unless a subclass says the input was wrong (2) or something was unreachable (3)."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class RecipeError(ImageError):
    """A recipe file is missing, malformed or asks for something the builder cannot do."""

    exit_code = ExitCode.INVALID


class InputError(ImageError):
    """A path given to a command is not what it needs (e.g. no build in the directory)."""

    exit_code = ExitCode.INVALID


class ToolMissing(ImageError):
    """One or more host tools the build needs are not installed."""

    exit_code = ExitCode.INVALID

    def __init__(self, missing: Sequence[tuple[str, str]]) -> None:
        tools = ", ".join(tool for tool, _ in missing)
        packages = " ".join(sorted({package for _, package in missing}))
        super().__init__(
            f"missing host tool(s): {tools}",
            hint=f"install them with: apt-get install {packages}",
        )
        self.missing = list(missing)


class CommandFailed(ImageError):
    """An external command exited non-zero. The message is a copy-pasteable command line."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        message = f"command failed with exit code {returncode}: {shlex.join(self.argv)}"
        super().__init__(message + (f"\n{tail}" if tail else ""), hint="rerun with --debug")


class DownloadError(ImageError):
    """A payload or mirror file could not be fetched, or its sha256 does not match (what the
    server sent is not what is pinned): the outside failed, exit code 3."""

    exit_code = ExitCode.UNREACHABLE


class ReferenceRefused(DownloadError):
    """The registry answered, and refused the reference (HTTP 4xx: no such repository or tag, or
    not public): the recipe's input is wrong, exit code 2, not something unreachable."""

    exit_code = ExitCode.INVALID


class MeasurementMismatch(ImageError):
    """A predicted measurement differs from what a real boot or an independent tool reports."""


class BootFailed(ImageError):
    """The boot test did not reach the marker (or reached it when it must not)."""
