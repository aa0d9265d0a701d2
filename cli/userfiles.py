"""Reading a file the user named (a CA certificate, a token, a policy, a saved JSON): one
helper, so every command reports an unreadable or non-UTF-8 file the same way, as bad input
(exit 2) naming the file and where the bad byte is, never as an unexpected failure."""

from __future__ import annotations

import sys
from pathlib import Path

from spec.errors import CocoError, StackFileError


def decode(data: bytes, shown: str, what: str, error: type[CocoError] = StackFileError) -> str:
    """`data` as UTF-8 text, or `error` naming the line and byte of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{what} {shown}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at line {line}, "
            f"byte {column} of that line; offset {exc.start})",
            f"pass the {what} as UTF-8 text",
        ) from None


def read_bytes(
    path: str | Path, what: str, error: type[CocoError] = StackFileError, *, stdin: bool = False
) -> bytes:
    """The file's bytes (with `stdin`, `-` is stdin), or `error` saying why it cannot be read."""
    if stdin and str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise error(f"cannot read {what} {str(path)!r}: {reason}", f"check the {what}'s path") \
            from None


def read_text(
    path: str | Path, what: str, error: type[CocoError] = StackFileError, *, stdin: bool = False
) -> str:
    """The file as UTF-8 text (with `stdin`, `-` is stdin), or `error` (exit 2 for
    StackFileError)."""
    shown = "(stdin)" if stdin and str(path) == "-" else repr(str(path))
    return decode(read_bytes(path, what, error, stdin=stdin), shown, what, error)
