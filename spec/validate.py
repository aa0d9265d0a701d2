"""Turn the raw `coco:` config of a stack into a validated `Spec`, or every problem at once.

Three passes, each collecting `ConfigIssue`s with the full key path (`coco:nodePools[1].tee`):
1. top-level keys: unknown `coco:` keys (with a did-you-mean), missing required sections;
2. structure and types, per section and per pool (pydantic, strict), so one broken pool does not
   hide the problems of the others;
3. rules across fields and against the TEE catalogue, on every section that passed 2.
Nothing here touches Pulumi; the program calls `validate()` before registering any resource.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from spec import model as spec
from spec import rules, runtime_plan
from spec.errors import ConfigIssue, SpecError
from spec.keys import (
    NAMESPACE,
    SECRET_FIELD,
    is_sensitive,
    path_of,
    placeholder,
    secret_values,
)
from spec.namespace import canonical_key, looks_like_ours, stack_name_problem
from spec.redact import Scrubber

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "list_type": "a list",
    "float_type": "a number",
}
_YAML_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "a mapping",
    list: "a list",
    type(None): "null",
}


def _model_at(root: Any, loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the key at `loc` (for listing valid keys)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            by_alias = {f.alias or n: f for n, f in current.model_fields.items()}
            if part not in by_alias:
                return None
            current = by_alias[part].annotation
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """list[X] -> X, X | None -> X, Annotated[X, ...] -> X."""
    args = getattr(tp, "__args__", None)
    origin = getattr(tp, "__origin__", None)
    if origin in (list, tuple) and args:
        return _unwrap(args[0])
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _unwrap(rest[0])
    if hasattr(tp, "__metadata__"):
        return _unwrap(tp.__origin__)
    return tp


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _closest(word: str, choices: Iterable[str]) -> str | None:
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:  # a case slip is the likeliest mistake
        return lowered[word.lower()]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return close[0] if close else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = _closest(word, choices)
    return f"did you mean {close!r}? " if close else ""


Loc = tuple[int | str, ...]


def _user_loc(raw: Any, loc: Loc, kind: str) -> tuple[Loc, bool]:
    """The part of pydantic's `loc` that exists in the user's data, and whether pydantic added
    parts of its own beyond it (union members such as `str`/`int`, `[key]`, validator names):
    those errors belong at the user's path."""
    current = raw
    for i, part in enumerate(loc):
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_list or (isinstance(current, dict) and part in current):
            current = current[part]
        elif i == len(loc) - 1 and kind == "missing" and isinstance(current, dict):
            return loc, False
        else:
            return loc[:i], True
    return loc, False


def _shown(given: Any, path: str) -> str:
    """` 'value'` to quote in a message, or nothing: never a container, null, or a value at a
    path that may hold a secret (whatever its type)."""
    if isinstance(given, dict | list) or given is None or is_sensitive(path):
        return ""
    text = repr(given)
    return f" {text[:80]}..." if len(text) > 80 else f" {text}"


def _wrong_shape(section: str, loc: tuple[int | str, ...], raw: Any,
                 errors: list[Mapping[str, Any]]) -> ConfigIssue:
    """One issue for every way a value failed a union of types (`str | int | list`)."""
    path = path_of(section, loc)
    given = _value_at(raw, loc)
    wanted = sorted({_TYPE_NAMES[e["type"]] for e in errors if e["type"] in _TYPE_NAMES})
    got = _YAML_NAMES.get(type(given), type(given).__name__)
    expected = (
        ", ".join(wanted[:-1]) + f" or {wanted[-1]}" if len(wanted) > 1
        else wanted[0] if wanted else "another kind of value"
    )
    return ConfigIssue(
        path,
        f"expected {expected}, got {got}{_shown(given, path)}",
        "fix the value's shape in the stack file; see the config reference in README.md",
    )


