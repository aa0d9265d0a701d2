#!/usr/bin/env python3
"""Build the Go tools the tests run (Pulumi CLI and plugins, Kubernetes control plane, OPA, ...).

Each group is a directory tools/go/GROUP/ with a go.mod, go.sum, a tools.toml manifest and only
glue we write (small main packages, stand-in modules); upstream code comes from the Go module
proxy at the versions go.mod pins. See tools/README.md for the manifest format.

    python3 tools/build.py [GROUP ...]       build what is not up to date (default: every group)
    python3 tools/build.py --print-bin-dirs  print the bin/ dir of each built group (for PATH)
    python3 tools/build.py --status          print each group's cache entry and whether it is built
    python3 tools/build.py --prune           delete cache entries no current group key names

Binaries go to ${COCO_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/coco-stack/tools}/GROUP-KEY/bin/,
KEY hashing the group's files, this script and the Go toolchain, so a second run builds nothing.
A group is built in a temporary directory renamed into place when every binary is built.

From Python (tests): ensure(groups) builds if needed and returns {name: path}; find(name) never
builds and returns the path of an up-to-date binary or None.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

TOOLS_DIR = Path(__file__).resolve().parent
GO_DIR = TOOLS_DIR / "go"
MANIFEST = "tools.toml"
ENTRY_MANIFEST = "manifest.json"

_DEFAULT_KEYS = {"cgo", "trimpath", "tags", "flags", "ldflags", "env"}
_BINARY_KEYS = _DEFAULT_KEYS | {"name", "package", "prepare", "files"}
_PREPARE_KINDS = {"copy", "json-compact", "pulumi-schema"}


class BuildError(Exception):
    """A manifest is invalid or a build step failed; the message names what and how."""


# ---------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True)
class Binary:
    name: str
    package: str
    cgo: bool
    trimpath: bool
    tags: tuple[str, ...]
    flags: tuple[str, ...]
    ldflags: str
    env: dict[str, str]
    prepare: tuple[dict[str, Any], ...]
    files: tuple[dict[str, Any], ...]


@dataclass
class Group:
    name: str
    dir: Path
    binaries: list[Binary]
    _key: str | None = field(default=None, repr=False)

    @property
    def outputs(self) -> list[str]:
        """Names of everything the group puts in bin/: binaries and copied files."""
        names = [b.name for b in self.binaries]
        names += [
            f.get("name") or PurePosixPath(f["path"]).name for b in self.binaries for f in b.files
        ]
        return names

    def key(self) -> str:
        if self._key is None:
            self._key = _group_key(self)
        return self._key

    def entry(self) -> Path:
        return cache_root() / f"{self.name}-{self.key()}"

    def bin_dir(self) -> Path:
        return self.entry() / "bin"

    def up_to_date(self) -> bool:
        entry = self.entry()
        return (entry / ENTRY_MANIFEST).is_file() and all(
            (entry / "bin" / n).is_file() for n in self.outputs
        )


def _check_keys(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise BuildError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def _str_list(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BuildError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def load_group(group_dir: Path) -> Group:
    path = group_dir / MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BuildError(f"{path}: {e}") from e
    _check_keys(str(path), data, {"defaults", "binary"})
    defaults = data.get("defaults", {})
    _check_keys(f"{path} [defaults]", defaults, _DEFAULT_KEYS)
    binaries: list[Binary] = []
    for i, raw in enumerate(data.get("binary", [])):
        where = f"{path} [[binary]] #{i + 1}"
        _check_keys(where, raw, _BINARY_KEYS)
        if not isinstance(raw.get("name"), str) or not isinstance(raw.get("package"), str):
            raise BuildError(f"{where}: name and package (strings) are required")
        where = f"{path} binary {raw['name']}"
        for step in raw.get("prepare", []):
            _check_keys(f"{where} prepare", step, {"kind", "module", "from", "to", "version"})
            if step.get("kind") not in _PREPARE_KINDS:
                raise BuildError(
                    f"{where}: prepare kind {step.get('kind')!r}"
                    f" is not one of {sorted(_PREPARE_KINDS)}"
                )
            if step["kind"] == "pulumi-schema" and "version" not in step:
                raise BuildError(f"{where}: prepare kind pulumi-schema needs version")
            for k in ("from", "to"):
                if not isinstance(step.get(k), str):
                    raise BuildError(f"{where}: prepare step needs {k}")
            _relative(where, step["to"])
        for f in raw.get("files", []):
            _check_keys(f"{where} files", f, {"module", "path", "name", "mode"})
            if not isinstance(f.get("path"), str):
                raise BuildError(f"{where}: files entry needs path")
        env = {**defaults.get("env", {}), **raw.get("env", {})}
        ldflags = " ".join(s for s in (defaults.get("ldflags", ""), raw.get("ldflags", "")) if s)
        binaries.append(
            Binary(
                name=raw["name"],
                package=raw["package"],
                cgo=bool(raw.get("cgo", defaults.get("cgo", False))),
                trimpath=bool(raw.get("trimpath", defaults.get("trimpath", True))),
                tags=_str_list(where, raw.get("tags", defaults.get("tags", []))),
                flags=_str_list(where, defaults.get("flags", []))
                + _str_list(where, raw.get("flags", [])),
                ldflags=ldflags,
                env={str(k): str(v) for k, v in env.items()},
                prepare=tuple(raw.get("prepare", [])),
                files=tuple(raw.get("files", [])),
            )
        )
    if not binaries:
        raise BuildError(f"{path}: no [[binary]]")
    names = [b.name for b in binaries]
    if len(set(names)) != len(names):
        raise BuildError(f"{path}: binary names repeat")
    return Group(name=group_dir.name, dir=group_dir, binaries=binaries)


def _relative(where: str, rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise BuildError(f"{where}: path {rel!r} must be relative and stay inside the group")
    return p


def all_groups() -> dict[str, Group]:
    if not GO_DIR.is_dir():
        return {}
    return {
        d.name: load_group(d)
        for d in sorted(GO_DIR.iterdir())
        if (d / MANIFEST).is_file() and (d / "go.mod").is_file()
    }


def _select(names: Iterable[str] | None) -> list[Group]:
    groups = all_groups()
    if names is None:
        return list(groups.values())
    selected = []
    for n in names:
        if n not in groups:
            raise BuildError(
                f"no group {n!r} (groups: {', '.join(groups) or 'none'}; a group is tools/go/NAME/ "
                f"with go.mod and {MANIFEST})"
            )
        selected.append(groups[n])
    return selected


# ---------------------------------------------------------------------------------------------
# Cache key


def cache_root() -> Path:
    if os.environ.get("COCO_TOOLS_CACHE"):
        return Path(os.environ["COCO_TOOLS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coco-stack" / "tools"


_GO_ENV_KEYS = ("GOVERSION", "GOOS", "GOARCH", "GOAMD64", "GOARM64", "GOEXPERIMENT", "GOFLAGS")
_go_env_cache: dict[Path, str] = {}


def _go_env(group_dir: Path) -> str:
    """`go env` of the toolchain that builds this group (GOTOOLCHAIN may switch per go.mod)."""
    if group_dir not in _go_env_cache:
        try:
            out = subprocess.run(
                ["go", "env", *_GO_ENV_KEYS],
                cwd=group_dir,
                env=_go_environ({}),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except FileNotFoundError as e:
            raise BuildError("go is not on PATH") from e
        except subprocess.CalledProcessError as e:
            raise BuildError(f"`go env` failed in {group_dir}: {e.stderr.strip()}") from e
        _go_env_cache[group_dir] = out
    return _go_env_cache[group_dir]


def _group_files(group_dir: Path) -> Iterator[Path]:
    for path in sorted(group_dir.rglob("*")):
        rel = path.relative_to(group_dir)
        if path.is_file() and not any(p in ("__pycache__", ".git") for p in rel.parts):
            yield path


def _group_key(group: Group) -> str:
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    for path in _group_files(group.dir):
        add("file:" + path.relative_to(group.dir).as_posix(), path.read_bytes())
    add("build.py", Path(__file__).read_bytes())
    add("go env", _go_env(group.dir).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Building


def _go_environ(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["GOWORK"] = "off"
    env.update(extra)
    return env


def _log(msg: str) -> None:
    print(msg, flush=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _module_dir(src: Path, module: str, cache: dict[str, Path]) -> Path:
    """Directory of `module` (at the version the group's go.mod selects) in the module cache."""
    if module not in cache:
        cmd = ["go", "mod", "download", "-json", module]
        r = subprocess.run(cmd, cwd=src, env=_go_environ({}), capture_output=True, text=True)
        info: dict[str, Any] = {}
        with contextlib.suppress(json.JSONDecodeError):
            info = json.loads(r.stdout)
        if r.returncode != 0 or not info.get("Dir"):
            raise BuildError(f"`{' '.join(cmd)}` failed: {info.get('Error') or r.stderr.strip()}")
        cache[module] = Path(info["Dir"])
    return cache[module]


def _prepare(group: Group, binary: Binary, src: Path, modules: dict[str, Path]) -> None:
    for step in binary.prepare:
        where = f"{group.name}/{binary.name} prepare {step['kind']}"
        origin = _module_dir(src, step["module"], modules) if step.get("module") else src
        from_path = origin / _relative(where, step["from"])
        to_path = src / _relative(where, step["to"])
        try:
            if step["kind"] == "copy":
                shutil.copyfile(from_path, to_path)
            else:
                data = json.loads(from_path.read_text())
                if step["kind"] == "pulumi-schema":
                    data["version"] = step["version"]
                to_path.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
        except (OSError, ValueError) as e:
            raise BuildError(f"{where}: {from_path} -> {to_path}: {e}") from e
        _log(
            f"[{group.name}] prepared {step['to']}"
            f" ({step['kind']} of {step.get('module', '.')}/{step['from']})"
        )


def _build_command(binary: Binary, out: Path) -> list[str]:
    cmd = ["go", "build"]
    if binary.trimpath:
        cmd.append("-trimpath")
    cmd += list(binary.flags)
    if binary.tags:
        cmd += ["-tags", ",".join(binary.tags)]
    if binary.ldflags:
        cmd += ["-ldflags", binary.ldflags]
    return [*cmd, "-o", str(out), binary.package]


def _build_group(group: Group) -> dict[str, float]:
    root = cache_root()
    entry = group.entry()
    # Leftovers of this group's builds killed without cleanup (we hold the group's lock).
    stale = re.compile(rf"\.tmp-{re.escape(group.name)}-[0-9a-f]{{16}}-\d+")
    for p in root.glob(".tmp-*"):
        if stale.fullmatch(p.name):
            shutil.rmtree(p, ignore_errors=True)
    tmp = root / f".tmp-{entry.name}-{os.getpid()}"
    src, bin_dir = tmp / "src", tmp / "bin"
    bin_dir.mkdir(parents=True)
    timings: dict[str, float] = {}
    try:
        shutil.copytree(group.dir, src, ignore=shutil.ignore_patterns("__pycache__", ".git"))
        modules: dict[str, Path] = {}
        for binary in group.binaries:
            _prepare(group, binary, src, modules)
            out = bin_dir / binary.name
            cmd = _build_command(binary, out)
            env = _go_environ({"CGO_ENABLED": "1" if binary.cgo else "0", **binary.env})
            _log(f"[{group.name}] building {binary.name} ({binary.package})")
            start = time.monotonic()
            r = subprocess.run(cmd, cwd=src, env=env)
            seconds = time.monotonic() - start
            if r.returncode != 0 or not out.is_file():
                raise BuildError(
                    f"[{group.name}] building {binary.name} failed (exit {r.returncode})"
                    f" after {seconds:.0f} s; "
                    f"the command, run in a staging copy of {group.dir}:\n"
                    f"  CGO_ENABLED={env['CGO_ENABLED']} {_shell(cmd)}"
                )
            timings[binary.name] = seconds
            _log(
                f"[{group.name}] built {binary.name} in {seconds:.1f} s"
                f" ({out.stat().st_size / 1e6:.0f} MB)"
            )
            for f in binary.files:
                origin = _module_dir(src, f["module"], modules) if f.get("module") else src
                name = f.get("name") or PurePosixPath(f["path"]).name
                target = bin_dir / name
                shutil.copyfile(origin / _relative(binary.name, f["path"]), target)
                target.chmod(int(f.get("mode", 0o644)))
                _log(f"[{group.name}] copied {f.get('module', '.')}/{f['path']} to bin/{name}")
        shutil.rmtree(src)
        manifest = {
            "group": group.name,
            "key": group.key(),
            "go": dict(zip(_GO_ENV_KEYS, _go_env(group.dir).splitlines(), strict=False)),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": {k: round(v, 1) for k, v in timings.items()},
        }
        (tmp / ENTRY_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if entry.exists():  # an older, interrupted layout; the lock rules out a concurrent build
            shutil.rmtree(entry)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return timings


def _shell(cmd: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(c) for c in cmd)


def build(groups: Iterable[str] | None = None, *, quiet: bool = False) -> dict[str, Path]:
    """Build every selected group that is not up to date; return {output name: path}."""
    result: dict[str, Path] = {}
    for group in _select(groups):
        if group.up_to_date():
            if not quiet:
                _log(f"[{group.name}] up to date: {group.bin_dir()}")
        else:
            with _lock(cache_root() / f".{group.name}.lock"):
                if group.up_to_date():  # built meanwhile by another process
                    if not quiet:
                        _log(f"[{group.name}] up to date: {group.bin_dir()}")
                else:
                    start = time.monotonic()
                    timings = _build_group(group)
                    _log(
                        f"[{group.name}] {len(timings)} binaries"
                        f" in {time.monotonic() - start:.1f} s: {group.bin_dir()}"
                    )
        for name in group.outputs:
            if name in result:
                raise BuildError(f"{name} is built by two groups")
            result[name] = group.bin_dir() / name
    return result


def ensure(groups: Iterable[str] | None = None) -> dict[str, Path]:
    """Build what is missing (quietly when nothing is) and return {binary name: path}."""
    return build(groups, quiet=True)


def find(name: str) -> Path | None:
    """Path of an up-to-date `name` from any group, or None; never builds (for skip decisions)."""
    try:
        for group in all_groups().values():
            if name in group.outputs and group.up_to_date():
                return group.bin_dir() / name
    except BuildError:
        return None
    return None


def bin_dirs(groups: Iterable[str] | None = None) -> list[Path]:
    """bin/ dirs of the selected groups that are built (nothing is built)."""
    return [g.bin_dir() for g in _select(groups) if g.up_to_date()]


def prune() -> list[Path]:
    root = cache_root()
    keep = {g.entry().name for g in all_groups().values()}
    removed = []
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir() and p.name not in keep and (p / ENTRY_MANIFEST).is_file():
                shutil.rmtree(p)
                removed.append(p)
    return removed


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "groups", nargs="*", metavar="GROUP", help="groups under tools/go/ (default: all)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--print-bin-dirs", action="store_true", help="print bin/ of built groups, build nothing"
    )
    mode.add_argument(
        "--status", action="store_true", help="print each group's cache entry, build nothing"
    )
    mode.add_argument("--prune", action="store_true", help="delete cache entries of old keys")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    selected = args.groups or None
    try:
        if args.print_bin_dirs:
            groups = _select(selected)
            for g in groups:
                if g.up_to_date():
                    print(g.bin_dir())
                else:
                    print(f"{g.name}: not built (python3 tools/build.py {g.name})", file=sys.stderr)
            return 0 if all(g.up_to_date() for g in groups) or selected is None else 1
        if args.status:
            for g in _select(selected):
                state = "built" if g.up_to_date() else "not built"
                print(f"{g.name}: {state}: {g.entry()} ({', '.join(g.outputs)})")
            return 0
        if args.prune:
            for p in prune():
                print(f"removed {p}")
            return 0
        start = time.monotonic()
        build(selected)
        _log(f"done in {time.monotonic() - start:.1f} s; cache {cache_root()}")
        return 0
    except BuildError as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build.py: interrupted (no cache entry was written)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
