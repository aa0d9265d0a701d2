"""`coco diff`: what changes between two `coco render` output directories, as Markdown for a
pull-request comment.

Pure: reads two render directories (resources.json and manifests/), never runs Pulumi. Resources
are matched by (type, name); inputs, parent, dependsOn and stack outputs are compared value by
value with dotted paths (`values.kata-as-coco-runtime.shims.qemu-snp.enabled`); lists of mappings
that share a unique identifying field (name, key, ...) are matched by it, other lists item by
item. Manifests are compared by file name and bytes.

Secrets: the render already replaced every secret value by "[secret]", and this module never
prints anything else for them. Two "[secret]" values are equal here whether or not the secret
behind them changed; that is said in the output, never guessed. Everything is sorted, so the same
two directories always give the same bytes.

Non-goals: this is not `pulumi preview`. No provider computes a diff and nothing is read from a
cloud or cluster; it compares what the program registers under mocks.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spec.errors import CocoError

SECRET = "[secret]"  # cli.render.SECRET; not imported: render imports Pulumi
MAX_VALUE = 120  # characters of one rendered value before it is truncated
MAX_TEXT_LINES = 40  # lines of a multi-line text diff before it is truncated
_KEY_FIELDS = ("name", "key", "path", "mountPath", "containerPort", "port")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class DiffError(CocoError):
    """A directory given to `coco diff` is not a readable `coco render` output."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class _Missing:
    """The side of a change where the path does not exist."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class RenderDir:
    """One `coco render` output directory, loaded."""

    path: Path
    stack: str
    resources: dict[tuple[str, str], dict[str, Any]]
    outputs: dict[str, Any]
    manifests: dict[str, bytes]


@dataclass(frozen=True, order=True)
class Change:
    path: str
    old: Any = field(compare=False)
    new: Any = field(compare=False)


@dataclass(frozen=True)
class ResourceChange:
    type: str
    name: str
    changes: list[Change]
    secrets: list[str]  # paths "[secret]" on both sides: cannot tell whether they changed


@dataclass(frozen=True)
class Diff:
    base: RenderDir
    head: RenderDir
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[ResourceChange]
    outputs: list[Change]
    manifests_added: list[str]
    manifests_removed: list[str]
    manifests_changed: list[str]

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.changed
            or self.outputs
            or self.manifests_added
            or self.manifests_removed
            or self.manifests_changed
        )


def load(path: Path) -> RenderDir:
    """Read a render directory; DiffError says what is wrong with it and how to get a good one."""
    hint = "run `coco render STACK --out DIR` first and pass that DIR"
    if not path.exists():
        raise DiffError(f"{path} does not exist", hint)
    if not path.is_dir():
        raise DiffError(f"{path} is not a directory", hint)
    document_path = path / "resources.json"
    if not document_path.is_file():
        raise DiffError(f"{path} holds no resources.json: it is not `coco render` output", hint)
    from cli.userfiles import read_text

    try:
        document = json.loads(read_text(document_path, "render document", DiffError))
    except DiffError as exc:  # unreadable or not UTF-8: the helper names file and byte
        raise DiffError(str(exc), hint) from None
    except json.JSONDecodeError as exc:
        raise DiffError(f"cannot read {document_path}: {exc}", hint) from None
    if not isinstance(document, dict) or not isinstance(document.get("resources"), list):
        raise DiffError(f"{document_path} has no resources list: not `coco render` output", hint)
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for i, resource in enumerate(document["resources"]):
        if not isinstance(resource, dict) or not all(
            isinstance(resource.get(k), str) for k in ("type", "name")
        ):
            raise DiffError(f"{document_path}: resources[{i}] has no type and name", hint)
        key = (resource["type"], resource["name"])
        if key in resources:
            raise DiffError(f"{document_path}: resource {key[0]} {key[1]} appears twice", hint)
        resources[key] = resource
    manifests: dict[str, bytes] = {}
    folder = path / "manifests"
    if folder.is_dir():
        for file in sorted(folder.iterdir()):
            if file.is_file():
                manifests[file.name] = file.read_bytes()
    outputs = document.get("outputs")
    return RenderDir(
        path=path,
        stack=str(document.get("stack") or "?"),
        resources=resources,
        outputs=outputs if isinstance(outputs, dict) else {},
        manifests=manifests,
    )


def compare(base: RenderDir, head: RenderDir) -> Diff:
    changed: list[ResourceChange] = []
    for key in sorted(base.resources.keys() & head.resources.keys()):
        old, new = base.resources[key], head.resources[key]
        changes: list[Change] = []
        secrets: list[str] = []
        for part in ("parent", "dependsOn"):
            _walk(old.get(part), new.get(part), part, changes, secrets)
        _walk(old.get("inputs", {}), new.get("inputs", {}), "", changes, secrets)
        if changes:
            changed.append(ResourceChange(key[0], key[1], sorted(changes), sorted(secrets)))
    outputs: list[Change] = []
    _walk(base.outputs, head.outputs, "", outputs, [])
    both = base.manifests.keys() & head.manifests.keys()
    return Diff(
        base=base,
        head=head,
        added=[head.resources[k] for k in sorted(head.resources.keys() - base.resources.keys())],
        removed=[base.resources[k] for k in sorted(base.resources.keys() - head.resources.keys())],
        changed=changed,
        outputs=sorted(outputs),
        manifests_added=sorted(head.manifests.keys() - base.manifests.keys()),
        manifests_removed=sorted(base.manifests.keys() - head.manifests.keys()),
        manifests_changed=sorted(k for k in both if base.manifests[k] != head.manifests[k]),
    )


def _join(prefix: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key, ensure_ascii=False)}]"


def _list_key(old: list[Any], new: list[Any]) -> str | None:
    """The field that identifies every mapping in both lists uniquely, if there is one."""
    items = old + new
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for name in _KEY_FIELDS:
        for side in (old, new):
            values = [i.get(name) for i in side]
            if not all(isinstance(v, str | int) for v in values) or len(set(values)) != len(values):
                break
        else:
            return name
    return None


def _walk(old: Any, new: Any, path: str, out: list[Change], secrets: list[str]) -> None:
    if old == new:
        if old == SECRET:
            secrets.append(path)
        elif isinstance(old, dict):
            for k in old:
                _walk(old[k], new[k], _join(path, str(k)), out, secrets)
        elif isinstance(old, list):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                _walk(a, b, f"{path}[{i}]", out, secrets)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(old.keys() | new.keys()):
            _walk(old.get(k, MISSING), new.get(k, MISSING), _join(path, str(k)), out, secrets)
        return
    if isinstance(old, list) and isinstance(new, list):
        key = _list_key(old, new)
        if key is not None:
            by_old = {i[key]: i for i in old}
            by_new = {i[key]: i for i in new}
            for k in sorted(by_old.keys() | by_new.keys(), key=str):
                _walk(
                    by_old.get(k, MISSING),
                    by_new.get(k, MISSING),
                    f"{path}[{key}={k}]",
                    out,
                    secrets,
                )
            return
        if len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                _walk(a, b, f"{path}[{i}]", out, secrets)
            return
    out.append(Change(path or "(value)", old, new))


# Markdown


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def value_text(value: Any, limit: int = MAX_VALUE) -> str:
    """One value as inline Markdown: JSON, truncated with a note when long, secrets redacted."""
    if value is MISSING:
        return "(absent)"
    if value == SECRET:
        return "secret (redacted)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    if len(text) > limit:
        return f"{_code(text[:limit])}… (truncated, {len(text)} characters)"
    return _code(text)


def _change_lines(change: Change) -> list[str]:
    old, new = change.old, change.new
    head = f"- {_code(change.path)}: "
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        if SECRET in (old, new):
            return [head + f"{value_text(old)} -> {value_text(new)}"]
        lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1))[2:]
        note = ""
        if len(lines) > MAX_TEXT_LINES:
            note = f"  (truncated: {len(lines) - MAX_TEXT_LINES} more diff lines)"
            lines = lines[:MAX_TEXT_LINES]
        body = [f"  {line}" for line in lines]
        fence = "````" if any("```" in line for line in lines) else "```"
        result = [head + "text changed", f"  {fence}diff", *body, f"  {fence}"]
        return [*result, note] if note else result
    if _scalars(old) and _scalars(new) and len(value_text(old) + value_text(new)) > MAX_VALUE:
        gone = [v for v in old if v not in new]
        came = [v for v in new if v not in old]
        parts = [f"added {value_text(came)}"] if came else []
        parts += [f"removed {value_text(gone)}"] if gone else []
        return [head + "items " + ("; ".join(parts) if parts else "reordered")]
    return [head + f"{value_text(old)} -> {value_text(new)}"]


def _scalars(value: Any) -> bool:
    return isinstance(value, list) and all(
        v is None or isinstance(v, str | int | float | bool) for v in value
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(diff: Diff) -> str:
    if diff.empty:
        return "No changes."
    return (
        f"Resources: {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} changed; outputs: {_count(len(diff.outputs), 'change')}; "
        f"manifests: {len(diff.manifests_added)} added, {len(diff.manifests_removed)} removed, "
        f"{len(diff.manifests_changed)} changed."
    )


def _resource_line(resource: dict[str, Any]) -> str:
    parent = resource.get("parent")
    under = f" (parent {_code(str(parent))})" if parent else ""
    return f"- {_code(resource['type'])} {_code(resource['name'])}{under}"


def secret_count(render: RenderDir) -> int:
    found = 0

    def count(value: Any) -> None:
        nonlocal found
        if value == SECRET:
            found += 1
        elif isinstance(value, dict):
            for v in value.values():
                count(v)
        elif isinstance(value, list):
            for v in value:
                count(v)

    for resource in render.resources.values():
        count(resource.get("inputs"))
    count(render.outputs)
    return found


def markdown(diff: Diff) -> str:
    """The pull-request comment: header, summary count line, sections, notes."""
    out = [
        f"### coco diff: stack {_code(diff.base.stack)} (base) -> stack "
        f"{_code(diff.head.stack)} (head)",
        "",
        summary_line(diff),
        "",
    ]
    from cli.danger import dangerous  # it reads this module's types

    risky = dangerous(diff)
    if risky:
        out += [
            f"> [!CAUTION]\n> **Dangerous: {_count(len(risky), 'change')} replace or delete "
            "stateful objects (data, keys or workloads are lost):**",
            *(f"> - {d.action} {_code(d.type)} {_code(d.name)}: {d.reason}" for d in risky),
            "",
        ]
    if diff.added:
        out += ["#### Added", "", *(_resource_line(r) for r in diff.added), ""]
    if diff.removed:
        out += ["#### Removed", "", *(_resource_line(r) for r in diff.removed), ""]
    if diff.changed:
        out += ["#### Changed", ""]
        for rc in diff.changed:
            out.append(f"- {_code(rc.type)} {_code(rc.name)}")
            for change in rc.changes:
                out += [f"  {line}" if line else line for line in _change_lines(change)]
            for path in rc.secrets:
                out.append(
                    f"  - {_code(path or '(value)')}: secret (redacted): cannot tell whether it "
                    "changed"
                )
        out.append("")
    if diff.outputs:
        out += ["#### Outputs changed", ""]
        for change in diff.outputs:
            out += _change_lines(change)
        out.append("")
    if diff.manifests_added or diff.manifests_removed or diff.manifests_changed:
        out += ["#### Manifests", ""]
        out += [f"- added {_code(m)}" for m in diff.manifests_added]
        out += [f"- removed {_code(m)}" for m in diff.manifests_removed]
        out += [f"- changed {_code(m)}" for m in diff.manifests_changed]
        out.append("")
    secrets = secret_count(diff.head)
    out += [
        "> This compares `coco render` outputs (the program run under the Pulumi SDK's mock "
        "monitor), not `pulumi preview`: no provider computed this diff and nothing was read "
        "from a cloud or cluster.",
        f"> Secret values are redacted in both renders ({_count(secrets, 'secret value')} in "
        "head): a change to a secret alone does not show here.",
    ]
    return "\n".join(out) + "\n"


def diff_dirs(base: Path, head: Path) -> Diff:
    return compare(load(base), load(head))
