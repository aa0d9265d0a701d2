"""Where the image builder keeps what it downloads and builds between runs, and how files there
are identified: by the sha256 of their bytes. Imports nothing of ours, so every stage
(rootfs, oci, release, report) can share it without importing each other.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """$COCO_IMAGE_CACHE, else $XDG_CACHE_HOME/coco-stack/images, else ~/.cache/..."""
    if os.environ.get("COCO_IMAGE_CACHE"):
        return Path(os.environ["COCO_IMAGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coco-stack" / "images"


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(4 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
