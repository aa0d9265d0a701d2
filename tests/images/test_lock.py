"""`coco image lock`: recipe entries that follow a registry tag, resolved to digests against a
real registry (Debian's docker-registry on loopback with token auth, artifacts pushed by skopeo;
tests/images/oci_registry.py), and the build's refusal to go without the lock. About 10
seconds; needs docker-registry and skopeo (skipped with the apt-get line without them, a failure
in CI where COCO_REQUIRE_IMAGE_TESTS=1)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli import image as cli
from images import build, lock, oci, recipe
from images.errors import DownloadError, RecipeError
from spec.validate import validate

from .oci_registry import Registry, require_registry_tools, running_registry, write_layout

EPOCH = 1795737600
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o755, EPOCH - 1
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Site:
    registry: Registry
    work: Path
    pushes: int = 0

    def push(self, repository: str, tag: str, data: bytes) -> str:
        """Push an oras-style artifact holding `agent` with `data` under `tag`; its digest."""
        self.pushes += 1
        layout = self.work / f"layout-{self.pushes}"
        layer = (_tar("agent", data), LAYER_TAR, "agent.tar")
        digest = write_layout(layout, tag, [layer], artifact=True)
        self.registry.push(layout, repository, tag)
        return digest


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_registry_tools()
    work = tmp_path_factory.mktemp("lock-registry")
    with running_registry(work) as registry:
        yield Site(registry, work)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _recipe(directory: Path, *images: str, name: str = "follow") -> Path:
    """A recipe whose [[payload.oci]] entries are `images` (each mapping `agent`)."""
    body = f'name = "{name}"\n'
    for i, image in enumerate(images):
        body += f'[[payload.oci]]\nimage = "{image}"\nfiles = {{ "agent" = "/opt/{i}/agent" }}\n'
    path = directory / f"{name}.toml"
    path.write_text(body)
    return path


def _lock(path: Path, *flags: str) -> int:
    return cli.main(["image", "lock", str(path), *flags])


def _install(path: Path, root: Path) -> bytes:
    """What the build's payload step places from the locked recipe: /opt/0/agent."""
    locked = lock.locked(recipe.load(str(path)))
    root.mkdir(parents=True, exist_ok=True)
    oci.install(locked.oci, root, EPOCH)
    return (root / "opt/0/agent").read_bytes()


class TestLockFile:
    """The lock names each followed tag's manifest digest with its provenance, sorted, and is
    byte-identical when nothing moved."""

    def test_lock_resolves_and_records_provenance(self, site: Site, tmp_path: Path, capsys):
        one = site.push("follow/one", "stable", b"one v1")
        two = site.push("follow/two", "v2", b"two v2")
        host = site.registry.host
        pinned = f"{host}/follow/one:stable@{one}"
        # written in reverse order, plus one entry pinned by digest (nothing to lock)
        path = _recipe(tmp_path, f"{host}/follow/two:v2", f"{host}/follow/one:stable", pinned)
        before = len(site.registry.tokens.requests)
        assert _lock(path) == 0
        assert len(site.registry.tokens.requests) > before  # the anonymous token flow ran
        text = (tmp_path / "follow.lock.json").read_text()
        data = json.loads(text)
        assert data["schema"] == lock.SCHEMA and data["recipe"] == "follow"
        assert data["images"] == [
            {"image": f"{host}/follow/one:stable", "registry": host, "repository": "follow/one",
             "tag": "stable", "digest": one, "mediaType": OCI_MANIFEST},
            {"image": f"{host}/follow/two:v2", "registry": host, "repository": "follow/two",
             "tag": "v2", "digest": two, "mediaType": OCI_MANIFEST},
        ]
        assert f"{host}/follow/one:stable@{one}" in capsys.readouterr().out
        assert _lock(path) == 0
        assert (tmp_path / "follow.lock.json").read_text() == text  # deterministic
        assert _lock(path, "--check") == 0

    def test_digest_is_sha256_of_served_manifest(self, site: Site, tmp_path: Path):
        digest = site.push("follow/hash", "t", b"hash")
        path = _recipe(tmp_path, f"{site.registry.host}/follow/hash:t")
        (entry,) = lock.resolve(recipe.load(str(path)))
        stored = next(p for p in site.registry.storage.rglob("data")
                      if p.parent.name == digest.removeprefix("sha256:"))
        assert entry.digest == "sha256:" + hashlib.sha256(stored.read_bytes()).hexdigest()

    def test_recipe_without_tags_writes_no_lock(self, site: Site, tmp_path: Path, capsys):
        digest = site.push("follow/none", "t", b"none")
        path = _recipe(tmp_path, f"{site.registry.host}/follow/none:t@{digest}")
        (tmp_path / "follow.lock.json").write_text("{}")  # stale: removed
        assert _lock(path) == 0
        assert not (tmp_path / "follow.lock.json").exists()
        assert "follows no tag" in capsys.readouterr().out

    def test_unknown_tag_fails_without_writing(self, site: Site, tmp_path: Path, capsys):
        path = _recipe(tmp_path, f"{site.registry.host}/follow/absent:nope")
        assert _lock(path) == 2  # the registry answered: the recipe's tag is wrong (not exit 3)
        assert "HTTP 404" in capsys.readouterr().err
        assert not (tmp_path / "follow.lock.json").exists()


