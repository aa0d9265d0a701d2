"""Release files pinned by URL and sha256 (images.release): served by a real HTTP server on
loopback, downloaded, refused when the bytes or size differ from the pin, cached, and read for
members through the archive's symbolic and hard links.

Fixture: a small tar.zst laid out like kata-static (opt/kata/...), with the kernel link stored
before the file it points to, so extracting it needs the two passes the real tarball needs.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard

from images import release
from images.errors import DownloadError, ImageError
from spec.versions import ReleaseArtifact
from tests.conftest import StaticServer

FIRMWARE = b"firmware " * 1000
KERNEL = b"kernel " * 5000
SHARE = "./opt/kata/share/kata-containers"


def _add(archive: tarfile.TarFile, name: str, data: bytes | None = None, **link: str) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1
    if "symlink" in link:
        info.type, info.linkname = tarfile.SYMTYPE, link["symlink"]
    elif "hardlink" in link:
        info.type, info.linkname = tarfile.LNKTYPE, link["hardlink"]
    else:
        info.size = len(data or b"")
    archive.addfile(info, io.BytesIO(data or b"") if data is not None else None)


def kata_like_tarball(path: Path, **extra_links: str) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        # links first: a one-pass stream would have passed them before their targets
        _add(archive, f"{SHARE}/vmlinuz.container", symlink="vmlinuz-6.18.35-200")
        _add(archive, f"{SHARE}/vmlinuz-abs", symlink=f"{SHARE[1:]}/vmlinuz.container")
        _add(archive, f"{SHARE}/vmlinuz-hard", hardlink=f"{SHARE}/vmlinuz-6.18.35-200")
        for name, target in sorted(extra_links.items()):
            _add(archive, f"{SHARE}/{name}", symlink=target)
        _add(archive, "./opt/kata/share/ovmf/AMDSEV.fd", FIRMWARE)
        _add(archive, f"{SHARE}/vmlinuz-6.18.35-200", KERNEL)
        _add(archive, f"{SHARE}/kata-containers-confidential.img", b"\0" * 4096)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("COCO_IMAGE_CACHE", str(directory))
    return directory


def pinned(server: StaticServer, name: str = "kata-static-9.9.9-amd64.tar.zst") -> ReleaseArtifact:
    path = kata_like_tarball(server.root / name)
    data = path.read_bytes()
    return ReleaseArtifact(
        name="kata-static", version="9.9.9", url=server.url(name),
        sha256=hashlib.sha256(data).hexdigest(), size=len(data),
    )


def cached_files(cache: Path) -> list[Path]:
    """Everything in the cache but the lock files."""
    return [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]


class TestFetch:
    def test_downloads_once_and_keeps_the_verified_file(self, server, cache):
        artifact = pinned(server)
        seen: list[tuple[str, int, int | None]] = []
        path = release.fetch(artifact, progress=lambda *a: seen.append(a))
        assert path == cache / "release" / "sha256" / artifact.sha256
        assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact.sha256
        assert seen[-1] == (f"download {artifact.filename}", artifact.size, artifact.size)
        assert release.fetch(artifact) == path
        assert len(server.requests) == 1  # the second call was a cache hit

    def test_other_bytes_are_refused_and_nothing_is_cached(self, server, cache):
        artifact = replace(pinned(server), sha256="0" * 64)
        with pytest.raises(DownloadError, match="the pin is 0000") as info:
            release.fetch(artifact)
        assert "tampered" in info.value.hint
        assert cached_files(cache) == []

    def test_another_size_is_refused_before_reading(self, server, cache):
        artifact = replace(pinned(server), size=10)
        with pytest.raises(DownloadError, match=r"serves \d+ bytes, the pin says 10"):
            release.fetch(artifact)
        assert cached_files(cache) == []

    def test_http_error_names_the_status(self, server):
        artifact = replace(pinned(server), url=server.url("missing.tar.zst"))
        with pytest.raises(DownloadError, match="answered HTTP 404"):
            release.fetch(artifact)

    def test_unreachable_server_names_the_url(self, server):
        artifact = pinned(server)
        server.stop()
        with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1"):
            release.fetch(artifact)

    def test_a_connection_lost_half_way_is_a_download_error(self, cache):
        listener = socket.create_server(("127.0.0.1", 0))

        def serve_half() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n" + b"x" * 100000)
            conn.close()

        threading.Thread(target=serve_half, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/kata.tar.zst"
        artifact = ReleaseArtifact("kata-static", "9.9.9", url, "0" * 64, 3000000)
        broken = r"failed after \d+ bytes: .*Connection broken"
        with pytest.raises(DownloadError, match=broken) as info:
            release.fetch(artifact)
        listener.close()
        assert "run again" in info.value.hint
        assert cached_files(cache) == []

    def test_two_runs_at_once_download_once(self, server):
        artifact = pinned(server)
        results: list[dict[str, Path]] = []
        runs = [threading.Thread(target=lambda: results.append(
            release.members(artifact, [FIRMWARE_MEMBER]))) for _ in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        assert len(results) == 2 and results[0] == results[1]
        assert server.requests == [f"/{artifact.filename}"]

    def test_a_mirror_url_is_checked_all_the_same(self, server):
        artifact = pinned(server)
        mirror = server.root / "mirror.tar.zst"
        mirror.write_bytes((server.root / artifact.filename).read_bytes())
        assert release.fetch(replace(artifact, url="http://127.0.0.1:9/gone"), server.url(
            "mirror.tar.zst")).read_bytes() == mirror.read_bytes()
        mirror.write_bytes(b"not it")
        release.cached_path(artifact).unlink()
        with pytest.raises(DownloadError):
            release.fetch(artifact, server.url("mirror.tar.zst"))


KERNEL_LINK = "opt/kata/share/kata-containers/vmlinuz.container"
FIRMWARE_MEMBER = "opt/kata/share/ovmf/AMDSEV.fd"


class TestMembers:
    def test_links_are_followed_to_the_file(self, server, cache):
        artifact = pinned(server)
        names = [KERNEL_LINK, FIRMWARE_MEMBER, "opt/kata/share/kata-containers/vmlinuz-abs",
                 "./opt/kata/share/kata-containers/vmlinuz-hard"]
        files = release.members(artifact, names)
        assert set(files) == set(names)
        assert files[KERNEL_LINK].read_bytes() == KERNEL
        assert files[FIRMWARE_MEMBER].read_bytes() == FIRMWARE
        assert files[names[2]] == files[names[3]] == files[KERNEL_LINK]
        assert files[KERNEL_LINK].name == "vmlinuz-6.18.35-200"
        index = json.loads((cache / "release" / artifact.sha256 / "index.json").read_text())
        assert index[KERNEL_LINK] == {
            "target": "opt/kata/share/kata-containers/vmlinuz-6.18.35-200",
            "sha256": hashlib.sha256(KERNEL).hexdigest(),
        }

    def test_extracted_members_need_neither_server_nor_tarball(self, server):
        artifact = pinned(server)
        first = release.members(artifact, [KERNEL_LINK])
        server.stop()
        release.cached_path(artifact).unlink()
        again = release.members(artifact, [KERNEL_LINK])
        assert again == first and again[KERNEL_LINK].read_bytes() == KERNEL

    def test_a_changed_member_is_extracted_again(self, server):
        artifact = pinned(server)
        path = release.members(artifact, [KERNEL_LINK])[KERNEL_LINK]
        path.write_bytes(b"tampered")
        assert release.members(artifact, [KERNEL_LINK])[KERNEL_LINK].read_bytes() == KERNEL

    def test_a_damaged_index_means_extracting_again(self, server, cache):
        artifact = pinned(server)
        release.members(artifact, [FIRMWARE_MEMBER])
        (cache / "release" / artifact.sha256 / "index.json").write_text("{not json")
        files = release.members(artifact, [FIRMWARE_MEMBER])
        assert files[FIRMWARE_MEMBER].read_bytes() == FIRMWARE
        index = json.loads((cache / "release" / artifact.sha256 / "index.json").read_text())
        assert index[FIRMWARE_MEMBER]["sha256"] == hashlib.sha256(FIRMWARE).hexdigest()

    def test_a_changed_cached_tarball_is_dropped(self, server):
        artifact = pinned(server)
        cached = release.fetch(artifact)
        data = bytearray(cached.read_bytes())
        data[-1] ^= 1  # same size, so fetch trusts it; the read pass checks the sha256
        cached.write_bytes(bytes(data))
        with pytest.raises(DownloadError, match="no longer has the pinned sha256"):
            release.members(artifact, [FIRMWARE_MEMBER])
        assert not cached.exists()
        assert release.members(artifact, [FIRMWARE_MEMBER])[FIRMWARE_MEMBER].read_bytes() == (
            FIRMWARE
        )

    def test_a_plain_tar_is_hashed_to_its_last_byte(self, server, cache):
        # tar stops reading at its end marker; the record padding after it is part of the pin
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as archive:
            _add(archive, "./opt/kata/share/ovmf/AMDSEV.fd", FIRMWARE)
        data = raw.getvalue() + bytes(20480)
        (server.root / "plain.tar").write_bytes(data)
        artifact = ReleaseArtifact("kata-static", "9.9.9", server.url("plain.tar"),
                                   hashlib.sha256(data).hexdigest(), len(data))
        files = release.members(artifact, [FIRMWARE_MEMBER])
        assert files[FIRMWARE_MEMBER].read_bytes() == FIRMWARE
        assert release.cached_path(artifact).is_file()  # not taken for a changed copy

    def test_missing_member_and_link_loop(self, server, tmp_path):
        artifact = pinned(server)
        with pytest.raises(ImageError, match="'opt/kata/nope' is not a file") as info:
            release.members(artifact, ["opt/kata/nope"])
        assert "tar -tf" in info.value.hint
        name = "kata-static-loop.tar.zst"
        data = kata_like_tarball(server.root / name, a="b", b="a").read_bytes()
        looped = ReleaseArtifact("kata-static", "9.9.9", server.url(name),
                                 hashlib.sha256(data).hexdigest(), len(data))
        with pytest.raises(ImageError, match="more than 40 links"):
            release.members(looped, ["opt/kata/share/kata-containers/a"])