def _issue_from_pydantic(
    section: str, root: Any, error: Mapping[str, Any], raw: Any
) -> ConfigIssue:
    loc: tuple[int | str, ...] = _user_loc(raw, tuple(error["loc"]), error["type"])[0]
    path = path_of(section, loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    given = _value_at(raw, loc)
    if kind == "coco":
        return ConfigIssue(path, ctx["message"], ctx["hint"])
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        valid = _keys_of(model) if model else []
        key = str(loc[-1])
        return ConfigIssue(
            path,
            f"unknown key {key!r}",
            f"{_did_you_mean(key, valid)}valid keys here: {', '.join(valid)}",
        )
    if kind == "missing":
        model = _model_at(root, loc[:-1])
        doc = ""
        if model:
            for n, f in model.model_fields.items():
                if (f.alias or n) == loc[-1]:
                    doc = f.description or ""
        return ConfigIssue(path, "required key is missing", f"add it: {doc}".rstrip(": "))
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        shown = _shown(given, path).strip() or "the value"
        return ConfigIssue(
            path,
            f"{shown} is not one of: {', '.join(options)}",
            f"{_did_you_mean(str(given), options) if not is_sensitive(path) else ''}"
            "use one of the values listed",
        )
    if kind in _TYPE_NAMES:
        got = _YAML_NAMES.get(type(given), type(given).__name__)
        return ConfigIssue(
            path,
            f"expected {_TYPE_NAMES[kind]}, got {got}{_shown(given, path)}",
            "fix the value's type in the stack file (quote strings, do not quote numbers "
            "or booleans)",
        )
    if kind in ("too_short", "string_too_short"):
        return ConfigIssue(path, "must not be empty", "give it a value, or remove the key")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        shown = _shown(given, path).strip() or "the value"
        return ConfigIssue(
            path,
            f"{shown} is out of range: {error['msg'].lower()}",
            "use a value within the range; see the config reference in README.md",
        )
    return ConfigIssue(path, error["msg"], "see the config reference in README.md")


def _value_at(raw: Any, loc: tuple[int | str, ...]) -> Any:
    current = raw
    for part in loc:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return None
    return current


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    """One TypeAdapter per section type (building one costs far more than validating)."""
    return TypeAdapter(annotation)


def _check(section: str, annotation: Any, raw: Any, issues: list[ConfigIssue]) -> Any:
    """Validate one section (or one pool) and collect its issues; None when invalid."""
    try:
        return _adapter(annotation).validate_python(raw)
    except ValidationError as exc:
        errors = exc.errors()
    # one mistake, one error: a misspelt key (`sshkey`) is "unknown, did you mean sshKey", and
    # the key it meant is not also reported missing
    meant: set[tuple[int | str, ...]] = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = tuple(error["loc"])
            model = _model_at(annotation, loc[:-1])
            close = _closest(str(loc[-1]), _keys_of(model)) if model else None
            if close is not None:
                meant.add((*loc[:-1], close))
    # errors pydantic reports below the user's path (one per union member) become one issue
    groups: dict[tuple[int | str, ...], list[Mapping[str, Any]]] = {}
    for error in errors:
        loc, beyond = _user_loc(raw, tuple(error["loc"]), error["type"])
        if error["type"] == "missing" and loc in meant:
            continue
        groups.setdefault((*loc, "\0") if beyond else loc, []).append(error)
    for key, group in groups.items():
        if key[-1:] == ("\0",) and len(group) > 1:
            issues.append(_wrong_shape(section, key[:-1], raw, group))
        else:
            issues += [_issue_from_pydantic(section, annotation, e, raw) for e in group]
    return None


def _check_items(
    section: str, model: type[BaseModel], raw: list[Any], issues: list[ConfigIssue]
) -> list[Any]:
    """Validate list items one by one (paths re-rooted under their index); None per bad item."""
    items = []
    for index, item in enumerate(raw):
        found: list[ConfigIssue] = []
        items.append(_check(section, model, item, found))
        root = f"{NAMESPACE}:{section}"
        issues += [
            ConfigIssue(i.path.replace(root, f"{root}[{index}]", 1), i.message, i.hint)
            for i in found
        ]
    return items


def _secure_elsewhere(secure_paths: frozenset[str], issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """`secure:` on a key that holds no secret; not for keys already reported unknown (a
    misspelt `sshkey` is one mistake, reported once, with no advice to weaken the secret)."""
    unknown = [i.path for i in issues if i.message.startswith(("unknown key", "unknown config key",
                                                                 "looks like a coco-stack key"))]
    found = []
    for path in sorted(secure_paths):
        if SECRET_FIELD.match(path) or any(
            path == u or path.startswith((f"{u}.", f"{u}[")) for u in unknown
        ):
            continue
        found.append(
            ConfigIssue(
                path,
                "stored as a secret, but this key is not secret, so its value would reach "
                "resource inputs and logs as plain text",
                "check the key path: coco-stack keeps secrets only in coco:cluster.kubeconfig, "
                "coco:nodePools[].hosts[].sshKey, coco:nodePools[].ibmcloud.apiKey, "
                "coco:kbs.resources[].value and coco:kbs.seVerifier",
            )
        )
    return found


def _follows_from(issue: ConfigIssue, misplaced: list[ConfigIssue]) -> bool:
    """Whether `issue` only repeats a misplaced `secure:` (one mistake, one error): an issue at
    or below that key checks the placeholder, not the user's value, and so does any issue that
    quotes the placeholder elsewhere (a k3s server naming the host)."""
    for bad in misplaced:
        if issue.path == bad.path or issue.path.startswith((f"{bad.path}.", f"{bad.path}[")):
            return True
        if placeholder(bad.path) in issue.message or placeholder(bad.path) in issue.hint:
            return True
    return False


def validate(
    config: Mapping[str, Any],
    *,
    stack: str,
    secure_paths: frozenset[str] = frozenset(),
    base_dir: str | None = None,
    exact_secure_paths: bool = True,
) -> tuple[spec.Spec, list[ConfigIssue]]:
    """Validate the raw config of one stack.

    `config` maps full config keys (`coco:cluster`) to their values; keys of other namespaces
    (`kubernetes:context`, ...) are ignored. `secure_paths` lists the key paths whose values were
    stored encrypted (`secure:`), so plain-text secrets can be refused; with `exact_secure_paths`
    (a stack file read value by value) `secure:` on a key that is not a secret is refused too.
    Returns the spec and the warnings; raises SpecError with every error found.
    """
    issues: list[ConfigIssue] = []
    problem = stack_name_problem(stack)
    if problem is not None:
        issues.append(ConfigIssue("(stack name)", problem, "rename the stack, e.g. 'dev'"))
    sections: dict[str, Any] = {}
    for key in sorted(config):
        ns, sep, name = key.partition(":")
        if looks_like_ours(key):
            meant = canonical_key(key)
            issues.append(
                ConfigIssue(
                    key[:100],
                    "looks like a coco-stack key but is not one, so it would be ignored",
                    (f"did you mean {meant!r}? " if meant else "")
                    + "coco-stack reads "
                    + ", ".join(f"{NAMESPACE}:{s}" for s in spec.SECTIONS)
                    + " (namespace 'coco', then ':')",
                )
            )
            continue
        if not sep or ns != NAMESPACE:
            continue
        if name not in spec.SECTIONS:
            issues.append(
                ConfigIssue(
                    f"{NAMESPACE}:{name}",
                    "unknown config key",
                    f"{_did_you_mean(name, spec.SECTIONS)}coco-stack reads "
                    + ", ".join(f"{NAMESPACE}:{s}" for s in spec.SECTIONS),
                )
            )
            continue
        sections[name] = config[key]

    values: dict[str, Any] = {}
    for name, annotation in spec.SECTIONS.items():
        raw = sections.get(name, spec.DEFAULTS[name])
        if raw is None:
            raw = spec.DEFAULTS[name]
        if name == "nodePools" and isinstance(raw, list):
            values[name] = _check_items(name, spec.NodePool, raw, issues)
        elif name == "kbs" and isinstance(raw, dict) and isinstance(raw.get("resources"), list):
            # resources one by one, so a bad path does not hide the KBS's other rules
            rest = _check(
                name, annotation, {k: v for k, v in raw.items() if k != "resources"}, issues
            )
            items = _check_items(f"{name}.resources", spec.KbsResource, raw["resources"], issues)
            # valid items only: the bad ones are already errors, so no Spec is returned
            values[name] = (
                rest.model_copy(update={"resources": [i for i in items if i is not None]})
                if rest is not None
                else None
            )
            values["kbs.resources"] = items
        else:
            values[name] = _check(name, annotation, raw, issues)

    resolved = rules.apply(
        values, stack=stack, secure_paths=secure_paths, base_dir=base_dir, issues=issues
    )
    if resolved is not None:
        issues += runtime_plan.shared_selector_issues(resolved)
    if exact_secure_paths:
        misplaced = _secure_elsewhere(secure_paths, issues)
        issues = [i for i in issues if not _follows_from(i, misplaced)] + misplaced
    scrub = Scrubber(secret_values(dict(config)))
    issues = sorted({
        ConfigIssue(i.path, scrub(i.message), scrub(i.hint), i.severity) for i in issues
    })
    errors = [i for i in issues if i.severity == "error"]
    if errors or resolved is None:
        raise SpecError(issues)
    return resolved, sorted(i for i in issues if i.severity == "warning")
