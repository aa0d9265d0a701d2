"""OCI payloads against a real registry (Debian's docker-registry on loopback with token auth,
images pushed by skopeo): digests verified, members extracted deterministically, the recipe
keys checked. About 10 seconds; needs docker-registry and skopeo (skipped with the apt-get line
without them, a failure in CI where COCO_REQUIRE_IMAGE_TESTS=1)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from cli import image as cli
from images import build, oci, pins, recipe
from images.errors import DownloadError, ImageError, RecipeError
from spec.versions import ImageRef

from .oci_registry import Registry, require_registry_tools, running_registry, write_layout

EPOCH = 1795737600
AGENT = b"\x7fELF pretend kata-agent\n" * 64
AA = b"\x7fELF pretend attestation-agent\n" * 32


def _tar(entries: list[tuple[str, bytes | None, int, int]]) -> bytes:
    """(name, data or None for a directory, mode, mtime) in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, mode, mtime in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid = mode, mtime, 1000, 1000
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# like kata's kata-static-agent.tar.zst: usr/bin/kata-agent among other files; one mtime is
# after the epoch (clamped), one before (kept)
AGENT_TAR = _tar(
    [
        ("./usr", None, 0o755, EPOCH + 999),
        ("./usr/bin", None, 0o755, EPOCH + 999),
        ("./usr/bin/kata-agent", AGENT, 0o4755, EPOCH + 999),
        ("./usr/share/kata/readme", b"docs\n", 0o644, 1000),
    ]
)
AGENT_ZST = zstandard.ZstdCompressor().compress(AGENT_TAR)
# like guest-components' attestation-agent.tar.xz: one file at the top
AA_XZ = lzma.compress(_tar([("attestation-agent", AA, 0o755, EPOCH - 5)]))
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Pushed:
    registry: Registry
    agent: str  # full reference with digest
    aa: str
    image: str  # a two-layer container image (gzip layers)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    require_registry_tools()
    work = tmp_path_factory.mktemp("registry")
    with running_registry(work) as registry:
        agent = write_layout(
            work / "agent", "v1", [(AGENT_ZST, LAYER_TAR, "kata-static-agent.tar.zst")], True
        )
        registry.push(work / "agent", "kata/agent", "v1")
        aa = write_layout(work / "aa", "v1", [(AA_XZ, LAYER_TAR, "attestation-agent.tar.xz")], True)
        registry.push(work / "aa", "gc/attestation-agent", "v1")
        import gzip

        gz = LAYER_TAR + "+gzip"
        layers = [
            (gzip.compress(_tar([("etc/one", b"1\n", 0o644, 0)]), mtime=0), gz, ""),
            (gzip.compress(_tar([("etc/two", b"2\n", 0o600, 0)]), mtime=0), gz, ""),
        ]
        image = write_layout(work / "image", "v1", layers)
        registry.push(work / "image", "coco/image", "v1")
        host = registry.host
        yield Pushed(
            registry,
            f"{host}/kata/agent:v1@{agent}",
            f"{host}/gc/attestation-agent:v1@{aa}",
            f"{host}/coco/image:v1@{image}",
        )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _root(base: Path, name: str) -> Path:
    (base / name).mkdir(parents=True, exist_ok=True)
    return base / name


def _payload(image: str, files: dict[str, str], layer: str = "") -> recipe.OciPayload:
    digest = image.rsplit("@", 1)[1]
    return recipe.OciPayload(image, digest, tuple(sorted(files.items())), layer)


AGENT_FILES = {"usr/bin/kata-agent": "/usr/local/bin/kata-agent"}
AA_FILES = {"attestation-agent": "/usr/local/bin/attestation-agent"}


def _tree(root: Path) -> list[tuple[Any, ...]]:
    """Everything reproducibility cares about, per path."""
    rows = []
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        rows.append((str(path.relative_to(root)), stat.filemode(info.st_mode), info.st_uid,
                     info.st_mtime, content))
    return rows


