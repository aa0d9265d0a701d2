"""Find and read stack files (stacks/Pulumi.<stack>.yaml) without the Pulumi CLI.

`secure:` values cannot be decrypted here. Each becomes a stable placeholder (the same text on
every run, derived from its key path) and its path is recorded, so validation knows it was
stored encrypted and `coco render` can mark it secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spec.errors import StackFileError
from spec.keys import NAMESPACE, join_key, path_of, placeholder


@dataclass(frozen=True)
class StackFile:
    name: str
    path: Path
    project_dir: Path
    config: dict[str, Any]  # full key -> value, secure values replaced by placeholders
    secure_paths: frozenset[str]

    @property
    def secret_keys(self) -> list[str]:
        return secret_keys(self.secure_paths)

    def pulumi_config(self) -> dict[str, str]:
        return pulumi_config(self.config)


def secret_keys(secure_paths: frozenset[str]) -> list[str]:
    """Top-level config keys holding at least one secure value (Pulumi marks whole keys)."""
    return sorted({p.split(".")[0].split("[")[0] for p in secure_paths})


def pulumi_config(config: dict[str, Any]) -> dict[str, str]:
    """The config as the Pulumi language host passes it: strings, objects as JSON; keys
    written with no value (`coco:image:`) are left out, as `pulumi config` does."""
    return {
        key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        for key, value in sorted(config.items())
        if value is not None
    }


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (the later one would silently win)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise StackFileError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1}",
                "a key may appear once per mapping; merge the two entries",
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def find_project_dir(start: Path | None = None, packaged_fallback: bool = True) -> Path:
    """The nearest directory at or above `start` (default: cwd) holding Pulumi.yaml; else, for
    stack names, the checkout this package was installed from."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    packaged = Path(__file__).resolve().parent.parent
    if packaged_fallback and (packaged / "Pulumi.yaml").is_file():
        return packaged
    raise StackFileError(
        "no Pulumi.yaml found in this directory or above",
        "run coco inside the project checkout, or pass a path to a stack file",
    )


def resolve(stack: str, project_dir: Path | None = None) -> tuple[str, Path, Path]:
    """(name, stack file, project dir) for a stack name in stacks/ or a path to a stack file."""
    as_path = Path(stack)
    if as_path.suffix in (".yaml", ".yml") or os.sep in stack:
        if not as_path.is_file():
            raise StackFileError(f"stack file {stack} does not exist")
        name = as_path.name
        for prefix, suffix in (("Pulumi.", ".yaml"), ("Pulumi.", ".yml")):
            if name.startswith(prefix) and name.endswith(suffix):
                name = name[len(prefix) : -len(suffix)]
        try:
            project = find_project_dir(as_path.resolve().parent, packaged_fallback=False)
        except StackFileError:  # a stack file on its own: paths are relative to it
            project = as_path.resolve().parent
        return name, as_path, project
    project = project_dir or find_project_dir()
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")]
            for p in (project / "stacks").glob("Pulumi.*.yaml")
        )
        raise StackFileError(
            f"no stack named {stack!r} (looked for {path})",
            f"known stacks: {', '.join(known) or 'none'}; or pass a path to a stack YAML file",
        )
    return stack, path, project


def _replace_secure(value: Any, path: str, found: set[str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            found.add(path)
            return placeholder(path)
        return {k: _replace_secure(v, join_key(path, str(k)), found) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def load(stack: str, project_dir: Path | None = None) -> StackFile:
    name, path, project = resolve(stack, project_dir)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except StackFileError as exc:
        raise StackFileError(f"{path}: {exc}", exc.hint) from None
    except (OSError, yaml.YAMLError) as exc:
        raise StackFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise StackFileError(f"{path} is not a YAML mapping", "a stack file starts with 'config:'")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: 'config' is not a mapping")
    found: set[str] = set()
    cleaned: dict[str, Any] = {}
    for key, value in config.items():
        key = str(key)
        ns, _, section = key.partition(":")
        root = path_of(section) if ns == NAMESPACE else key
        cleaned[key] = _replace_secure(value, root, found)
    return StackFile(name, path, project, cleaned, frozenset(found))
