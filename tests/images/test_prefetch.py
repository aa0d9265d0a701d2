"""`coco fetch STACK` prefetches what the build of the stack's coco:image.recipe downloads (issue
17): each [[payload.release]] archive into the verified release cache, the Go modules of each
[[payload.go]] group into the Go module cache, so the build then finds them without a network.

Stand-ins: a small zstd tar at the pinned member path of kata-static, served over a loopback HTTP
server (tests.conftest.StaticServer); a Go module proxy in a local directory (GOPROXY=file://)
serving one tiny module that a tiny local main requires.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from cli import main as cli
from images import payload, pins, release
from spec import versions
from spec.errors import ExitCode
from spec.versions import ReleaseArtifact

PIN = "KATA_CONFIDENTIAL_IMAGE"
MEMBER_BYTES = b"stand-in guest image " * 100
needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")


def _archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo(f"./{versions.PODVM_GUEST_IMAGE_MEMBER}")
        info.size, info.mtime = len(MEMBER_BYTES), 1700000000
        archive.addfile(info, io.BytesIO(MEMBER_BYTES))
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def _stack(tmp_path: Path, recipe_body: str) -> Path:
    """A bare-metal stack whose coco:image.recipe is a recipe file holding `recipe_body`."""
    recipe_path = tmp_path / "fetchtest.toml"
    recipe_path.write_text(f'name = "fetchtest"\n{recipe_body}\n')
    (tmp_path / "Pulumi.yaml").write_text("name: coco-stack\nruntime: python\n")
    stack = tmp_path / "Pulumi.fetchtest.yaml"
    stack.write_text(f"""config:
  coco:environment: dev
  coco:cluster:
    provider: existing
  coco:nodePools:
    - name: snp
      tee: snp
      mode: bare-metal
      nodeSelector:
        coco-stack.io/tee: snp
  coco:image:
    recipe: {recipe_path}
""")
    return stack


RELEASE_RECIPE = f'[[payload.release]]\npin = "{PIN}"\nfiles = {{ "/usr/bin/a" = "/usr/bin/a" }}'


@pytest.fixture
def served_release(monkeypatch, tmp_path, server) -> ReleaseArtifact:
    """The stand-in archive on the loopback server, pinned as KATA_CONFIDENTIAL_IMAGE, and an
    empty image cache."""
    monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
    data = _archive()
    (server.root / "kata-static.tar.zst").write_bytes(data)
    artifact = ReleaseArtifact(
        "kata-static",
        "4.0.0-stand-in",
        server.url("kata-static.tar.zst"),
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    pin = pins.GuestImagePin(artifact, versions.PODVM_GUEST_IMAGE_MEMBER, 0)
    monkeypatch.setitem(pins.RELEASE_PINS, PIN, pin)
    return artifact


class TestReleasePrefetch:
    """The archive lands where the build reads it, verified; a second run downloads nothing;
    what cannot be fetched exits 3 and leaves nothing in the cache."""

    def test_downloaded_then_the_build_finds_it_offline(
        self, served_release, server, tmp_path, capsys
    ):
        from images import recipe

        stack = _stack(tmp_path, RELEASE_RECIPE)
        assert cli.main(["fetch", str(stack)]) == 0
        out, err = capsys.readouterr()
        assert len(_archive()) < 1000
        size = f"{len(_archive())} bytes"
        assert f"recipe fetchtest payload.release[0]: {PIN} kata-static.tar.zst, " in out
        assert out.rstrip().endswith(f", {size}, downloaded")
        assert "coco fetch: payload.release[0]: downloading" in err
        assert server.requests == ["/kata-static.tar.zst"]
        # the build's own offline read (images.payload.release_image) finds it now
        (item,) = recipe.load(str(tmp_path / "fetchtest.toml")).release
        image = payload.release_image(item, offline=True)
        assert image.read_bytes() == MEMBER_BYTES
        # again: nothing downloaded
        assert cli.main(["fetch", str(stack)]) == 0
        assert capsys.readouterr().out.rstrip().endswith(f", {size}, cached")
        assert server.requests == ["/kata-static.tar.zst"]

    def test_member_extracted_earlier_needs_no_archive(
        self, served_release, server, tmp_path, capsys
    ):
        """A build reads the member from the cache's index without the archive: fetch too."""
        stack = _stack(tmp_path, RELEASE_RECIPE)
        assert cli.main(["fetch", str(stack)]) == 0
        release.members(served_release, [versions.PODVM_GUEST_IMAGE_MEMBER])  # as a build does
        release.cached_path(served_release).unlink()  # e.g. removed to save 2 GB
        capsys.readouterr()
        assert cli.main(["fetch", str(stack)]) == 0
        out = capsys.readouterr().out
        assert "(member extracted earlier)" in out and out.rstrip().endswith(", cached")
        assert server.requests == ["/kata-static.tar.zst"]  # the first fetch only

    def test_unreachable_exits_3(self, served_release, tmp_path, capsys, monkeypatch):
        gone = dataclasses.replace(served_release, url=served_release.url + ".gone")
        monkeypatch.setitem(
            pins.RELEASE_PINS, PIN, pins.GuestImagePin(gone, versions.PODVM_GUEST_IMAGE_MEMBER, 0)
        )
        assert cli.main(["fetch", str(_stack(tmp_path, RELEASE_RECIPE))]) == ExitCode.UNREACHABLE
        assert "HTTP 404" in capsys.readouterr().err
        assert not release.cached_path(gone).exists()

    def test_other_bytes_than_pinned_exit_3_and_are_not_kept(
        self, served_release, server, tmp_path, capsys
    ):
        (server.root / "kata-static.tar.zst").write_bytes(b"x" * served_release.size)
        assert cli.main(["fetch", str(_stack(tmp_path, RELEASE_RECIPE))]) == ExitCode.UNREACHABLE
        assert "the pin is" in capsys.readouterr().err
        assert not release.cached_path(served_release).exists()