class TestFetchVerifies:
    """Every blob is checked against its digest; a registry serving other bytes is refused."""

    def test_anonymous_token_flow(self, pushed: Pushed, cache: Path):
        before = len(pushed.registry.tokens.requests)
        oci.install([_payload(pushed.aa, AA_FILES)], _root(cache, "root"), EPOCH)
        asked = pushed.registry.tokens.requests[before:]
        assert asked, "the registry demands a token: the client must have asked the realm"
        assert all(r["authorization"] is None for r in asked)  # anonymous
        assert asked[0]["query"]["scope"] == ["repository:gc/attestation-agent:pull"]

    def test_blobs_cached_under_their_digest(self, pushed: Pushed, cache: Path):
        layers, _ = oci.install([_payload(pushed.agent, AGENT_FILES)], _root(cache, "root"), EPOCH)
        layer = layers[0]["layer"]
        assert layer == "sha256:" + hashlib.sha256(AGENT_ZST).hexdigest()
        stored = cache / "oci" / "sha256" / layer.removeprefix("sha256:")
        assert stored.read_bytes() == AGENT_ZST
        manifest = pushed.agent.rsplit("@sha256:", 1)[1]
        assert (cache / "oci" / "sha256" / manifest).exists()

    def test_tampered_layer_names_the_digest(self, pushed: Pushed, cache: Path):
        layer = "sha256:" + hashlib.sha256(AA_XZ).hexdigest()
        # flip one byte of the blob inside the registry's own storage
        data_file = next(
            p for p in pushed.registry.storage.rglob("data") if p.parent.name == layer[7:]
        )
        original = data_file.read_bytes()
        data_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        try:
            with pytest.raises(DownloadError) as info:
                oci.install([_payload(pushed.aa, AA_FILES)], _root(cache, "root"), EPOCH)
        finally:
            data_file.write_bytes(original)
        assert f"expected {layer}" in str(info.value)
        assert not (cache / "oci" / "sha256" / layer[7:]).exists()
        assert not (_root(cache, "root") / "usr/local/bin/attestation-agent").exists()

    def test_tampered_cache_entry_is_fetched_again(self, pushed: Pushed, cache: Path):
        layer = hashlib.sha256(AA_XZ).hexdigest()
        oci.install([_payload(pushed.aa, AA_FILES)], _root(cache, "a"), EPOCH)
        (cache / "oci" / "sha256" / layer).write_bytes(b"not the layer")
        oci.install([_payload(pushed.aa, AA_FILES)], _root(cache, "b"), EPOCH)
        assert (cache / "oci" / "sha256" / layer).read_bytes() == AA_XZ

    def test_wrong_manifest_digest_refused(self, pushed: Pushed, cache: Path):
        wrong = pushed.aa.rsplit("@", 1)[0] + "@sha256:" + "0" * 64
        with pytest.raises(DownloadError, match=r"manifests/sha256:0{64} answered HTTP 404"):
            oci.install([_payload(wrong, AA_FILES)], _root(cache, "root"), EPOCH)

    def test_resolve_prints_the_digest(self, pushed: Pushed, cache: Path, capsys):
        tagged = pushed.agent.rsplit("@", 1)[0]
        assert cli.main(["image", "resolve", tagged]) == 0
        assert capsys.readouterr().out.strip() == pushed.agent


class TestExtraction:
    """Only the mapped members land in the root, with clamped times, root ownership and no
    setuid bit; two fetch + extract runs give identical trees."""

    def test_members_placed(self, pushed: Pushed, cache: Path):
        root = _root(cache, "root")
        _, placed = oci.install(
            [_payload(pushed.agent, AGENT_FILES), _payload(pushed.aa, AA_FILES)], root, EPOCH
        )
        agent = root / "usr/local/bin/kata-agent"
        assert agent.read_bytes() == AGENT
        assert stat.S_IMODE(agent.stat().st_mode) == 0o755  # 04755 in the archive
        assert agent.stat().st_mtime == EPOCH  # EPOCH + 999 clamped
        aa = root / "usr/local/bin/attestation-agent"
        assert aa.stat().st_mtime == EPOCH - 5  # older than the epoch: kept
        assert not (root / "usr/share").exists()  # not mapped
        assert [p["dest"] for p in placed] == [
            "/usr/local/bin/kata-agent",
            "/usr/local/bin/attestation-agent",
        ]
        assert placed[0]["sha256"] == hashlib.sha256(AGENT).hexdigest()
        if os.geteuid() == 0:
            assert agent.stat().st_uid == 0  # 1000 in the archive

    def test_directory_member_takes_its_subtree(self, pushed: Pushed, cache: Path):
        root = _root(cache, "root")
        oci.install([_payload(pushed.agent, {"usr": "/opt/kata"})], root, EPOCH)
        assert (root / "opt/kata/bin/kata-agent").read_bytes() == AGENT
        assert (root / "opt/kata/share/kata/readme").stat().st_mtime == 1000
        assert (root / "opt/kata").stat().st_mtime == EPOCH

    def test_image_layer_chosen_by_digest(self, pushed: Pushed, cache: Path):
        second = "sha256:" + hashlib.sha256(
            __import__("gzip").compress(_tar([("etc/two", b"2\n", 0o600, 0)]), mtime=0)
        ).hexdigest()
        root = _root(cache, "root")
        oci.install([_payload(pushed.image, {".": "/"}, layer=second)], root, EPOCH)
        assert (root / "etc/two").read_bytes() == b"2\n"
        assert not (root / "etc/one").exists()

    def test_several_layers_need_a_choice(self, pushed: Pushed, cache: Path):
        with pytest.raises(ImageError, match="has 2 layers"):
            oci.install([_payload(pushed.image, {".": "/"})], _root(cache, "root"), EPOCH)

    def test_missing_member_named(self, pushed: Pushed, cache: Path):
        with pytest.raises(ImageError) as info:
            oci.install([_payload(pushed.aa, {"bin/aa": "/x"})], _root(cache, "root"), EPOCH)
        assert str(info.value).startswith("payload.oci[0].files: 'bin/aa'")

    def test_two_runs_identical_trees(self, pushed: Pushed, tmp_path: Path, monkeypatch):
        payloads = [_payload(pushed.agent, {"usr": "/usr"}), _payload(pushed.aa, AA_FILES)]
        trees = []
        for run in ("a", "b"):  # separate caches: both runs fetch from the registry
            monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / run / "cache"))
            oci.install(payloads, _root(tmp_path / run, "root"), EPOCH)
            trees.append(_tree(tmp_path / run / "root"))
        assert trees[0] == trees[1]
        # usr, usr/bin, usr/bin/kata-agent, usr/share, usr/share/kata, usr/share/kata/readme,
        # usr/local, usr/local/bin, usr/local/bin/attestation-agent
        assert len(trees[0]) == 9
        assert all(row[3] <= EPOCH for row in trees[0])


