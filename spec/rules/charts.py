"""Rules for `coco:charts`: a local chart directory or a private OCI mirror instead of a chart's
upstream repository (air-gapped and regulated installs; docs/air-gapped.md).

A local chart must be the chart spec/versions.py pins: its Chart.yaml names that chart (else
refused) at the pinned version (another version: a warning in dev, refused in staging and
production, because the values coco-stack generates are written for the pinned one). Its content
is hashed with `tree_digest`; with `digest` set, any other content is refused, and without it
the warning names the digest to pin. A mirror needs no check here: the model refuses every URL
but `oci://` without credentials, and Helm pulls the pinned version from it.

Relative paths are resolved against the project directory here, so the `Spec` the program builds
holds absolute chart directories (`coco render` writes them as `<project>/...`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from spec import versions, yamlload
from spec.errors import StackFileError
from spec.model import Charts, ChartSource
from spec.versions import ChartRef

from .base import Collector

# config key under coco:charts -> (model field, the pinned chart it replaces)
CHARTS: dict[str, tuple[str, ChartRef]] = {
    "runtime": ("runtime", versions.COCO_CHART),
    "peerPods": ("peer_pods", versions.PEERPODS_CHART),
    "certManager": ("cert_manager", versions.CERT_MANAGER_CHART),
}


class ChartTreeError(ValueError):
    """A chart directory whose content cannot be pinned (a symlink, an unreadable file)."""


def tree_digest(directory: Path) -> str:
    """`sha256:<hex>` of a chart directory: sha256 over one line per regular file, in order of
    the file's path relative to `directory` (POSIX separators, sorted by code point), each line
    `<path>\\0<sha256 hex of the file's bytes>\\n`. Names of empty directories and file modes do
    not count. Symlinks are refused (Helm follows them, so their targets would escape the pin).
    """
    files: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(directory):
        here = Path(root)
        for name in (*dirs, *names):
            entry = here / name
            rel = entry.relative_to(directory).as_posix()
            if entry.is_symlink():
                raise ChartTreeError(f"{rel} is a symlink")
            if name in names and not entry.is_file():
                raise ChartTreeError(f"{rel} is not a regular file")
            if name in names:
                files.append((rel, entry))
    outer = hashlib.sha256()
    for rel, entry in sorted(files):
        inner = hashlib.sha256()
        try:
            with entry.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    inner.update(block)
        except OSError as exc:
            raise ChartTreeError(f"{rel} cannot be read ({exc.strerror or exc})") from None
        outer.update(f"{rel}\0{inner.hexdigest()}\n".encode())
    return f"sha256:{outer.hexdigest()}"


def chart_directory(path: str, base_dir: str | None) -> Path:
    """`path` as an absolute directory: relative paths start at the project directory."""
    given = Path(path)
    return Path(
        os.path.normpath(given if given.is_absolute() else Path(base_dir or os.getcwd()) / given)
    )


def _read_chart_yaml(directory: Path) -> dict[str, Any] | str:
    """Chart.yaml as a mapping, or what is wrong with it."""
    # the stack file's loader: bounded size and expansion (a chart directory is user input)
    path = directory / "Chart.yaml"
    try:
        document, problems = yamlload.parse(path, yamlload.read_text(path, "Chart.yaml"))
    except StackFileError as exc:
        why = str(exc).removeprefix(f"{path}: ")
        if why.startswith("invalid YAML at "):
            return f"its Chart.yaml is not valid YAML at {why.removeprefix('invalid YAML at ')}"
        return f"its Chart.yaml cannot be read: {why}"
    if problems:
        return f"its Chart.yaml is refused: {problems[0].message}"
    if not isinstance(document, dict):
        return "its Chart.yaml is not a YAML mapping"
    return document


def _check_path(
    out: Collector, key: str, source: ChartSource, pinned: ChartRef, env: str | None, base: str
) -> Path:
    p = f"coco:charts.{key}"
    assert source.path is not None
    directory = chart_directory(source.path, base)
    where = "" if Path(source.path).is_absolute() else " (relative to the project directory)"
    pull = (
        f"helm pull {pinned.reference} --version {pinned.version} --untar"
        if pinned.repo.startswith("oci://")
        else f"helm pull {pinned.name} --repo {pinned.repo} --version {pinned.version} --untar"
    )
    if not directory.exists():
        out.error(
            f"{p}.path",
            f"chart directory {source.path!r}{where} does not exist",
            f"unpack the pinned chart there (`{pull}` on a machine that can reach it, then copy "
            "the directory), or correct the path",
        )
        return directory
    if not directory.is_dir():
        out.error(
            f"{p}.path",
            f"{source.path!r}{where} is not a directory",
            "give the unpacked chart directory; unpack a packaged chart (.tgz) with "
            "`tar xzf` or pull it with `helm pull --untar`",
        )
        return directory
    if not (directory / "Chart.yaml").is_file():
        out.error(
            f"{p}.path",
            f"{source.path!r}{where} has no Chart.yaml, so it is not a Helm chart",
            f"point at the directory holding Chart.yaml (`{pull}` writes it to ./{pinned.name}/)",
        )
        return directory
    chart = _read_chart_yaml(directory)
    if isinstance(chart, str):
        out.error(f"{p}.path", f"{source.path!r}: {chart}", "restore the chart from its source")
    elif str(chart.get("name")) != pinned.name:
        out.error(
            f"{p}.path",
            f"{source.path!r} holds chart {chart.get('name')!r}, not {pinned.name!r}",
            f"coco:charts.{key} replaces the {pinned.name} chart {pinned.version}: point at a "
            "copy of that chart",
        )
    elif str(chart.get("version")) != pinned.version:
        message = (
            f"{source.path!r} holds {pinned.name} {chart.get('version')}, and this coco-stack "
            f"pins {pinned.version}, the version its Helm values are written for"
        )
        hint = f"use {pinned.name} {pinned.version} (`{pull}`)"
        if env in ("staging", "production"):
            out.error(f"{p}.path", f"{message}; refused in {env}", hint)
        else:
            out.warn(f"{p}.path", message, f"{hint}; refused in staging and production")
    try:
        digest = tree_digest(directory)
    except ChartTreeError as exc:
        out.error(
            f"{p}.path",
            f"{source.path!r} cannot be pinned: {exc}",
            "copy the chart as plain files and directories (`helm pull --untar` writes no "
            "symlinks)",
        )
        return directory
    if source.digest is None:
        out.warn(
            f"{p}.digest",
            f"chart directory {source.path!r} is not pinned; its digest is {digest}",
            f"add `digest: {digest}` to coco:charts.{key} so that any other content is refused",
        )
    elif source.digest != digest:
        out.error(
            f"{p}.digest",
            f"chart directory {source.path!r} has digest {digest}, not the pinned {source.digest}",
            "its files changed since the digest was pinned: restore the chart from your mirror, "
            "or review the change and pin the new digest",
        )
    return directory


def check_charts(
    out: Collector, charts: Charts | None, env: str | None, base_dir: str | None
) -> Charts:
    """Check every local chart; the section with each path made absolute (an empty section when
    it did not pass type checking: its errors are already reported)."""
    if charts is None:
        return Charts()
    resolved: dict[str, ChartSource] = {}
    for key, (field, pinned) in CHARTS.items():
        source: ChartSource | None = getattr(charts, field)
        if source is None or source.path is None:
            continue
        directory = _check_path(out, key, source, pinned, env, base_dir or os.getcwd())
        resolved[field] = source.model_copy(update={"path": str(directory)})
    return charts.model_copy(update=resolved)
