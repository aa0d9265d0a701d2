"""Writing files where a user asked: `coco render --out`, `coco image build --out`.

One set of rules for every output directory a command line names:
- the target is checked before anything is written: no symbolic link anywhere on the path as
  given (a link could send the output anywhere), not `/`, the home directory, the current
  directory, the project or its repository (nor a folder holding one of them), not a file, and
  an existing directory only when it is empty or a previous output of the same command (its
  marker file, and nothing but the names that command writes);
- the new output is written into a fresh directory beside the target (mode 0700 while it is
  written, files created with O_EXCL | O_NOFOLLOW, so nothing is followed), then renamed into
  place: a reader sees the old output or the new one, never a mix;
- files that hold secrets are created 0600 (`write_file(..., secret=True)`), never chmod-ed
  after the fact.

Imports nothing of ours but errors, so the CLI and the image builder share it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ErrorFactory = Callable[[str, str], Exception]


@dataclass(frozen=True)
class OutputKind:
    """What one command writes into its output directory.

    `marker`: the file that marks a directory as this command's output; `entries`: every other
    name it writes at the top of the directory; `legacy`: a name whose presence marks an output
    written before the marker existed (None: none)."""

    command: str
    marker: str
    entries: frozenset[str]
    legacy: str | None = None
    marker_text: str = ""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _repository_root(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return None


def walk_no_symlinks(path: Path, option: str, error: ErrorFactory) -> Path:
    """The absolute path `path` names, refusing a symbolic link on any existing component as
    written (for a relative path: below the current directory). The result is real as far as
    it exists: '..' is applied to a checked, link-free prefix."""
    raw = os.fspath(path)
    if not raw or "\0" in raw:
        raise error(f"{option} {raw!r} is not a path", "name a directory, e.g. out/dev")
    current = Path("/") if path.is_absolute() else Path.cwd().resolve()
    exists = True
    for part in path.parts:
        if part in ("/", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        current = current / part
        if not exists:
            continue
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            exists = False
            continue
        except OSError as exc:
            raise error(f"{option} {raw}: cannot inspect {current}: {exc.strerror}",
                        "name a directory you can write") from None
        if stat.S_ISLNK(info.st_mode):
            real = os.path.realpath(path)
            raise error(
                f"{option} {raw}: {current} is a symbolic link; outputs are never written "
                "through a link (it could send them anywhere)",
                f"name the real directory instead (the link resolves to {real})",
            )
    return current


def check_target(
    out: Path,
    kind: OutputKind,
    error: ErrorFactory,
    *,
    option: str = "--out",
    protected: dict[Path, str] | None = None,
) -> Path:
    """The absolute output directory for `out`, or `error(message, hint)` for an unsafe one."""
    target = walk_no_symlinks(out, option, error)
    hint = "choose a new or empty directory, e.g. out/dev"
    guarded = {Path("/"): "the root directory"}
    with contextlib.suppress(RuntimeError, KeyError):
        guarded[Path.home().resolve()] = "your home directory"
    cwd = Path.cwd().resolve()
    guarded[cwd] = "the current directory"
    for path, label in (protected or {}).items():
        guarded[path.resolve()] = label
        repository = _repository_root(path.resolve())
        if repository is not None:
            guarded.setdefault(repository, f"the repository holding {label}")
    repository = _repository_root(cwd)
    if repository is not None:
        guarded.setdefault(repository, "the repository you are in")
    for path, label in sorted(guarded.items()):
        if target == path:
            raise error(f"{option} {out}: {target} is {label}; {kind.command} replaces its "
                        "output directory as a whole", hint)
        if path.is_relative_to(target):
            raise error(f"{option} {out}: {target} holds {label} ({path}); {kind.command} "
                        "replaces its output directory as a whole", hint)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise error(f"{option} {out}: cannot inspect {target}: {exc.strerror}", hint) from None
    if not stat.S_ISDIR(info.st_mode):
        what = "a file" if stat.S_ISREG(info.st_mode) else "a device, FIFO or socket"
        raise error(f"{option} {out}: {target} is {what}, not a directory", hint)
    try:
        names = sorted(os.listdir(target))
    except OSError as exc:
        raise error(f"{option} {out}: cannot list {target}: {exc.strerror}", hint) from None
    if not names:
        return target
    ours = kind.marker in names or (kind.legacy is not None and kind.legacy in names)
    if not ours:
        raise error(
            f"{option} {out}: {target} is not empty and is not a {kind.command} output "
            f"(no {kind.marker} marker)", hint)
    allowed = kind.entries | {kind.marker}
    for name in names:
        if name not in allowed:
            raise error(f"{option} {out}: {target} holds {name}, which {kind.command} did not "
                        "write; it would be lost when the output is replaced",
                        f"move {name} elsewhere, or {hint}")
        if os.path.islink(target / name):
            raise error(f"{option} {out}: {target / name} is a symbolic link; outputs are "
                        "never written through a link", f"remove the link, or {hint}")
    marker = target / kind.marker
    if kind.marker in names and not marker.is_file():
        raise error(f"{option} {out}: {marker} is not a regular file", hint)
    return target


def _make_parents(target: Path) -> None:
    missing = []
    for parent in target.parents:
        if os.path.lexists(parent):
            break
        missing.append(parent)
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(parent, 0o777)


@contextlib.contextmanager
def replace_dir(
    out: Path,
    kind: OutputKind,
    error: ErrorFactory,
    *,
    option: str = "--out",
    protected: dict[Path, str] | None = None,
) -> Iterator[Path]:
    """Check `out` (check_target), yield a fresh private directory beside it to write the new
    output into, and on success move it into place, replacing the previous output. On failure
    the staging directory is removed and the previous output is left as it was."""
    target = check_target(out, kind, error, option=option, protected=protected)
    _make_parents(target)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:64]}.", suffix=".new",
                                        dir=target.parent))
    except OSError as exc:
        raise error(f"{option} {out}: cannot create a directory in {target.parent}: "
                    f"{exc.strerror}", "name a directory you can write") from None
    try:
        yield staging
        write_file(staging, kind.marker, (kind.marker_text or f"{kind.command} output").encode()
                   + b"\n")
        os.chmod(staging, 0o777 & ~_umask())
        # checked again: the target may have changed while the output was produced
        check_target(out, kind, error, option=option, protected=protected)
        if os.path.lexists(target) and os.listdir(target):
            old = Path(tempfile.mkdtemp(prefix=f".{target.name[:64]}.", suffix=".old",
                                        dir=target.parent))
            os.rename(target, old / "previous")
            os.rename(staging, target)
            shutil.rmtree(old)
        else:
            os.rename(staging, target)  # over an empty directory, or none
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        where = f" ({exc.filename})" if exc.filename else ""
        raise error(f"{option} {out}: cannot write the output: {exc.strerror}{where}",
                    "name a directory you can write, on a file system with room") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file(directory: Path, name: str, data: bytes, *, secret: bool = False,
               mode: int = 0o644) -> Path:
    """Create `directory/name` (it must not exist; a link there is never followed) holding
    `data`: mode 0600 when it holds a secret (from its creation), else `mode` under the
    umask."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a file name")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    path = directory / name
    fd = os.open(path, flags, 0o600 if secret else mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path
