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
Keys are compared in a normal form, so non-ASCII lookalikes match too (`cocо:` with a Cyrillic
о, `coco：` with a fullwidth colon, `ᴄoco:`, `coco<U+200B>:`): NFKC (fullwidth and compatibility
forms), format characters (zero-width spaces and joiners, bidi marks) removed, confusable
letters of `c` and `o` mapped to ASCII, casefolded; any punctuation or space is a separator.
"""

from __future__ import annotations

import re
import unicodedata

from spec.keys import NAMESPACE
from spec.model import SECTIONS

# confusables of the letters of `coco` that NFKC leaves alone (Unicode confusables.txt,
# https://www.unicode.org/Public/security/latest/confusables.txt): Cyrillic, Greek, Armenian,
# small capitals and other look-alikes of c and o
_CONFUSABLE = str.maketrans({
    "\u0441": "c", "\u0421": "c", "\u03f2": "c", "\u03f9": "c", "\u1d04": "c", "\u217d": "c",
    "\u216d": "c", "\u2ca5": "c", "\u2ca4": "c", "\u0188": "c", "\u023c": "c", "\u00e7": "c",
    "\u043e": "o", "\u041e": "o", "\u03bf": "o", "\u039f": "o", "\u1d0f": "o", "\u0585": "o",
    "\u0555": "o", "\u2c9f": "o", "\u2c9e": "o", "\u00f6": "o", "\u00f8": "o", "\u00f2": "o",
    "\u00f3": "o", "\u00f4": "o", "\u00f5": "o", "\u0ed0": "o", "\u0966": "o", "\u0030": "o",
    "\u1d11": "o", "\u01a1": "o", "\u05e1": "o",
})
_LEAD = re.compile(r"^([^\W\d_]*)([\W_]+|$)(.*)$", re.DOTALL)  # letters, separators, rest
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


def _normal(key: str) -> str:
    """`key` in the form lookalikes are compared in (see the module docstring)."""
    # confusables mapped before NFKC too: it turns some of them (the lunate sigma ϲ) into
    # letters that no longer look like ours
    text = unicodedata.normalize("NFKC", key.translate(_CONFUSABLE))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", text.translate(_CONFUSABLE)).casefold()


def looks_like_ours(key: str) -> bool:
    """Whether a config key outside `coco:` looks like a misspelt `coco:` key."""
    if key.startswith(f"{NAMESPACE}:"):
        return False
    normal = _normal(key)
    if ":" not in normal and normal in _SECTIONS:
        return True
    match = _LEAD.match(normal)
    return bool(match and match.group(1) and _within_one_edit(match.group(1).lower(), NAMESPACE))


def canonical_key(key: str) -> str | None:
    """The `coco:` key a lookalike most likely meant (`coco.kbs` -> `coco:kbs`), if any."""
    normal = _normal(key)
    if ":" not in normal and normal in _SECTIONS:
        return f"{NAMESPACE}:{_SECTIONS[normal]}"
    match = _LEAD.match(normal)
    if not match:
        return None
    for word in re.split(r"[\W_]+", match.group(3)):  # `coco-stack:kbs` -> kbs
        if word in _SECTIONS:
            return f"{NAMESPACE}:{_SECTIONS[word]}"
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
