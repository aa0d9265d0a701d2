"""The Debian stages: the root file system and the boot tree (kernel + initramfs packages), both
made by mmdebstrap from the recipe's mirror and kept in a content-addressed cache.

Cache key = sha256 of every input that changes the bytes: the mmdebstrap arguments, the
SOURCE_DATE_EPOCH, the mmdebstrap version and the mirror state (sha256 of each suite's InRelease:
the main suite and its security suite).
mmdebstrap writes reproducible tarballs when SOURCE_DATE_EPOCH is set (mmdebstrap(1), section
"REPRODUCIBILITY"), so a cache hit and a fresh run give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import pins
from .cache import cache_dir
from .errors import DownloadError, ImageError
from .recipe import Recipe, local_source
from .run import run


@dataclass(frozen=True)
class MirrorState:
    url: str
    suite: str
    inrelease_sha256: str


def _inrelease(mirror: str, suite: str) -> MirrorState:
    url = f"{mirror}/dists/{suite}/InRelease"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"cannot read the Debian mirror: {url}: {exc}",
            hint="check distribution.mirror and distribution.security_mirror in the recipe and "
            "the network path to the mirror",
        ) from exc
    return MirrorState(mirror, suite, hashlib.sha256(body).hexdigest())


def mirror_states(recipe: Recipe) -> tuple[MirrorState, ...]:
    """Fetch each apt source's InRelease (a few hundred KiB): their hashes pin the mirrors'
    state, main suite first."""
    return tuple(_inrelease(mirror, suite) for mirror, suite in recipe.sources)


@dataclass(frozen=True)
class Stage:
    """One mmdebstrap run: its options, the suite, and its apt source lines. The output path is
    not part of it, so the cache key is the same wherever the tarball is written."""

    options: tuple[str, ...]
    suite: str
    sources: tuple[str, ...]

    def argv(self, out: Path) -> list[str]:
        return [*self.options, self.suite, str(out), *self.sources]


def _source_lines(recipe: Recipe) -> tuple[str, ...]:
    return tuple(f"deb {mirror} {suite} main" for mirror, suite in recipe.sources)


def rootfs_stage(recipe: Recipe) -> Stage:
    """mmdebstrap for the root file system: the recipe's variant and packages."""
    options = ["mmdebstrap", "--quiet", "--mode=auto", f"--variant={recipe.variant}"]
    if recipe.packages:
        options.append(f"--include={','.join(recipe.packages)}")
    options += [f"--dpkgopt=path-exclude={p}" for p in recipe.path_exclude]
    return Stage(tuple(options), recipe.suite, _source_lines(recipe))


def boot_tree_stage(recipe: Recipe) -> Stage:
    """mmdebstrap --variant=extract: the kernel and initramfs packages unpacked, not installed
    (no maintainer scripts, so no initramfs-tools run)."""
    include = ",".join(sorted({recipe.kernel_package, *pins.INITRD_PACKAGES}))
    options = ("mmdebstrap", "--quiet", "--mode=auto", "--variant=extract", f"--include={include}")
    return Stage(options, recipe.suite, _source_lines(recipe))


def rootfs_argv(recipe: Recipe, out: Path) -> list[str]:
    return rootfs_stage(recipe).argv(out)


def boot_tree_argv(recipe: Recipe, out: Path) -> list[str]:
    return boot_tree_stage(recipe).argv(out)