class TestOciPinWithoutDigest:
    def test_exits_2_naming_the_key(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
        monkeypatch.setitem(pins.OCI_PINS, "TEST_PIN", versions.ImageRef("ghcr.io/a/b", "v1"))
        body = '[[payload.oci]]\npin = "TEST_PIN"\nfiles = { "x" = "/x" }'
        assert cli.main(["fetch", str(_stack(tmp_path, body))]) == ExitCode.INVALID
        assert "payload.oci[0].pin: TEST_PIN" in capsys.readouterr().err


class TestNothingToFetch:
    def test_recipe_without_outside_sources(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
        assert cli.main(["fetch", str(_stack(tmp_path, ""))]) == 0
        assert (
            "recipe fetchtest: nothing to download besides Debian packages"
            in capsys.readouterr().out
        )


# ------------------------------------------------------------------------------------ Go

DEP = "example.invalid/coco-fetch/dep"
DEP_GO = 'package dep\n\nfunc Word() string { return "prefetched" }\n'
MAIN_GO = (
    f'package main\n\nimport (\n\t"fmt"\n\n\t"{DEP}"\n)\n\n'
    "func main() { fmt.Println(dep.Word()) }\n"
)


def _module_proxy(root: Path) -> Path:
    """A GOPROXY directory serving DEP v1.0.0 (the module proxy protocol's files)."""
    base = root / DEP / "@v"
    base.mkdir(parents=True)
    go_mod = f"module {DEP}\n\ngo 1.22\n"
    (base / "list").write_text("v1.0.0\n")
    (base / "v1.0.0.info").write_text(
        json.dumps({"Version": "v1.0.0", "Time": "2024-01-01T00:00:00Z"})
    )
    (base / "v1.0.0.mod").write_text(go_mod)
    with zipfile.ZipFile(base / "v1.0.0.zip", "w") as archive:
        archive.writestr(f"{DEP}@v1.0.0/go.mod", go_mod)
        archive.writestr(f"{DEP}@v1.0.0/dep.go", DEP_GO)
    return root


@pytest.fixture
def go_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """tools/go-shaped GO_DIR with group "fetchdep" (a main requiring DEP, go.sum made against the
    local proxy), an empty module cache and tools cache; returns the Go environment used."""
    proxy = _module_proxy(tmp_path / "proxy")
    group = tmp_path / "go" / "fetchdep"
    group.mkdir(parents=True)
    (group / "go.mod").write_text(
        f"module example.invalid/coco-fetch/main\n\ngo 1.22\n\nrequire {DEP} v1.0.0\n"
    )
    (group / "main.go").write_text(MAIN_GO)
    (group / "tools.toml").write_text(
        '[[binary]]\nname = "fetchdep"\npackage = "example.invalid/coco-fetch/main"\n'
    )
    env = {
        "GOPROXY": f"file://{proxy}",
        "GOSUMDB": "off",
        "GOFLAGS": "-mod=mod",
        "GOMODCACHE": str(tmp_path / "modcache"),
        "GOTOOLCHAIN": "local",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # go.sum as a committed group has it (written against the local proxy, in a scratch module
    # cache so the test's module cache starts empty)
    subprocess.run(
        ["go", "mod", "tidy"],
        cwd=group,
        check=True,
        capture_output=True,
        env={**_environ(), "GOMODCACHE": str(tmp_path / "scratch-modcache")},
    )
    subprocess.run(
        ["go", "clean", "-modcache"],
        cwd=group,
        check=True,
        capture_output=True,
        env={**_environ(), "GOMODCACHE": str(tmp_path / "scratch-modcache")},
    )
    assert DEP in (group / "go.sum").read_text()
    monkeypatch.setattr(payload, "GO_DIR", tmp_path / "go")
    monkeypatch.setenv("COCO_TOOLS_CACHE", str(tmp_path / "tools-cache"))
    monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
    return env


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


GO_RECIPE = '[[payload.go]]\ngroup = "fetchdep"\nfiles = { "fetchdep" = "/usr/bin/fetchdep" }'


@needs_go
class TestGoPrefetch:
    """The modules of the group's build list land in the module cache the build uses; the build
    then compiles with the proxy switched off."""

    def test_downloaded_then_the_build_needs_no_proxy(
        self, go_group, tmp_path, capsys, monkeypatch
    ):
        modcache = Path(go_group["GOMODCACHE"])
        stack = _stack(tmp_path, GO_RECIPE)
        assert cli.main(["fetch", str(stack)]) == 0
        out, err = capsys.readouterr()
        assert "recipe fetchtest payload.go[0]: Go group fetchdep, 1 modules, " in out
        assert out.rstrip().endswith(", downloaded")
        assert "coco fetch: payload.go[0]: go mod download in " in err
        assert (modcache / f"{DEP}@v1.0.0" / "dep.go").read_text() == DEP_GO
        # the build, offline: tools/build.py compiles from the module cache alone
        monkeypatch.setenv("GOPROXY", "off")
        built = payload.go_binaries("fetchdep")
        ran = subprocess.run([built["fetchdep"]], capture_output=True, text=True, check=True)
        assert ran.stdout == "prefetched\n"
        # again: found in the cache, nothing asked of the proxy
        monkeypatch.setenv("GOPROXY", go_group["GOPROXY"])
        shutil.rmtree(tmp_path / "proxy")
        assert cli.main(["fetch", str(stack)]) == 0
        assert capsys.readouterr().out.rstrip().endswith(", cached")

    def test_proxy_without_the_module_exits_3(self, go_group, tmp_path, capsys):
        shutil.rmtree(tmp_path / "proxy" / "example.invalid")
        assert cli.main(["fetch", str(_stack(tmp_path, GO_RECIPE))]) == ExitCode.UNREACHABLE
        err = capsys.readouterr().err
        assert "payload.go[0]: `go mod download` of Go group fetchdep failed" in err
        assert DEP in err


class TestGoMissing:
    def test_exits_2_naming_go_before_anything_is_downloaded(
        self, served_release, server, tmp_path, capsys, monkeypatch
    ):
        (tmp_path / "go" / "fetchdep").mkdir(parents=True)
        for name in ("go.mod", "tools.toml"):
            (tmp_path / "go" / "fetchdep" / name).write_text("")
        monkeypatch.setattr(payload, "GO_DIR", tmp_path / "go")
        real_which = shutil.which
        monkeypatch.setattr(
            payload.shutil,
            "which",
            lambda tool, *a, **k: None if tool == "go" else real_which(tool),
        )
        stack = _stack(tmp_path, f"{RELEASE_RECIPE}\n{GO_RECIPE}")
        assert cli.main(["fetch", str(stack)]) == ExitCode.INVALID
        err = capsys.readouterr().err
        assert "missing host tool(s): go" in err and "go.dev" in err
        assert server.requests == []  # stopped before the release download
