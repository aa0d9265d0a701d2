"""Release files pinned by URL and sha256: fetched once into the image cache, checked, and
opened for a few named members.

Scope: one HTTP(S) download per pinned file (spec.versions.ReleaseArtifact; `download` is
also how images.rootfs fetches a recipe's URL payloads), streamed to
`<cache>/release/sha256/<hex>` and renamed into place only when its sha256 (and size, when
pinned) match, so a cache entry is always a verified file. `members` then reads named members out
of such a tar archive (plain, gzip, xz or zstd), following symbolic and hard links inside the
archive (release tarballs name their kernels through links such as kata's vmlinuz.container), and
keeps them under `<cache>/release/<hex>/files/` with an index of their sha256. A later call that
asks for members already extracted reads only those small files, each checked against the index;
anything else re-reads the archive, whose sha256 is checked again on that same pass (all of it,
the bytes after tar's end marker included). One process at a time downloads or extracts a given
release (a lock file next to it): two previews started together download it once.

Non-goals: resuming interrupted downloads, signatures (the pinned sha256 is the trust anchor),
archives other than tar, and extracting into a root file system (images.oci does that for OCI
layers).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import requests
import zstandard

from spec.errors import ExitCode
from spec.versions import ReleaseArtifact

from .cache import cache_dir, sha256_file
from .errors import DownloadError, ImageError

# (what, bytes done, bytes in all or None); called about every MiB
Progress = Callable[[str, int, "int | None"], None]
_CHUNK = 1 << 20
_MAX_LINKS = 40  # as the kernel's symlink limit


def cached_path(artifact: ReleaseArtifact) -> Path:
    return cache_dir() / "release" / "sha256" / artifact.sha256


class NotFetched(ImageError):
    """Offline (`coco check`, `coco render`, `pulumi preview`): the pinned file is not in the
    cache, and only `pulumi up` or `coco fetch` download it. Says what would be fetched."""

    exit_code = ExitCode.INVALID  # the user's next step: `coco fetch STACK`

    def __init__(self, artifact: ReleaseArtifact, url: str | None = None) -> None:
        size = f"{artifact.size / 1e9:.1f} GB, " if artifact.size else ""
        super().__init__(
            f"{artifact.filename} ({size}sha256 {artifact.sha256}) is not in the image cache "
            f"({cached_path(artifact).parent}); nothing is downloaded here",
            hint=f"`pulumi up`, or `coco fetch STACK` beforehand, downloads it from "
            f"{url or artifact.url}, checks that sha256 and keeps it in the cache",
        )
        self.artifact = artifact
        self.url = url or artifact.url


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """One process at a time behind `lock_path` (two previews at once would otherwise download
    1.9 GB twice); the others wait, then find the work done."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fetch(
    artifact: ReleaseArtifact,
    url: str | None = None,
    *,
    session: requests.Session | None = None,
    progress: Progress | None = None,
    timeout: float = 300.0,
    offline: bool = False,
) -> Path:
    """The verified file in the cache, downloaded from `url` (default: the pinned URL, e.g. an
    internal mirror instead) on a miss. Raises DownloadError naming what did not match; with
    `offline`, NotFetched on a miss instead of downloading."""
    if offline:
        target = cached_path(artifact)
        if target.is_file() and (artifact.size is None or target.stat().st_size == artifact.size):
            return target
        raise NotFetched(artifact, url)
    return download(
        url or artifact.url,
        artifact.sha256,
        cached_path(artifact),
        size=artifact.size,
        what=artifact.filename,
        session=session,
        progress=progress,
        timeout=timeout,
    )


def download(
    url: str,
    sha256: str,
    target: Path,
    *,
    size: int | None = None,
    what: str = "",
    session: requests.Session | None = None,
    progress: Progress | None = None,
    timeout: float = 300.0,
) -> Path:
    """`url` streamed to `target` and renamed into place only when its sha256 (and `size`, when
    given) match, under a lock next to it; an existing `target` of the right size is taken as
    is (it got there only through this check). Raises DownloadError naming what did not match."""
    what = what or url
    with _locked(target.parent / f".{target.name}.lock"):
        if target.is_file() and (size is None or target.stat().st_size == size):
            return target
        # one name, under the lock: a download killed half-way is overwritten by the next one
        partial = target.parent / f".{target.name}.partial"
        try:
            _stream(url, sha256, partial, size, what, session, progress, timeout)
            partial.replace(target)  # atomic: never a truncated or unverified cache entry
        finally:
            partial.unlink(missing_ok=True)
    return target


