"""What a recipe's build would download, fetched ahead of it (`coco fetch STACK`), into the very
caches the build reads, so the build (during `pulumi up`) then finds everything on this machine.

Per payload source of the recipe, in recipe order:
- [[payload.release]]: the pinned archive through images.release.fetch (locked, atomic, its
  sha256 and size checked), the path images.payload.release_image reads;
- [[payload.go]]: `go mod download -json` in tools/go/GROUP with the environment tools/build.py
  builds with (GOWORK=off over the caller's environment: GOPROXY, GOMODCACHE, GOFLAGS as set),
  so the build's `go build` finds every module go.sum pins in the module cache;
- [[payload.files]] fetched by URL: images.rootfs.fetch (sha256 checked, `<cache>/downloads`);
- [[payload.oci]]: the pinned manifest and layer blob (images.oci.pull_layer, digests checked),
  tags resolved through the recipe's lock file as the build does (images.lock.locked).

Non-goals: the Debian packages mmdebstrap installs (the build fetches them from the recipe's
mirror; apt has its own cache and proxies for that) and building anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import release
from .errors import CommandFailed, DownloadError, RecipeError
from .recipe import GoPayload, OciPayload, PayloadFile, Recipe, ReleasePayload

# (line) -> None: progress for stderr
Say = Callable[[str], None]


@dataclass(frozen=True)
class Fetched:
    """One payload source of the recipe, now in the cache."""

    key: str  # the recipe key it comes from, e.g. payload.release[0]
    what: str
    size: int  # bytes in the cache for it
    cached: bool  # everything was there already: nothing was downloaded

    def summary(self) -> str:
        state = "cached" if self.cached else "downloaded"
        return f"{self.key}: {self.what}, {human_size(self.size)}, {state}"


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def recipe_sources(recipe: Recipe, say: Say) -> list[Fetched]:
    """Fetch every payload source the build of `recipe` downloads; what each one is, in recipe
    order. Raises DownloadError (unreachable, or other bytes than pinned), ToolMissing (no `go`)
    or RecipeError (a tag without a lock entry) naming the item."""
    from . import lock
    from .build import check_oci_pins

    check_oci_pins(recipe)  # a pin without its digest stops here, as the build would
    recipe = lock.locked(recipe)  # tags build what the lock says, as in build_image
    if recipe.go:
        from .payload import check_go, go_group_dir

        for item in recipe.go:
            go_group_dir(item.group)
        check_go()  # before anything is downloaded
    done: list[Fetched] = []
    for i, rel in enumerate(recipe.release):
        done.append(fetch_release(rel, f"payload.release[{i}]", say))
    for i, go in enumerate(recipe.go):
        done.append(fetch_go(go, f"payload.go[{i}]", say))
    for i, url_file in enumerate(recipe.payload):
        if url_file.is_url:
            done.append(fetch_url(url_file, f"payload.files[{i}]", say))
    if recipe.oci:
        from .oci import Client

        client = Client()
        for i, oci_item in enumerate(recipe.oci):
            done.append(fetch_oci(oci_item, f"payload.oci[{i}]", say, client))
    return done


class _Percent:
    """Download progress every 10 percent (the kata-static archive is 1.9 GB)."""

    def __init__(self, say: Say) -> None:
        self.say, self.last = say, 0

    def __call__(self, what: str, done: int, total: int | None) -> None:
        step = done * 10 // total if total else 0
        if step > self.last:
            self.last = step
            self.say(f"{what}: {step * 10}% of {human_size(total or 0)}")


def fetch_release(item: ReleasePayload, key: str, say: Say) -> Fetched:
    """The pinned archive in the release cache. A build that finds the member it reads already
    extracted (and checked against the index) downloads nothing: neither does this."""
    artifact = item.image.artifact
    what = f"{item.pin} {artifact.filename}"
    path = release.cached_path(artifact)
    try:
        release.fetch(artifact, offline=True)
        return Fetched(key, what, path.stat().st_size, True)
    except release.NotFetched:
        pass
    try:  # no archive: offline, members() reads only what was extracted earlier
        extracted = release.members(artifact, [item.image.member], offline=True)
        member = extracted[item.image.member]
        return Fetched(key, f"{what} (member extracted earlier)", member.stat().st_size, True)
    except release.NotFetched:
        pass
    say(f"{key}: downloading {artifact.url} (sha256 {artifact.sha256})")
    release.fetch(artifact, progress=_Percent(say))
    return Fetched(key, what, path.stat().st_size, False)


def fetch_url(item: PayloadFile, key: str, say: Say) -> Fetched:
    from .cache import cache_dir
    from .rootfs import fetch

    target = cache_dir() / "downloads" / item.sha256
    before = identity(target)
    say(f"{key}: {item.source}")
    path = fetch(item.source, item.sha256)
    # rootfs.fetch replaces a cached copy whose sha256 changed: only an untouched one was cached
    cached = before is not None and before == identity(path)
    return Fetched(key, f"{item.source} -> {item.dest}", path.stat().st_size, cached)


def identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of `path`, None when absent: a file replaced in the cache changes it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def fetch_oci(item: OciPayload, key: str, say: Say, client: Any) -> Fetched:
    from .cache import cache_dir
    from .oci import Reference, pull_layer

    ref = Reference.parse(item.image)
    if not ref.digest:  # lock.locked and check_oci_pins leave none: a bug if so
        raise RecipeError(f"{key}.image: {item.image!r} is not pinned by digest")
    directory = cache_dir() / "oci" / "sha256"
    before = set(os.listdir(directory)) if directory.is_dir() else set()
    say(f"{key}: {item.image}")
    layer, blob = pull_layer(client, ref, item.layer, item.platform)
    wanted = {ref.digest, layer.manifest_digest, layer.digest}
    cached = {d.removeprefix("sha256:") for d in wanted} <= before
    return Fetched(key, f"{item.image} layer {layer.digest}", blob.stat().st_size, cached)


def go_environment() -> dict[str, str]:
    """The environment tools/build.py runs `go` with (its _go_environ): the caller's, GOWORK
    off."""
    from .payload import _tools_build

    env: dict[str, str] = _tools_build()._go_environ({})
    return env


def _go_download(directory: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """`go mod download -json` in `directory`: one JSON object per module (concatenated)."""
    from .run import run

    out = run(["go", "mod", "download", "-json"], cwd=directory, env=env)
    decoder, at = json.JSONDecoder(), 0
    modules: list[dict[str, Any]] = []
    while True:
        while at < len(out) and out[at].isspace():
            at += 1
        if at >= len(out):
            return modules
        module, at = decoder.raw_decode(out, at)
        modules.append(module)


def fetch_go(item: GoPayload, key: str, say: Say) -> Fetched:
    """The modules of the group's build list in the Go module cache. First asked with
    GOPROXY=off (is everything there?), then with the build's own proxy settings."""
    from .payload import go_group_dir

    directory = go_group_dir(item.group)
    env = go_environment()
    try:
        modules = _go_download(directory, {**env, "GOPROXY": "off"})
        cached = True
    except CommandFailed:
        cached = False
        say(f"{key}: go mod download in {directory} (GOPROXY={env.get('GOPROXY', 'default')})")
        try:
            modules = _go_download(directory, env)
        except CommandFailed as exc:
            raise DownloadError(
                f"{key}: `go mod download` of Go group {item.group} failed: "
                f"{_last_lines(exc.output)}",
                hint="check the network and GOPROXY (the module proxy must serve every module "
                "go.sum names); the checksums in go.sum are checked all the same",
            ) from exc
    failed = [m for m in modules if m.get("Error")]
    if failed:
        raise DownloadError(
            f"{key}: Go group {item.group}: {failed[0]['Path']}@{failed[0].get('Version', '')}: "
            f"{failed[0]['Error']}",
            hint="check the network and GOPROXY; the checksums in go.sum are checked all the same",
        )
    size = sum(Path(m["Zip"]).stat().st_size for m in modules if m.get("Zip"))
    what = f"Go group {item.group}, {len(modules)} modules"
    return Fetched(key, what, size, cached)


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "(no output)"
