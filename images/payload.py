"""Payload sources pinned by content: files read out of a disk image inside a pinned release
archive ([[payload.release]]), and binaries built with Go from a module group whose go.sum pins
every module by hash ([[payload.go]]).

Release images: the archive is fetched, checked and cached by images.release (the locked, atomic,
verified path the kata guest measurement uses); its disk-image member is kept in the cache with
its sha256 in an index; the files are read from the ext4 file system at the pinned byte offset
with debugfs (e2fsprogs: `debugfs -R "dump -p PATH OUT" "IMAGE?offset=N"`), which needs neither
root nor a loop device nor a mount.

Go payloads: tools/build.py (the project's Go tool builder) builds tools/go/GROUP into its cache,
keyed on the group's files and the Go toolchain, so a second image build compiles nothing.

Non-goals: file systems other than ext4 in release images; Go builds outside tools/go.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from . import release
from .errors import ImageError, RecipeError, ToolMissing
from .recipe import GoPayload, ReleasePayload
from .rootfs import payload_target
from .run import run

# tools/ of a coco-stack source checkout (the Go groups and their builder live there)
TOOLS_DIR = Path(__file__).resolve().parent.parent / "tools"
GO_DIR = TOOLS_DIR / "go"
_EXT4_MAGIC = b"\x53\xef"  # s_magic 0xEF53, little endian, at byte 56 of the superblock
_EXT4_MAGIC_AT = 1024 + 56  # the superblock starts 1024 bytes into the file system


def go_group_dir(group: str) -> Path:
    directory = GO_DIR / group
    if not (directory / "go.mod").is_file() or not (directory / "tools.toml").is_file():
        raise RecipeError(
            f"Go group {group!r}: {directory} has no go.mod and tools.toml",
            hint="[[payload.go]] group names a directory under tools/go/ of a coco-stack source "
            "checkout (build images from the repository)",
        )
    return directory


def go_group_files(group: str) -> list[Path]:
    """Every file of the group (go.mod, go.sum, manifest, glue), sorted: its content pin."""
    directory = go_group_dir(group)
    return [
        p
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.relative_to(directory).parts
    ]


def check_go() -> None:
    """Go must be on PATH before a build with a Go payload starts."""
    if shutil.which("go") is None:
        exc = ToolMissing([("go", "go")])
        exc.hint = (
            "install the Go toolchain (1.25 or newer, https://go.dev/dl; Debian bookworm's "
            "golang-go is too old) and put `go` on PATH: the podvm payload's "
            "agent-protocol-forwarder and process-user-data are built from tools/go/caa"
        )
        raise exc


def _tools_build() -> ModuleType:
    """tools/build.py, loaded by path (it is a script of the checkout, not a package)."""
    path = TOOLS_DIR / "build.py"
    if not path.is_file():
        raise RecipeError(f"{path} not found", hint="build Go payloads from a source checkout")
    name = "coco_tools_build"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None  # a .py file always has both
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    # the groups this module names (tests point GO_DIR at stand-ins)
    setattr(module, "GO_DIR", GO_DIR)  # noqa: B010
    return module


def go_binaries(group: str) -> dict[str, Path]:
    """{binary name: path} of the group, built (or found in the tools cache) by tools/build.py."""
    go_group_dir(group)
    check_go()
    builder = _tools_build()
    try:
        built: dict[str, Path] = builder.ensure([group])
    except builder.BuildError as exc:
        raise ImageError(
            f"building Go group {group} failed: {exc}",
            hint=f"run `python3 tools/build.py {group}` to see the go command's output; the "
            "module proxy must serve every module go.sum names",
        ) from exc
    return built


def install_go(items: Sequence[GoPayload], root: Path) -> list[dict[str, str]]:
    """Copy each [[payload.go]] binary into the root (mode 0755); what was placed, with sha256."""
    placed = []
    for i, item in enumerate(items):
        built = go_binaries(item.group)
        for name, dest in item.files:
            if name not in built:
                raise RecipeError(
                    f'payload.go[{i}].files."{name}": the group {item.group} builds no such binary',
                    hint=f"one of: {', '.join(sorted(built))}",
                )
            data = built[name].read_bytes()
            target = payload_target(root, dest)
            target.write_bytes(data)
            target.chmod(0o755)
            placed.append(
                {
                    "dest": dest,
                    "source": f"go:{item.group}/{name}",
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    return placed


class _Report:
    """Progress of a release download or read on stderr, every 10 percent (a first build fetches
    the 1.9 GB kata-static archive)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def __call__(self, what: str, done: int, total: int | None) -> None:
        step = done * 10 // total if total else 0
        if step > self.last.get(what, 0):
            self.last[what] = step
            print(f"coco: {what}: {step * 10}% of {(total or 0) >> 20} MiB", file=sys.stderr)


def release_image(item: ReleasePayload, *, offline: bool = False) -> Path:
    """The disk image member of the pinned archive, verified, from the image cache."""
    pin = item.image
    files = release.members(pin.artifact, [pin.member], progress=_Report(), offline=offline)
    return files[pin.member]


def check_ext4(image: Path, offset: int, where: str) -> None:
    with image.open("rb") as handle:
        handle.seek(offset + _EXT4_MAGIC_AT)
        magic = handle.read(2)
    if magic != _EXT4_MAGIC:
        raise ImageError(
            f"{where}: {image.name} has no ext4 file system at byte offset {offset}",
            hint="the release's image layout differs from the pin: list its partitions "
            "(sfdisk -d) and correct the offset in spec/versions.py",
        )


def read_ext4_file(image: Path, offset: int, path: str, out: Path, where: str) -> None:
    """`path` (absolute, inside the ext4 file system at `offset` of `image`) written to `out`."""
    stat = run(["debugfs", "-R", f"stat {path}", f"{image}?offset={offset}"])
    if "Type: regular" not in stat:
        kind = "not found" if "Type:" not in stat else "not a regular file"
        raise ImageError(
            f"{where}: {path} is {kind} in {image.name}",
            hint="list the image's files (debugfs -R 'ls -l DIR' 'IMAGE?offset=N') and name a "
            "regular file",
        )
    run(["debugfs", "-R", f"dump -p {path} {out}", f"{image}?offset={offset}"])
    if not out.is_file():
        raise ImageError(f"{where}: debugfs did not write {path} out of {image.name}")


def install_release(
    items: Sequence[ReleasePayload], root: Path, *, offline: bool = False
) -> list[dict[str, str]]:
    """Copy each [[payload.release]] file into the root, keeping its mode from the image; what
    was placed, with sha256 and the archive it came from."""
    placed = []
    for i, item in enumerate(items):
        where = f"payload.release[{i}]"
        pin = item.image
        image = release_image(item, offline=offline)
        check_ext4(image, pin.ext4_offset, where)
        with tempfile.TemporaryDirectory(prefix="coco-release-") as scratch:
            for source, dest in item.files:
                out = Path(scratch) / hashlib.sha256(source.encode()).hexdigest()
                read_ext4_file(image, pin.ext4_offset, source, out, f'{where}.files."{source}"')
                data = out.read_bytes()
                target = payload_target(root, dest)
                target.write_bytes(data)
                target.chmod(out.stat().st_mode & 0o7777)
                placed.append(
                    {
                        "dest": dest,
                        "source": f"{pin.artifact.filename}#sha256:{pin.artifact.sha256}"
                        f":{pin.member}:{source}",
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
    return placed