def _stream(
    source: str,
    sha256: str,
    partial: Path,
    size: int | None,
    what: str,
    session: requests.Session | None,
    progress: Progress | None,
    timeout: float,
) -> None:
    hasher, done = hashlib.sha256(), 0
    http = session or requests.Session()
    try:
        response = http.get(source, stream=True, timeout=(30.0, timeout))
    except requests.RequestException as exc:
        raise DownloadError(
            f"{what}: cannot reach {source}: {exc}",
            hint="check the network, or fetch it elsewhere and point the mirror URL at a "
            "copy (its sha256 is checked all the same)",
        ) from exc
    try:
        with response, partial.open("wb") as out:
            if response.status_code != 200:
                raise DownloadError(
                    f"{what}: {source} answered HTTP {response.status_code}",
                    hint="check the URL; a mirror must serve the file under that exact address",
                )
            announced = response.headers.get("Content-Length")
            if size is not None and announced and int(announced) != size:
                raise DownloadError(
                    f"{what}: {source} serves {announced} bytes, the pin says {size}",
                    hint="the server has another file under that name; use the pinned release",
                )
            for chunk in response.iter_content(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if size is not None and done > size:
                    raise DownloadError(
                        f"{what}: {source} sent more than the pinned {size} bytes",
                        hint="the server has another file under that name",
                    )
                if progress:
                    progress(f"download {what}", done, size)
    except (requests.RequestException, OSError) as exc:
        raise DownloadError(
            f"{what}: the download from {source} failed after {done} bytes: {exc}",
            hint="run again (nothing partial is kept), or use a nearby mirror; check the free "
            f"space under {partial.parent}",
        ) from exc
    actual = hasher.hexdigest()
    if actual != sha256:
        raise DownloadError(
            f"{what}: {source} has sha256 {actual} ({done} bytes), the pin is {sha256}",
            hint="the server sent other bytes than the pinned file: it was tampered with or "
            "replaced, or the pin is wrong",
        )


class _Reader:
    """A read-only stream over a file that hashes what passes through and reports progress."""

    def __init__(self, raw: IO[bytes], hasher: Any, progress: Progress | None, what: str) -> None:
        self.raw, self.hasher, self.progress, self.what = raw, hasher, progress, what
        self.done, self.total = 0, os.fstat(raw.fileno()).st_size

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if self.hasher is not None:
            self.hasher.update(data)
        self.done += len(data)
        if self.progress and data:
            self.progress(self.what, self.done, self.total)
        return data


@contextmanager
def _tar(
    path: Path, hasher: Any = None, progress: Progress | None = None, what: str = ""
) -> Iterator[tarfile.TarFile]:
    """The archive as a tar stream (plain, gzip, xz or zstd), every byte read through `hasher`."""
    with path.open("rb") as raw:
        zstd = raw.read(4) == b"\x28\xb5\x2f\xfd"
        raw.seek(0)
        stream = cast(IO[bytes], _Reader(raw, hasher, progress, what))
        if zstd:
            with (
                zstandard.ZstdDecompressor().stream_reader(stream) as decompressed,
                tarfile.open(fileobj=decompressed, mode="r|") as archive,
            ):
                yield archive
        else:
            with tarfile.open(fileobj=stream, mode="r|*") as archive:
                yield archive
        if hasher is not None:
            while stream.read(_CHUNK):  # tar stops at its end marker: hash the rest too
                pass


def _name(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _resolve(name: str, links: dict[str, tuple[str, bool]], regular: set[str]) -> str:
    """The regular file `name` leads to through the archive's links."""
    current = _name(name)
    for _ in range(_MAX_LINKS):
        if current in regular:
            return current
        if current not in links:
            raise ImageError(f"{name!r} is not a file in the archive")
        target, symbolic = links[current]
        if not symbolic or target.startswith("/"):
            # a hard link names an archive member; an absolute symlink the installed path, and
            # the archive's root is /
            current = _name(target)
        else:
            current = _name(posixpath.join(posixpath.dirname(current), target))
    raise ImageError(f"{name!r}: more than {_MAX_LINKS} links in a row in the archive")


def _index(base: Path) -> dict[str, dict[str, str]]:
    try:
        index: dict[str, dict[str, str]] = json.loads((base / "index.json").read_text())
    except (OSError, ValueError):
        return {}  # none yet, or damaged: extract again
    return index


def _cached(base: Path, wanted: dict[str, str]) -> dict[str, Path] | None:
    """The wanted members from earlier extractions, each checked; None if any is missing."""
    index, found = _index(base), {}
    for name, normal in wanted.items():
        entry = index.get(normal)
        path = base / "files" / entry["target"] if entry else None
        if not (entry and path and path.is_file() and sha256_file(path) == entry["sha256"]):
            return None
        found[name] = path
    return found


def members(
    artifact: ReleaseArtifact,
    names: Sequence[str],
    url: str | None = None,
    *,
    session: requests.Session | None = None,
    progress: Progress | None = None,
    offline: bool = False,
) -> dict[str, Path]:
    """Each named member (links followed) as a verified file in the cache, by name. With
    `offline`, only what the cache holds is read (members extracted earlier, or the cached
    archive); a missing archive raises NotFetched instead of being downloaded."""
    base = cache_dir() / "release" / artifact.sha256
    wanted = {name: _name(name) for name in names}
    found = _cached(base, wanted)
    if found is not None:
        return found
    if offline:
        fetch(artifact, url, offline=True)  # NotFetched unless the archive is cached
    with _locked(cache_dir() / "release" / f"{artifact.sha256}.lock"):
        found = _cached(base, wanted)  # another process may have extracted them meanwhile
        if found is not None:
            return found
        try:
            _extract(artifact, base, wanted, url, session, progress, offline)
        except OSError as exc:
            raise ImageError(
                f"{artifact.filename}: cannot extract into {base}: {exc}",
                hint="check the free space and permissions of the image cache "
                "($COCO_IMAGE_CACHE)",
            ) from exc
    index = _index(base)
    return {name: base / "files" / index[normal]["target"] for name, normal in wanted.items()}


def _extract(
    artifact: ReleaseArtifact,
    base: Path,
    wanted: dict[str, str],
    url: str | None,
    session: requests.Session | None,
    progress: Progress | None,
    offline: bool = False,
) -> None:
    """Read the archive once for its links (checking its sha256), then extract the targets."""
    archive_path = fetch(artifact, url, session=session, progress=progress, offline=offline)
    links: dict[str, tuple[str, bool]] = {}
    regular: set[str] = set()
    hasher = hashlib.sha256()
    unreadable: Exception | None = None
    try:
        with _tar(archive_path, hasher, progress, f"read {artifact.filename}") as archive:
            for member in archive:
                if member.issym() or member.islnk():
                    links[_name(member.name)] = (member.linkname, member.issym())
                elif member.isfile():
                    regular.add(_name(member.name))
        digest = hasher.hexdigest()
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError, ValueError) as exc:
        unreadable, digest = exc, sha256_file(archive_path)  # changed bytes, or a bad archive?
    if digest != artifact.sha256:
        archive_path.unlink(missing_ok=True)
        raise DownloadError(
            f"{artifact.filename}: the cached copy no longer has the pinned sha256",
            hint="it was removed from the cache; run again to download it afresh",
        )
    if unreadable is not None:
        raise ImageError(
            f"{artifact.filename} (sha256 as pinned) is not a readable tar archive: "
            f"{unreadable}",
            hint="the pin names a file that is not a tar archive; check the pinned URL",
        )
    targets: dict[str, str] = {}
    for normal in sorted(set(wanted.values())):
        try:
            targets[normal] = _resolve(normal, links, regular)
        except ImageError as exc:
            raise ImageError(
                f"{artifact.filename}: {exc}",
                hint="list the archive (tar -tf) and use a member path from it",
            ) from exc
    found: dict[str, str] = {}
    (base / "files").mkdir(parents=True, exist_ok=True)
    with _tar(archive_path, None, progress, f"extract {artifact.filename}") as archive:
        for member in archive:
            name = _name(member.name)
            if not member.isfile() or name not in targets.values() or name in found:
                continue
            out = base / "files" / name
            out.parent.mkdir(parents=True, exist_ok=True)
            partial = out.parent / f".{out.name}.partial"
            source = archive.extractfile(member)
            assert source is not None  # a regular file always has data
            member_hash = hashlib.sha256()
            try:
                with source, partial.open("wb") as handle:
                    while chunk := source.read(_CHUNK):
                        member_hash.update(chunk)
                        handle.write(chunk)
                partial.replace(out)
            finally:
                partial.unlink(missing_ok=True)
            found[name] = member_hash.hexdigest()
            if len(found) == len(set(targets.values())):
                break  # the rest of the archive is not needed
    index = _index(base)
    for normal, target in sorted(targets.items()):
        index[normal] = {"target": target, "sha256": found[target]}
    partial_index = base / ".index.json.partial"
    partial_index.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    partial_index.replace(base / "index.json")
