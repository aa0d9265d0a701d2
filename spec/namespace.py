"""Config keys that look like ours but are not, and stack names.

A misspelt namespace (`Coco:environment`, `coco.kbs`, `coco_kbs`, `cocoo:kbs`) would make Pulumi
and coco-stack ignore the section silently, so a production stack would run as dev. The rule:
a key outside `coco:` is ours-looking when
- its leading run of letters is within one edit (insert, delete, substitute, case ignored) of
  `coco` and is followed by a separator (`:`, `.`, `_`, `-`, `/`, space) or nothing; or
- it has no namespace at all and names one of our sections, case ignored (`environment`,
  `nodepools`).
Other namespaces (`kubernetes:`, `pulumi:`, `azure-native:`, `aws:`, ...) never match: each is
at least two edits from `coco`.
"""

from __future__ import annotations

import re

from spec.keys import NAMESPACE
from spec.model import SECTIONS

_LEAD = re.compile(r"^([A-Za-z]*)([:._/\s-]+|$)(.*)$", re.DOTALL)
_SECTIONS = {name.lower(): name for name in SECTIONS}

# Pulumi's stack names: tokens.IsName (first character [A-Za-z_.], then [A-Za-z0-9_.-]*,
# pulumi sdk/go/common/tokens/names.go) and at most 100 characters (pkg/backend/diy/store.go
# ParseReference). '.' and '..' pass that rule but name directories, and the stack name
# becomes a folder (build/images/<stack>/), so they are refused too.
_STACK_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.-]{0,99}$")


def _within_one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] <= 1


def looks_like_ours(key: str) -> bool:
    """Whether a config key outside `coco:` looks like a misspelt `coco:` key."""
    if key.startswith(f"{NAMESPACE}:"):
        return False
    if ":" not in key and key.lower() in _SECTIONS:
        return True
    match = _LEAD.match(key)
    return bool(match and match.group(1) and _within_one_edit(match.group(1).lower(), NAMESPACE))


def canonical_key(key: str) -> str | None:
    """The `coco:` key a lookalike most likely meant (`coco.kbs` -> `coco:kbs`), if any."""
    if ":" not in key and key.lower() in _SECTIONS:
        return f"{NAMESPACE}:{_SECTIONS[key.lower()]}"
    match = _LEAD.match(key)
    if not match:
        return None
    for word in re.split(r"[:._/\s\[\]-]+", match.group(3)):  # `coco-stack:kbs` -> kbs
        if word.lower() in _SECTIONS:
            return f"{NAMESPACE}:{_SECTIONS[word.lower()]}"
    return None


def stack_name_problem(name: str) -> str | None:
    """Why `name` cannot be a stack name, or None."""
    if _STACK_NAME.match(name) and name not in (".", ".."):
        return None
    return (
        f"{name[:120]!r} is not a valid stack name: Pulumi stack names have at most 100 "
        "characters, start with a letter, '_' or '.', and hold only letters, digits, '-', '_' "
        "and '.' (and '.' or '..' would name a folder)"
    )