class TestRecipeKeys:
    """[[payload.oci]] mistakes name the key and the fix; pins without digests stop the build."""

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            # neither a tag (then the lock pins it, test_lock.py) nor a digest
            ('image = "ghcr.io/a/b"\nfiles = { "x" = "/x" }', "payload.oci[0].image"),
            ('pin = "NOPE"\nfiles = { "x" = "/x" }', "payload.oci[0].pin"),
            (f'image = "ghcr.io/a/b@sha256:{"a" * 64}"', "payload.oci[0].files"),
            (f'image = "ghcr.io/a/b@sha256:{"a" * 64}"\nfiles = {{ "x" = "rel" }}',
             'payload.oci[0].files."x"'),
            (f'image = "ghcr.io/a/b@sha256:{"a" * 64}"\npin = "PODVM_KATA_AGENT"\n'
             'files = { "x" = "/x" }', "payload.oci[0].image"),
            (f'image = "ghcr.io/a/b@sha256:{"a" * 64}"\nfiles = {{ "x" = "/x" }}\nlayers = 1',
             "payload.oci[0].layers"),
        ],
    )
    def test_errors_name_the_key(self, tmp_path: Path, body: str, message: str):
        path = tmp_path / "r.toml"
        path.write_text(f'name = "x"\n[[payload.oci]]\n{body}\n')
        with pytest.raises(RecipeError) as info:
            recipe.load(str(path))
        assert str(info.value).startswith(message)

    def test_pin_resolves_to_its_reference(self, tmp_path: Path, monkeypatch):
        monkeypatch.setitem(pins.OCI_PINS, "TEST_PIN", ImageRef("ghcr.io/a/b", "v1"))
        path = tmp_path / "r.toml"
        path.write_text('name = "x"\n[[payload.oci]]\npin = "TEST_PIN"\nfiles = { "x" = "/x" }\n')
        (item,) = recipe.load(str(path)).oci
        assert (item.image, item.digest, item.pin) == ("ghcr.io/a/b:v1", "", "TEST_PIN")

    def test_unresolved_pin_stops_the_build(self, tmp_path: Path, monkeypatch):
        monkeypatch.setitem(pins.OCI_PINS, "TEST_PIN", ImageRef("ghcr.io/a/b", "v1"))
        path = tmp_path / "r.toml"
        path.write_text('name = "x"\n[[payload.oci]]\npin = "TEST_PIN"\nfiles = { "x" = "/x" }\n')
        unpinned = recipe.load(str(path))
        with pytest.raises(RecipeError) as info:
            build.check_oci_pins(unpinned)
        assert "payload.oci[0].pin" in str(info.value)
        assert "has no digest pinned" in str(info.value)
        assert "coco image resolve" in info.value.hint
        # and pinned ones pass
        pinned = dataclasses.replace(
            unpinned,
            oci=tuple(dataclasses.replace(o, digest="sha256:" + "a" * 64) for o in unpinned.oci),
        )
        build.check_oci_pins(pinned)

    def test_digest_changes_the_content_hash(self, tmp_path: Path):
        text = (
            'name = "x"\n[[payload.oci]]\nimage = "ghcr.io/a/b@sha256:{}"\n'
            'files = {{ "x" = "/x" }}\n'
        )
        hashes = []
        for digit in "ab":
            (tmp_path / "r.toml").write_text(text.format(digit * 64))
            hashes.append(recipe.load(str(tmp_path / "r.toml")).content_hash())
        assert hashes[0] != hashes[1]
