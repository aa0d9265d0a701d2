"""Reading a stack file's YAML safely: bounded size, UTF-8 checked, no aliases, string keys.

Stack files are written by `pulumi config set` and by hand; they hold secrets in plain text
now and then, so no message here ever quotes the file: errors give line and column only.

Decisions (issue 18):
- libyaml's parser (`yaml.CSafeLoader`) when PyYAML was built with it, else the pure-Python
  `yaml.SafeLoader`; both only build plain data (no Python objects).
- anchors and aliases are refused: `pulumi config set` never writes them, and an alias bomb
  (nested aliases expanding to billions of nodes) or a recursive alias must not reach the
  validator. So are merge keys (`<<:`), which need aliases to be of use. Each is reported at
  its key path with the file's other problems; the aliased value counts as missing.
- mapping keys must be strings (`1:`, `true:`, `null:` or a mapping as key are refused at the
  key path); a key may appear once per mapping; nesting is bounded (MAX_DEPTH).
- files above MAX_BYTES are refused before parsing, with the size and the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from spec import files
from spec.errors import StackFileError
from spec.keys import NAMESPACE, join_key, path_of

MAX_BYTES = 1024 * 1024  # a large real stack is a few kB; 1 MiB leaves room for CA bundles
MAX_DEPTH = 32  # the deepest coco: key is 5 levels below config:

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_NULL = "tag:yaml.org,2002:null"


class StackLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader stack files are read with (libyaml's when available)."""


@dataclass(frozen=True)
class Problem:
    """A structural problem of the YAML document, at a config key path."""

    path: str
    line: int
    message: str
    hint: str


def read_text(path: Path, what: str = "stack file") -> str:
    """The file's text, or StackFileError naming what is wrong (never its content)."""
    kind = files.problem(path)
    if kind is not None:
        raise StackFileError(
            f"{what} {path} {kind}", f"name a {what} (a regular file, not a directory or device)"
        )
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise StackFileError(
                f"{path}: the file has {size} bytes, more than the {MAX_BYTES} bytes (1 MiB) a "
                f"{what} may have",
                f"a {what} holds settings, not data: keep large documents (CA bundles, "
                "policies) in files next to it and give their paths",
            )
        data = files.read_bytes(path, MAX_BYTES)
    except files.NotRegularFile as exc:  # swapped since the check
        raise StackFileError(f"{what} {path} {exc}") from None
    except OSError as exc:
        raise StackFileError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:  # it grew since stat
        raise StackFileError(f"{path}: the file has more than {MAX_BYTES} bytes (1 MiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        raise StackFileError(
            f"{path}: line {line}, column {exc.start - start + 1} (byte {exc.start}) is not "
            "valid UTF-8",
            f"save the {what} as UTF-8; store binary "
            "values base64-encoded, secrets with `pulumi config set --secret`",
        ) from None


def _syntax_error(path: Path, text: str, exc: yaml.YAMLError) -> StackFileError:
    """Line and column of a YAML error, and its kind with any quoted text removed (the
    offending line or token may be a secret)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    else:  # yaml.reader.ReaderError (a character YAML does not allow) has a position
        position = int(getattr(exc, "position", 0) or 0)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
    kind = str(getattr(exc, "problem", None) or "a character YAML does not allow")
    kind = re.sub(r"'[^']*'|\"[^\"]*\"|#\w+|\S*[^\x20-\x7e]\S*", "", kind)
    kind = re.sub(r"\s+", " ", kind).strip(" :,")
    return StackFileError(
        f"{path}: invalid YAML at line {line}, column {column}: {kind}",
        "fix the YAML at that position (indentation, a missing ':' or quote); "
        "`pulumi config set` writes valid stack files",
    )


def parse(path: Path, text: str) -> tuple[Any, list[Problem]]:
    """The document of one stack file and its structural problems (each at a key path)."""
    loader = StackLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        problems: list[Problem] = []
        _Walk(problems).node(node, "", 0)
        return loader.construct_document(node), problems
    except yaml.YAMLError as exc:
        raise _syntax_error(path, text, exc) from None
    except RecursionError:  # a parser without a depth limit of its own
        raise StackFileError(
            f"{path}: the YAML is nested too deeply",
            f"stack files nest at most {MAX_DEPTH} levels",
        ) from None
    finally:
        loader.dispose()


class _Walk:
    """Checks the node graph before construction, and cuts out what it refuses (so the
    constructor never expands an alias or sees a non-string key)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.seen: set[int] = set()
        self.reported: set[int] = set()

    def _problem(self, path: str, node: Node, message: str, hint: str) -> None:
        self.problems.append(Problem(path or "(stack file)", node.start_mark.line + 1,
                                     message, hint))

    def node(self, node: Node, path: str, depth: int) -> Node:
        if id(node) in self.seen:  # a node met twice is an alias (or a recursive one)
            if id(node) in self.reported:  # once per anchor, not once per alias
                return ScalarNode(_NULL, "", node.start_mark, node.end_mark)
            self.reported.add(id(node))
            self._problem(
                path, node,
                f"an alias (*name) at line {node.start_mark.line + 1} repeats an anchored "
                "value; stack files may not use anchors and aliases",
                "write the value out in full at each key (anchors are not kept by "
                "`pulumi config set` either)",
            )
            return ScalarNode(_NULL, "", node.start_mark, node.end_mark)
        self.seen.add(id(node))
        if depth > MAX_DEPTH:
            self._problem(path, node, f"nested more than {MAX_DEPTH} levels deep",
                          "no coco-stack setting nests this deep; check the indentation")
            return ScalarNode(_NULL, "", node.start_mark, node.end_mark)
        if isinstance(node, SequenceNode):
            node.value = [
                self.node(item, join_key(path, i) if path else f"[{i}]", depth + 1)
                for i, item in enumerate(node.value)
            ]
        elif isinstance(node, MappingNode):
            node.value = self._mapping(node, path, depth)
        return node

    def _mapping(self, node: MappingNode, path: str, depth: int) -> list[tuple[Node, Node]]:
        kept: list[tuple[Node, Node]] = []
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._problem(
                    path, key_node, f"a merge key (<<) at line {key_node.start_mark.line + 1}; "
                    "stack files may not use merge keys",
                    "write the merged keys out in full in this mapping",
                )
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                what = (
                    "a mapping" if isinstance(key_node, MappingNode)
                    else "a list" if isinstance(key_node, SequenceNode)
                    else "empty" if key_node.tag == _NULL
                    else f"{key_node.tag.rsplit(':', 1)[-1]} {key_node.value[:40]!r}"
                )
                self._problem(
                    path, key_node,
                    f"a key at line {key_node.start_mark.line + 1} is not a string ({what})",
                    "keys are names: quote a key that YAML reads as a number, boolean or null "
                    "(\"1\": ...), and write nested values below a key, not as the key",
                )
                continue
            key = key_node.value
            here = _child(path, key)
            if key in keys:
                self._problem(here, key_node,
                              f"duplicate key {key!r} at line {key_node.start_mark.line + 1}",
                              "a key may appear once per mapping; merge the two entries")
                continue
            keys.add(key)
            kept.append((key_node, self.node(value_node, here, depth + 1)))
        return kept


def _child(path: str, key: str) -> str:
    """Key paths as users write them: `config` at the top, then full config keys, `coco:`
    keys as `coco:section.key[0]`."""
    if path == "":
        return key
    if path == "config":
        ns, sep, section = key.partition(":")
        return path_of(section) if sep and ns == NAMESPACE else key
    return join_key(path, key)
