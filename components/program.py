"""The Pulumi program: read the `coco:` config, validate it, build the stack, export outputs.

`__main__.py` calls `main()` under `pulumi up`; `coco render` calls it under the SDK's mock
monitor. Validation and the support check run before any resource is registered, so a bad stack
creates nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from spec import extras, support
from spec.errors import CocoError, SpecError, StackFileError
from spec.keys import NAMESPACE, path_of
from spec.model import Spec
from spec.namespace import looks_like_ours
from spec.validate import validate


def _parse(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _paths(root: str, value: Any) -> set[str]:
    found = {root}
    if isinstance(value, dict):
        for k, v in value.items():
            found |= _paths(f"{root}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found |= _paths(f"{root}[{i}]", v)
    return found


def read_config() -> tuple[dict[str, Any], frozenset[str]]:
    """Every `coco:` key (and key that looks like one, for validation to refuse) as Pulumi
    passes it, and the key paths stored as secrets."""
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    config: dict[str, Any] = {}
    secure: set[str] = set()
    for key in sorted(k for k in keys if k.startswith(f"{NAMESPACE}:") or looks_like_ours(k)):
        value = _parse(runtime_config.get_config(key))
        config[key] = value
        if runtime_config.is_config_secret(key):
            # Pulumi marks whole top-level keys secret; every path below counts as stored
            # encrypted. `coco check` reads the stack file and is precise per value.
            secure |= _paths(path_of(key.partition(":")[2]), value)
    return config, frozenset(secure)


def stack_file_secure_paths(
    base_dir: Path, stack: str, config: dict[str, Any]
) -> frozenset[str] | None:
    """The exact key paths stored as `secure:` in the stack's file, read with the same loader
    as `coco check`; None when there is no such file or it is not the config Pulumi passed
    (another file rendered under this stack's name).

    Pulumi marks a whole top-level key secret when any value below it is, which would let a
    plain-text SSH key next to a secret one pass: the file says which values are secure.
    Under `pulumi up` the stack file is in the project's stackConfigDir (Pulumi.yaml)."""
    from spec import stackfile, yamlload
    from spec.namespace import stack_name_problem

    if stack_name_problem(stack) is not None:
        return None  # validate() refuses the name; no path is built from it
    try:
        project = yamlload.parse(base_dir / "Pulumi.yaml",
                                 yamlload.read_text(base_dir / "Pulumi.yaml"))[0]
    except StackFileError:
        return None
    folder = project.get("stackConfigDir", ".") if isinstance(project, dict) else "."
    path = base_dir / str(folder) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return None
    sf = stackfile.load(str(path))  # its errors (aliases, lookalike keys...) stop the program
    ours = {k: v for k, v in sf.config.items() if k in config}
    if set(ours) != set(config) or any(
        _paths(path_of(k.partition(":")[2]), v) != _paths(path_of(k.partition(":")[2]), config[k])
        for k, v in ours.items()
    ):
        return None
    return sf.secure_paths


def load_spec(base_dir: Path) -> Spec:
    config, secure = read_config()
    exact = stack_file_secure_paths(base_dir, pulumi.get_stack(), config)
    spec, warnings = validate(
        config,
        stack=pulumi.get_stack(),
        secure_paths=secure if exact is None else exact,
        base_dir=str(base_dir),
        # Pulumi reports secrets per top-level key only; the stack file per value
        exact_secure_paths=exact is not None,
    )
    for warning in warnings:
        pulumi.log.warn(warning.render())
    support.check(spec)
    extras.check(spec)
    return spec


def main(base_dir: Path | None = None) -> None:
    try:
        spec = load_spec(base_dir or Path.cwd())
    except SpecError as exc:
        raise pulumi.RunError(str(exc)) from None
    except CocoError as exc:
        raise pulumi.RunError(f"{exc}\n  hint: {exc.hint}" if exc.hint else str(exc)) from None

    from .stack import CocoStack  # imported late: the component modules import providers

    stack = CocoStack(NAMESPACE, spec, base_dir=base_dir or Path.cwd())
    pulumi.export("environment", spec.environment)
    pulumi.export("runtimeClasses", stack.runtime_classes)
    pulumi.export("pools", stack.pool_summaries)
    pulumi.export("cluster", stack.cluster.outputs)
    if stack.kbs is not None:
        pulumi.export("kbsNamespace", stack.kbs.namespace)
        pulumi.export("kbsUrl", stack.kbs.url)
        pulumi.export("kbsCaCert", stack.kbs.ca_cert_pem)
        pulumi.export("kbsAdminToken", stack.kbs.admin_token)
