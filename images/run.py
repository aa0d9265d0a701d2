"""The one door to the outside: every external command the builder runs goes through here.

Habit from mkosi (mkosi/run.py): argv lists only (no shell), a fixed environment (LANG=C.UTF-8,
TZ=UTC, SOURCE_DATE_EPOCH), the command printed under --debug, and a failure reported once as a
copy-pasteable `shlex.join` line (errors.CommandFailed). Tools are checked before a long build
starts, naming the Debian package that provides each missing one.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from rich.console import Console

from .errors import CommandFailed, ToolMissing

# tool -> Debian (bookworm) package that provides it.
TOOLS: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "tar": "tar",
    "cp": "coreutils",
    "mkfs.erofs": "erofs-utils",
    "veritysetup": "cryptsetup-bin",
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "objcopy": "binutils",
    "depmod": "kmod",
    "debugfs": "e2fsprogs",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "swtpm": "swtpm",
    "sev-snp-measure": "(pip) sev-snp-measure",
}
# Files (not commands) the build reads from Debian packages.
FILES: dict[str, str] = {
    "/usr/lib/systemd/boot/efi/linuxx64.efi.stub": "systemd-boot-efi",
    "/usr/share/OVMF/OVMF_CODE_4M.fd": "ovmf",
    "/usr/share/OVMF/OVMF_VARS_4M.fd": "ovmf",
    "/usr/share/ovmf/OVMF.fd": "ovmf",
}

BUILD_TOOLS = (
    "mmdebstrap",
    "tar",
    "mkfs.erofs",
    "veritysetup",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mmd",
    "objcopy",
    "depmod",
    "qemu-img",
)
BOOT_TOOLS = ("qemu-system-x86_64", "swtpm")

console = Console(stderr=True, highlight=False, soft_wrap=True)
_debug = False
_epoch = 0


def configure(*, debug: bool, source_date_epoch: int) -> None:
    """Set --debug and the SOURCE_DATE_EPOCH every command sees."""
    global _debug, _epoch
    _debug = debug
    _epoch = source_date_epoch


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The fixed environment: PATH from the host, everything locale- and time-related pinned."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(_epoch),
        "HOME": os.environ.get("HOME", "/root"),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "MTOOLS_SKIP_CHECK": "1",
    }
    env.update(extra or {})
    return env


def _which(tool: str) -> str | None:
    found = shutil.which(tool, path=environment()["PATH"] + ":/usr/sbin:/sbin")
    if found is None and tool == "sev-snp-measure":
        # pip puts console scripts next to the interpreter of the venv
        import sys

        candidate = Path(sys.executable).parent / tool
        found = str(candidate) if candidate.exists() else None
    return found


def tool_path(tool: str) -> str:
    found = _which(tool)
    if found is None:
        raise ToolMissing([(tool, TOOLS.get(tool, tool))])
    return found


def check_tools(tools: Sequence[str], files: Sequence[str] = ()) -> None:
    """Fail before a long build starts, naming every missing tool and its Debian package."""
    missing = [(t, TOOLS.get(t, t)) for t in tools if _which(t) is None]
    missing += [(f, FILES.get(f, f)) for f in files if not Path(f).exists()]
    if missing:
        raise ToolMissing(missing)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    stdout: IO[bytes] | None = None,
) -> str:
    """Run one command; return its stdout (decoded) unless `stdout` is a file to write to."""
    args = [str(a) for a in argv]
    args[0] = tool_path(args[0]) if "/" not in args[0] else args[0]
    if _debug:
        console.print(f"[dim]$ {shlex.join(args)}[/dim]")
    result = subprocess.run(
        args,
        cwd=cwd,
        env=environment(env),
        input=stdin,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    out = result.stdout.decode(errors="replace") if stdout is None else ""
    if result.returncode != 0:
        raise CommandFailed(args, result.returncode, out + result.stderr.decode(errors="replace"))
    return out


def spawn(
    argv: Sequence[str | os.PathLike[str]], *, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running helper (swtpm, qemu) with the same rules; output goes to `log`."""
    args = [str(a) for a in argv]
    args[0] = tool_path(args[0]) if "/" not in args[0] else args[0]
    if _debug:
        console.print(f"[dim]$ {shlex.join(args)} &[/dim]")
    with log.open("wb") as handle:
        return subprocess.Popen(
            args, env=environment(env), stdin=subprocess.DEVNULL, stdout=handle, stderr=handle
        )


class Progress:
    """One line per build step with its duration (rich); quiet=True prints nothing."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total = total
        self.index = 0
        self.quiet = quiet
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.index += 1
        started = time.perf_counter()
        if not self.quiet:
            console.print(f"[bold][{self.index}/{self.total}][/bold] {name} ...")
        yield
        elapsed = time.perf_counter() - started
        self.timings[name] = round(elapsed, 2)
        if not self.quiet:
            console.print(f"      [green]done[/green] {name} ({elapsed:.1f}s)")
