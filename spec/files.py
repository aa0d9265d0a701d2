"""Files named by the user (stack files, policies, recipes), read only when they are regular.

A directory, FIFO, socket or device (`/dev/null`, `/dev/zero`, a named pipe) named where a file
belongs is refused as what it is, never as "does not exist", and never read: a FIFO blocks and
a device can be endless. Files are opened non-blocking and checked with fstat on the open
descriptor, so a path swapped for a FIFO after the check cannot block the read either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is not a regular file (a named pipe)"),
    (stat.S_ISCHR, "is not a regular file (a character device)"),
    (stat.S_ISBLK, "is not a regular file (a block device)"),
    (stat.S_ISSOCK, "is not a regular file (a socket)"),
)


class NotRegularFile(OSError):
    """The path names something other than a regular file; str() says what."""


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    for test, text in _KINDS:
        if test(mode):
            return text
    return "is not a regular file"


def problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` (symlinks followed) is not a readable regular file, or None: "does not
    exist", "is a directory", "is not a regular file (...)"."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of its path is not a directory)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc.__class__.__name__})"
    return _kind(mode)


def read_bytes(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file `path` (so a caller can tell it is too
    large). Raises NotRegularFile for anything else, OSError when it cannot be read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(kind)
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int) -> str:
    """`read_bytes` decoded as UTF-8 (UnicodeDecodeError when it is not)."""
    return read_bytes(Path(path), limit).decode("utf-8")