class TestBuildFollowsTheLock:
    """The build pulls the locked digest only: a moved tag changes nothing until a re-lock, and
    the registry serving other bytes for the locked digest is refused."""

    def test_moved_tag_needs_a_relock(self, site: Site, tmp_path: Path, capsys):
        host = site.registry.host
        site.push("follow/moving", "latest", b"agent v1")
        path = _recipe(tmp_path, f"{host}/follow/moving:latest")
        assert _lock(path) == 0
        hash_v1 = recipe.load(str(path)).content_hash()
        assert _install(path, tmp_path / "a") == b"agent v1"
        v2 = site.push("follow/moving", "latest", b"agent v2")  # upstream moves the tag
        assert _install(path, tmp_path / "b") == b"agent v1"  # still what the lock says
        capsys.readouterr()
        assert _lock(path, "--check") == 1
        err = capsys.readouterr().err
        assert f"{host}/follow/moving:latest moved" in err and "coco image lock" in err
        assert _lock(path) == 0
        assert json.loads((tmp_path / "follow.lock.json").read_text())["images"][0]["digest"] == v2
        assert _install(path, tmp_path / "c") == b"agent v2"
        assert recipe.load(str(path)).content_hash() != hash_v1  # a re-lock is a rebuild

    def test_registry_serving_other_bytes_is_refused(self, site: Site, tmp_path: Path):
        site.push("follow/tamper", "t", b"genuine")
        path = _recipe(tmp_path, f"{site.registry.host}/follow/tamper:t")
        assert _lock(path) == 0
        # the lock now names another manifest than the registry will serve under that digest:
        # swap in the digest of a different artifact of the same repository
        other = site.push("follow/tamper", "other", b"other")
        lock_file = tmp_path / "follow.lock.json"
        data = json.loads(lock_file.read_text())
        genuine = data["images"][0]["digest"]
        stored = next(p for p in site.registry.storage.rglob("data")
                      if p.parent.name == genuine.removeprefix("sha256:"))
        original = stored.read_bytes()
        stored.write_bytes(original.replace(b"artifact.v1", b"artifact.v2"))
        try:
            with pytest.raises(DownloadError) as info:
                _install(path, tmp_path / "root")
        finally:
            stored.write_bytes(original)
        assert f"expected {genuine}" in str(info.value)
        data["images"][0]["digest"] = other
        lock_file.write_text(json.dumps(data))
        assert _install(path, tmp_path / "other") == b"other"  # pulls exactly the locked digest


