"""Small local stand-ins with the real layout of the pod VM's payload sources (tests only).

- `kata_static_standin`: a zstd tar shaped like kata-static-4.0.0-amd64.tar.zst: under
  opt/kata/share/kata-containers/ a disk image whose ext4 file system (mkfs.ext4 -d, no root)
  starts at the pinned byte offset, reached through a symlink named like the real one
  (kata-containers-confidential.img), pinned by its own sha256 and placed in the image cache the
  way images.release keeps a verified download.
- `go_standins`: a Go module group built from a tiny local main (fixtures/podvm-standins) standing
  in for cloud-api-adaptor and the guest components, so unit tests never build CAA.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import zstandard

from images import pins, release
from spec import versions
from spec.versions import ReleaseArtifact

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "podvm-standins"
IMAGE_DIR = "opt/kata/share/kata-containers"
REAL_NAME = "kata-ubuntu-noble-confidential.image"  # the link's target (stand-in name)


def ext4_image(files: dict[str, bytes], out: Path, offset: int) -> Path:
    """A disk image with `offset` bytes of zeros, then an ext4 file system holding `files`
    (absolute path -> bytes, mode 0755), made by mkfs.ext4 -d without root or mounts."""
    tree = out.parent / f"{out.name}.tree"
    for path, data in files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755)
    size_kib = max(4096, 2 * sum(len(d) for d in files.values()) // 1024 + 2048)
    fs = out.parent / f"{out.name}.ext4"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(fs), f"{size_kib}k"],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "E2FSPROGS_FAKE_TIME": "1700000000"},
    )
    with out.open("wb") as handle:
        handle.write(b"\0" * offset)
        handle.write(fs.read_bytes())
    shutil.rmtree(tree)
    fs.unlink()
    return out


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
    archive.addfile(info, io.BytesIO(data))


def kata_static_standin(
    work: Path, files: dict[str, bytes], offset: int = versions.PODVM_GUEST_IMAGE_EXT4_OFFSET
) -> pins.GuestImagePin:
    """The stand-in archive, cached as a verified download, and its pin (same member path and
    offset as the real one). The caller points COCO_IMAGE_CACHE at a temporary directory."""
    work.mkdir(parents=True, exist_ok=True)
    image = ext4_image(files, work / REAL_NAME, offset)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        _add(archive, f"./{IMAGE_DIR}/vmlinuz-stand-in", b"not a kernel")
        _add(archive, f"./{IMAGE_DIR}/{REAL_NAME}", image.read_bytes())
        link = tarfile.TarInfo(f"./{IMAGE_DIR}/kata-containers-confidential.img")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, REAL_NAME, 1700000000
        archive.addfile(link)
    data = zstandard.ZstdCompressor().compress(raw.getvalue())
    artifact = ReleaseArtifact(
        "kata-static",
        "4.0.0-stand-in",
        "https://kata.invalid/kata-static-stand-in.tar.zst",
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    cached = release.cached_path(artifact)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return pins.GuestImagePin(artifact, versions.PODVM_GUEST_IMAGE_MEMBER, offset)


def go_standins(go_dir: Path, group: str) -> Path:
    """tools/go-shaped directory `go_dir` holding the stand-in module as group `group`."""
    target = go_dir / group
    if not target.exists():
        shutil.copytree(FIXTURE, target)
    return go_dir


STANDIN_GUEST_COMPONENTS = {
    "/usr/bin/kata-agent": "kata-agent",
    "/usr/local/bin/attestation-agent": "attestation-agent",
    "/usr/local/bin/confidential-data-hub": "confidential-data-hub",
    "/usr/local/bin/api-server-rest": "api-server-rest",
}


def build_podvm_with_standins(out: Path, work: Path) -> dict[str, object]:
    """Build the real podvm recipe with the stand-in kata-static archive (its guest image holding
    the Go stand-ins of kata-agent and the guest components) and the REAL cloud-api-adaptor
    binaries of tools/go/caa. The caller sets COCO_IMAGE_CACHE. Returns build_image's
    measurements."""
    from images import build, payload, recipe

    original_go_dir = payload.GO_DIR
    payload.GO_DIR = go_standins(work / "go", "standins")
    try:
        built = payload.go_binaries("standins")
    finally:
        payload.GO_DIR = original_go_dir
    files = {path: built[name].read_bytes() for path, name in STANDIN_GUEST_COMPONENTS.items()}
    pin = kata_static_standin(work / "kata-static", files)
    saved = dict(pins.RELEASE_PINS)
    pins.RELEASE_PINS["KATA_CONFIDENTIAL_IMAGE"] = pin
    try:
        result = build.build_image(recipe.load("podvm"), out, quiet=True)
    finally:
        pins.RELEASE_PINS.clear()
        pins.RELEASE_PINS.update(saved)
    return result.measurements
