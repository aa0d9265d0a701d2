"""Find and read stack files (stacks/Pulumi.<stack>.yaml) without the Pulumi CLI.

`secure:` values cannot be decrypted here. Each becomes a stable placeholder (the same text on
every run, derived from its key path) and its path is recorded, so validation knows it was
stored encrypted and `coco render` can mark it secret.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec import files, yamlload
from spec.errors import ConfigIssue, SpecError, StackFileError
from spec.keys import NAMESPACE, join_key, path_of, placeholder, secret_values
from spec.namespace import canonical_key, looks_like_ours, stack_name_problem
from spec.redact import Scrubber


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
    name, path, project = _resolve(stack, project_dir)
    problem = stack_name_problem(name)
    if problem is not None:
        raise StackFileError(
            problem,
            "rename the stack (or the stack file Pulumi.<stack>.yaml), for example to 'dev' or "
            "'prod-eu'",
        )
    return name, path, project


def _resolve(stack: str, project_dir: Path | None) -> tuple[str, Path, Path]:
    as_path = Path(stack)
    problem = stack_name_problem(stack)
    if problem is not None and not (as_path.suffix in (".yaml", ".yml") or "/" in stack):
        raise StackFileError(problem, "name a stack in stacks/, or pass a path to a stack file")
    if as_path.suffix in (".yaml", ".yml") or os.sep in stack or "/" in stack:
        kind = files.problem(as_path)
        if kind is not None:
            raise StackFileError(
                f"stack file {stack} {kind}",
                "pass a stack file (a regular YAML file, not a directory or device)"
                if not kind.startswith("does not exist") else "",
            )
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
    kind = files.problem(path)
    if kind is not None and not kind.startswith("does not exist"):
        raise StackFileError(f"stack file {path} {kind}", "make it a regular YAML file")
    if kind is not None:
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")]
            for p in (project / "stacks").glob("Pulumi.*.yaml")
        )
        raise StackFileError(
            f"no stack named {stack!r} (looked for {path})",
            f"known stacks: {', '.join(known) or 'none'}; or pass a path to a stack YAML file",
        )
    return stack, path, project


# What Pulumi writes under `secure:`. The passphrase and cloud KMS secrets providers use the
# symmetric crypter: "v1:" + base64 nonce + ":" + base64 AES-256-GCM ciphertext (pulumi
# sdk/go/common/resource/config/crypt.go, symmetricCrypter.EncryptValue; pkg/secrets/cloud
# wraps the same crypter). The Pulumi Cloud provider stores the service's ciphertext as plain
# standard base64 (pkg/secrets/service/manager.go, serviceCrypter.EncryptValue). Anything else
# (`secure: S3CRET-123`) is a plain-text value Pulumi cannot decrypt. Placeholders written as
# `v1:...` by hand (the example stacks' `v1:REPLACE-...`) pass here and fail at `pulumi up`.
_SYMMETRIC = re.compile(r"^v1:\S+$")
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
# at least 12 bytes (16 base64 characters): an AES-GCM nonce alone has 12, so no ciphertext
# is shorter; a short word that happens to be base64 (`hunter22`) is refused
_MIN_BASE64 = 16


def is_ciphertext(text: str) -> bool:
    """Whether `text` has the shape of a Pulumi secure value (never decrypted here)."""
    return bool(_SYMMETRIC.match(text)) or (
        len(text) >= _MIN_BASE64 and bool(_BASE64.match(text))
    )


def _replace_secure(value: Any, path: str, found: set[str], plain: set[str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            found.add(path)
            if not is_ciphertext(value["secure"]):
                plain.add(path)
            return placeholder(path)
        return {
            k: _replace_secure(v, join_key(path, str(k)), found, plain) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replace_secure(v, f"{path}[{i}]", found, plain) for i, v in enumerate(value)]
    return value


# Pulumi's stack-file top-level keys (pkg/workspace/project.go ProjectStack@v3: config,
# secretsprovider, encryptedkey, encryptionsalt, environment).
_TOP_LEVEL = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def load(stack: str, project_dir: Path | None = None) -> StackFile:
    """Read a stack file. Raises StackFileError when it cannot be read as a stack file, and
    SpecError (with every other problem of the config too) for refused YAML structure."""
    name, path, project = resolve(stack, project_dir)
    document, problems = yamlload.parse(path, yamlload.read_text(path))
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise StackFileError(f"{path} is not a YAML mapping", "a stack file starts with 'config:'")
    ours = sorted(
        k for k in document
        if k not in _TOP_LEVEL and (k.startswith(f"{NAMESPACE}:") or looks_like_ours(k))
    )
    if ours:
        raise StackFileError(
            f"{path}: {ours[0]!r} is at the top level of the file, where Pulumi does not read "
            "it as config",
            f"indent it under 'config:' (config:\n  {canonical_key(ours[0]) or ours[0]}: ...)",
        )
    if "config" not in document:
        raise StackFileError(
            f"{path} has no 'config:' mapping",
            "a stack file's settings go under 'config:', for example config:\n  "
            "coco:environment: dev",
        )
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(
            f"{path}: 'config' is not a mapping",
            "write the settings as keys under it: config:\n  coco:environment: dev",
        )
    found: set[str] = set()
    plain: set[str] = set()
    cleaned: dict[str, Any] = {}
    for key, value in config.items():
        ns, _, section = key.partition(":")
        root = path_of(section) if ns == NAMESPACE else key
        cleaned[key] = _replace_secure(value, root, found, plain)
    problems = problems + [
        yamlload.Problem(
            p, 0,
            "is under 'secure:' but is not Pulumi ciphertext, so Pulumi cannot decrypt it "
            "(and the value is in the file as plain text)",
            "remove the plain value from the file and its history, then store it with "
            f"`pulumi config set --path --secret '{p}'` (it writes `secure: v1:...`)",
        )
        for p in sorted(plain)
    ]
    sf = StackFile(name, path, project, cleaned, frozenset(found))
    if problems:
        _refuse(sf, problems)
    return sf


def _refuse(sf: StackFile, problems: list[yamlload.Problem]) -> None:
    """Raise SpecError with the file's structural problems and every error validation finds
    in the rest of it (one run shows all the mistakes)."""
    from spec.validate import validate

    issues = [ConfigIssue(p.path, p.message, p.hint) for p in problems]
    try:
        validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                 base_dir=str(sf.project_dir))
    except SpecError as exc:
        # not again what follows from a refused part (an alias's value counts as missing)
        cut = {p.path for p in problems}
        issues += [
            i for i in exc.issues + exc.warnings
            if not any(i.path == c or i.path.startswith((f"{c}.", f"{c}[")) for c in cut)
        ]
    scrub = Scrubber(secret_values(sf.config))
    raise SpecError([ConfigIssue(i.path, scrub(i.message), scrub(i.hint), i.severity)
                     for i in issues])
