"""Fixtures for the image tests: real builds of the minimal recipe, shared per session.

The slow tests (marker `image`) build the minimal recipe twice from empty caches (clean builds),
once more from a warm cache, and boot it in QEMU. They need root (mmdebstrap, tar ownership),
the Debian tools in images.run.TOOLS and the configured Debian mirror. Without the tools they are
skipped with the apt-get line to run, unless COCO_REQUIRE_IMAGE_TESTS=1 (set by CI), which turns
the skip into a failure so CI can never pass without building and booting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from images import build, recipe
from images.errors import ToolMissing
from images.run import BOOT_TOOLS, BUILD_TOOLS, check_tools


@dataclass(frozen=True)
class Built:
    out: Path
    cache: Path
    measurements: dict[str, Any]
    timings: dict[str, float]
    cache_hits: dict[str, bool]


def _require_tools() -> None:
    try:
        check_tools((*BUILD_TOOLS, *BOOT_TOOLS))
        if os.geteuid() != 0:
            raise ToolMissing([("root", "(run the image tests as root)")])
    except ToolMissing as exc:
        if os.environ.get("COCO_REQUIRE_IMAGE_TESTS") == "1":
            pytest.fail(f"{exc} ({exc.hint})")
        pytest.skip(f"{exc} ({exc.hint})")


def _build(out: Path, cache: Path) -> Built:
    old = os.environ.get("COCO_IMAGE_CACHE")
    os.environ["COCO_IMAGE_CACHE"] = str(cache)
    try:
        result = build.build_image(recipe.load("minimal"), out, quiet=True)
    finally:
        if old is None:
            os.environ.pop("COCO_IMAGE_CACHE", None)
        else:
            os.environ["COCO_IMAGE_CACHE"] = old
    written = json.loads((out / "measurements.json").read_text())
    assert written == result.measurements
    return Built(out, cache, written, result.timings, result.cache_hits)


@pytest.fixture(scope="session")
def minimal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Clean build A of the minimal recipe (empty cache)."""
    _require_tools()
    base = tmp_path_factory.mktemp("image-a")
    yield _build(base / "out", base / "cache")


@pytest.fixture(scope="session")
def minimal_again(tmp_path_factory: pytest.TempPathFactory, minimal: Built) -> Built:
    """Clean build B: another output directory and another empty cache."""
    base = tmp_path_factory.mktemp("image-b")
    return _build(base / "out", base / "cache")


@pytest.fixture(scope="session")
def minimal_warm(tmp_path_factory: pytest.TempPathFactory, minimal: Built) -> Built:
    """A rebuild reusing build A's cache."""
    base = tmp_path_factory.mktemp("image-warm")
    return _build(base / "out", minimal.cache)