class TestBuildRequiresTheLock:
    """A tag without a lock entry, or a lock the recipe no longer matches, stops the build
    before anything is built, naming the recipe key and `coco image lock RECIPE`."""

    IMAGE = "registry.example:5000/team/agent:stable"

    def test_no_lock_file(self, tmp_path: Path):
        path = _recipe(tmp_path, f"ghcr.io/a/b@sha256:{'a' * 64}", self.IMAGE)
        with pytest.raises(RecipeError) as info:
            lock.locked(recipe.load(str(path)))
        assert str(info.value).startswith(f"payload.oci[1].image: {self.IMAGE!r} follows a tag")
        assert f"coco image lock {path}" in info.value.hint

    def test_payload_step_never_resolves_a_tag(self, tmp_path: Path):
        path = _recipe(tmp_path, self.IMAGE)
        with pytest.raises(RecipeError, match=r"payload\.oci\[0\]\.image: .* not pinned"):
            oci.install(recipe.load(str(path)).oci, tmp_path / "root", EPOCH)

    def test_build_stops_before_it_starts(self, tmp_path: Path):
        path = _recipe(tmp_path, self.IMAGE)
        with pytest.raises(RecipeError, match=r"payload\.oci\[0\]\.image"):
            build.build_image(recipe.load(str(path)), tmp_path / "out", quiet=True)
        assert not (tmp_path / "out").exists()

    def _write_lock(self, path: Path, image: str) -> None:
        spec = recipe.load(str(path))
        ref = oci.Reference.parse(image)
        entry = lock.Entry(image, ref.registry, ref.repository, ref.tag, "sha256:" + "b" * 64,
                           OCI_MANIFEST)
        lock.write(spec, [entry])

    def test_locked_entry_gets_the_digest(self, tmp_path: Path):
        path = _recipe(tmp_path, self.IMAGE)
        self._write_lock(path, self.IMAGE)
        (item,) = lock.locked(recipe.load(str(path))).oci
        assert item.digest == "sha256:" + "b" * 64
        assert item.image == f"{self.IMAGE}@sha256:{'b' * 64}"

    def test_tag_changed_in_the_recipe(self, tmp_path: Path):
        path = _recipe(tmp_path, self.IMAGE)
        self._write_lock(path, self.IMAGE)
        _recipe(tmp_path, self.IMAGE.replace(":stable", ":next"))
        with pytest.raises(RecipeError) as info:
            lock.locked(recipe.load(str(path)))
        assert str(info.value).startswith("payload.oci[0].image: ")
        assert "no entry for it in follow.lock.json" in str(info.value)
        assert "coco image lock" in info.value.hint

    def test_entry_removed_from_the_recipe(self, tmp_path: Path):
        path = _recipe(tmp_path, self.IMAGE)
        self._write_lock(path, self.IMAGE)
        _recipe(tmp_path, f"ghcr.io/a/b@sha256:{'a' * 64}")
        with pytest.raises(RecipeError) as info:
            lock.locked(recipe.load(str(path)))
        assert str(info.value).startswith(f"follow.lock.json: images: {self.IMAGE!r} is locked")
        assert "coco image lock" in info.value.hint

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda d: d.update(schema="v0"), "schema is not"),
            (lambda d: d["images"][0].update(digest="sha256:abc"), "images[0].digest"),
            (lambda d: d["images"][0].update(tag="other"), "do not spell image"),
            (lambda d: d["images"][0].pop("mediaType"), "expected the strings"),
        ],
    )
    def test_hand_edited_lock_refused(self, tmp_path: Path, edit, message: str):
        path = _recipe(tmp_path, self.IMAGE)
        self._write_lock(path, self.IMAGE)
        data = json.loads((tmp_path / "follow.lock.json").read_text())
        edit(data)
        (tmp_path / "follow.lock.json").write_text(json.dumps(data))
        with pytest.raises(RecipeError, match=message.replace("[", r"\[")):
            lock.locked(recipe.load(str(path)))

    def test_lock_is_part_of_the_content_hash(self, tmp_path: Path):
        path = _recipe(tmp_path, self.IMAGE)
        self._write_lock(path, self.IMAGE)
        first = recipe.load(str(path)).content_hash()
        data = json.loads((tmp_path / "follow.lock.json").read_text())
        data["images"][0]["digest"] = "sha256:" + "c" * 64
        (tmp_path / "follow.lock.json").write_text(json.dumps(data))
        assert recipe.load(str(path)).content_hash() != first

    def test_reference_needs_a_tag_or_digest(self, tmp_path: Path):
        path = _recipe(tmp_path, "registry.example/team/agent")
        with pytest.raises(RecipeError) as info:
            recipe.load(str(path))
        assert str(info.value).startswith("payload.oci[0].image: ")
        assert "coco image lock" in info.value.hint


class TestCheckWarns:
    """`coco check` says the build will stop exactly when the build would (one function)."""

    def _issues(self, path: Path) -> list:
        _, warnings = validate({"coco:image": {"recipe": str(path)}}, stack="t")
        return [w for w in warnings if w.path == "coco:image.recipe"]

    def test_missing_lock_warns_with_the_key(self, tmp_path: Path):
        path = _recipe(tmp_path, TestBuildRequiresTheLock.IMAGE)
        (issue,) = self._issues(path)
        assert issue.severity == "warning"
        assert "will stop" in issue.message and "payload.oci[0].image" in issue.message
        assert "coco image lock" in issue.hint

    def test_locked_recipe_is_quiet(self, tmp_path: Path):
        path = _recipe(tmp_path, TestBuildRequiresTheLock.IMAGE)
        TestBuildRequiresTheLock()._write_lock(path, TestBuildRequiresTheLock.IMAGE)
        assert self._issues(path) == []


def test_help_names_the_lock_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["image", "lock", "--help"])
    out = capsys.readouterr().out
    assert "lock.json" in out and "--check" in out
