"""Release-tarball benchmark: what the first and later runs of a stack with a bare-metal SNP
kataGuest (no local firmware or kernel) wait for while images.release fetches the pinned kata
tarball and reads two members out of it.

The archive is synthetic, shaped like kata-static: --size MiB of incompressible guest images
first (so zstd cannot shrink them, as with the real 1.9 GB tarball), the firmware and kernel at
the end, the kernel behind a link stored before it. It is served over HTTP on loopback, so the
numbers are the machine's (hashing, zstd, tar), not a network's.

    python benchmarks/release_bench.py [--size 1024] [--json results.json]

Phases: download (fetch into the cache, sha256 checked), cold members (read pass with sha256,
then the extracting pass that stops after the last wanted member), warm members (index hit:
only the extracted files are hashed), and the whole kata_measure.measure cold and warm.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import json
import os
import sys
import tarfile
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from images import kata as kata_measure  # noqa: E402
from images import release  # noqa: E402
from spec import versions  # noqa: E402
from spec.model import KataGuest  # noqa: E402
from spec.versions import ReleaseArtifact  # noqa: E402
from tests.images.test_kata_measure import fake_amdsev_firmware  # noqa: E402

SHARE = "./opt/kata/share/kata-containers"


def build(path: Path, size_mib: int, firmware: bytes, kernel: bytes) -> None:
    compressor = zstandard.ZstdCompressor(level=3, threads=-1)
    with (
        path.open("wb") as raw,
        compressor.stream_writer(raw) as zst,
        tarfile.open(fileobj=zst, mode="w|", format=tarfile.PAX_FORMAT) as archive,
    ):
        link = tarfile.TarInfo(f"{SHARE}/vmlinuz.container")
        link.type, link.linkname = tarfile.SYMTYPE, "vmlinuz-6.18.35-200"
        archive.addfile(link)
        chunk = 64 << 20
        for i in range(0, size_mib << 20, chunk):
            data = os.urandom(min(chunk, (size_mib << 20) - i))
            info = tarfile.TarInfo(f"{SHARE}/image-{i // chunk:03d}.img")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, data in (("./opt/kata/share/ovmf/AMDSEV.fd", firmware),
                           (f"{SHARE}/vmlinuz-6.18.35-200", kernel)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def timed(label: str, results: dict[str, float], action: object) -> None:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    results[label] = round(time.perf_counter() - start, 2)
    print(f"{label:>22}: {results[label]:7.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB of filler images")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["COCO_IMAGE_CACHE"] = str(work / "cache")
        www = work / "www"
        www.mkdir()
        firmware = fake_amdsev_firmware(work / "AMDSEV.fd").read_bytes()
        kernel = os.urandom(15 << 20)
        name = "kata-static-4.0.0-amd64.tar.zst"
        start = time.perf_counter()
        build(www / name, args.size, firmware, kernel)
        print(f"built {args.size} MiB archive in {time.perf_counter() - start:.1f} s "
              f"({(www / name).stat().st_size >> 20} MiB compressed)", flush=True)
        with (www / name).open("rb") as handle:
            sha = hashlib.file_digest(handle, "sha256").hexdigest()
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
        artifact = ReleaseArtifact("kata-static", "4.0.0", url, sha, (www / name).stat().st_size)
        versions.KATA_STATIC = artifact  # type: ignore[misc]
        names = list(versions.KATA_SNP_MEMBERS.values())
        results: dict[str, float] = {}
        timed("download", results, lambda: release.fetch(artifact))
        timed("members cold", results, lambda: release.members(artifact, names))
        timed("members warm", results, lambda: release.members(artifact, names))
        guest = KataGuest(cmdline="console=hvc0", vcpus=[1, 2, 4])
        (work / "cache" / "release" / sha / "index.json").unlink()
        timed("measure (tarball cached)", results, lambda: kata_measure.measure(guest, work))
        timed("measure warm", results, lambda: kata_measure.measure(guest, work))
        httpd.shutdown()
        if args.json:
            args.json.write_text(json.dumps({"size_mib": args.size, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