def stage_key(stage: Stage, states: tuple[MirrorState, ...], epoch: int) -> str:
    version = run(["mmdebstrap", "--version"]).strip()
    material = {
        "argv": [*stage.options, stage.suite],
        "sources": list(stage.sources),
        "mirrors": [[s.url, s.suite, s.inrelease_sha256] for s in states],
        "epoch": epoch,
        "mmdebstrap": version,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def cached_stage(
    name: str, stage: Stage, states: tuple[MirrorState, ...], epoch: int
) -> tuple[Path, bool]:
    """The stage tarball from the cache, building it on a miss. Returns (path, was_cached)."""
    key = stage_key(stage, states, epoch)
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{name}-{key}.tar"
    if final.exists():
        return final, True
    partial = directory / f".{name}-{key}.{os.getpid()}.tar"
    try:
        run(stage.argv(partial))
        partial.replace(final)  # atomic: a crash never leaves a truncated cache entry
    finally:
        partial.unlink(missing_ok=True)
    return final, False


def extract(tarball: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", tarball, "-C", dest])


def fetch(url: str, sha256: str) -> Path:
    """A payload artifact by URL, verified by sha256, kept in the cache under its hash
    (images.release.download: streamed, checked, renamed into place)."""
    from . import release

    target = cache_dir() / "downloads" / sha256
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() != sha256:
        target.unlink()  # changed in the cache: fetch it again
    return release.download(url, sha256, target, what=f"payload {url}")


# Files mmdebstrap copies from the build host (its hostname and resolver), replaced by fixed
# guest values so images do not depend on the machine that built them.
HOST_FILES = {"etc/hostname": "localhost\n", "etc/resolv.conf": ""}


def normalize_host_files(root: Path) -> None:
    for rel, text in HOST_FILES.items():
        path = root / rel
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_text(text)
        path.chmod(0o644)


def payload_directory(root: Path, dest: str) -> Path:
    """The directory `dest` inside `root`, created 0755 with its parents, refusing anything that
    could leave the root: a relative or `..` path, or a path through a symlink (/var/run -> /run
    would write to the build host)."""
    parts = PurePosixPath(dest).parts
    if not dest.startswith("/") or ".." in parts:
        raise ImageError(f"payload destination {dest!r} must be an absolute path inside the "
                         "image, without '..'")
    current = root
    for part in parts[1:]:
        current = current / part
        if current.is_symlink():
            raise ImageError(f"payload destination {dest!r} goes through the symlink "
                             f"/{current.relative_to(root)}", hint="use the link's target path")
        if not current.exists():
            current.mkdir(mode=0o755)
            current.chmod(0o755)  # whatever the umask
        elif not current.is_dir():
            raise ImageError(f"payload destination {dest!r}: /{current.relative_to(root)} "
                             "exists and is not a directory")
    return current


def payload_target(root: Path, dest: str) -> Path:
    """Where a payload file goes inside `root` (parents as payload_directory makes them); an
    existing symlink or non-file there is refused."""
    parts = PurePosixPath(dest).parts
    if len(parts) < 2 or parts[-1] == "..":
        raise ImageError(f"payload destination {dest!r} must be an absolute path inside the "
                         "image, without '..'")
    target = payload_directory(root, str(PurePosixPath(dest).parent)) / parts[-1]
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise ImageError(f"payload destination {dest} exists and is not a regular file")
    return target


def install_payload(recipe: Recipe, root: Path) -> list[dict[str, str]]:
    """Copy payload files into the root; returns what was placed, for measurements.json."""
    placed = []
    for item in recipe.payload:
        source = (
            fetch(item.source, item.sha256)
            if item.is_url
            # checked again at build time: the recipe's folder may have changed since it loaded
            else local_source(recipe.directory, item.source, f"payload file {item.dest}: "
                              "source")
        )
        data = source.read_bytes()
        dest = payload_target(root, item.dest)
        dest.write_bytes(data)
        dest.chmod(item.mode)
        placed.append(
            {"dest": item.dest, "source": item.source, "sha256": hashlib.sha256(data).hexdigest()}
        )
    return placed


def kernel_version(tree: Path) -> str:
    kernels = sorted(p.name[len("vmlinuz-") :] for p in (tree / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise ImageError(f"expected one kernel in the boot tree, found {kernels}")
    return kernels[0]


def kernel_release(vmlinuz: Path) -> str:
    """The version string a bzImage carries (x86 boot protocol: kernel_version at 0x20E points
    to a NUL-terminated string at 0x200 + offset), e.g.
    "6.12.118+deb12-cloud-amd64 (...) Debian ..."."""
    data = vmlinuz.read_bytes()
    (offset,) = struct.unpack_from("<H", data, 0x20E)
    start = 0x200 + offset
    return data[start : data.index(b"\0", start)].decode(errors="replace")


def installed_packages(root: Path) -> list[str]:
    """name=version of every package dpkg installed in the root (sorted), from dpkg's status."""
    status = root / "var/lib/dpkg/status"
    if not status.exists():
        return []
    packages, name = [], ""
    for line in status.read_text().splitlines():
        if line.startswith("Package: "):
            name = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and name:
            packages.append(f"{name}={line.split(': ', 1)[1]}")
    return sorted(packages)
