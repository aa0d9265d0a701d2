"""Every hostile stack file of the corpus is refused cleanly (issue 18).

Each case must end in our error type (SpecError with the issue at the expected key path, or
StackFileError for a file that cannot be read as a stack file), with the expected message,
within a second, and no message may contain the planted secret marker. Cases marked `one`
must give exactly one error: one mistake, one error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spec.errors import SpecError, StackFileError
from tests.spec.hostile_corpus import CASES, FILE, SECRET, run

# pydantic's own location parts (union members, dict keys, validators) never reach a path
_INTERNAL = ("function-", "union[", "[key]", ".str", ".int", ".bool", "list[", "nullable[")


@pytest.mark.parametrize(("text", "path", "fragment", "one"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_hostile_input_is_refused(text, path, fragment, one, tmp_path: Path) -> None:
    outcome = run(text, tmp_path)
    error = outcome.error
    assert isinstance(error, SpecError | StackFileError), f"not refused cleanly: {error!r}"
    assert outcome.seconds < 1.0, f"took {outcome.seconds:.2f} s"
    for message in outcome.messages:
        assert SECRET not in message, f"the secret leaked: {message}"
    if path == FILE:
        assert isinstance(error, StackFileError), "\n".join(outcome.messages)
        assert fragment in "\n".join(outcome.messages), "\n".join(outcome.messages)
        return
    assert isinstance(error, SpecError), "\n".join(outcome.messages)
    at_path = [i for i in error.issues if i.path == path]
    assert at_path, f"no error at {path}:\n" + "\n".join(outcome.messages)
    assert any(fragment in i.render() for i in at_path), "\n".join(i.render() for i in at_path)
    for issue in error.issues:
        assert not any(part in issue.path for part in _INTERNAL), issue.render()
    if one:
        assert len(error.issues) == 1, "\n".join(i.render() for i in error.issues)


def test_the_corpus_is_large_and_covers_every_class() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) > 100
    for prefix in ("utf8-", "yaml-", "secret-", "url-", "ns-", "top-level", "alias-", "merge-",
                   "key-", "dup-", "deep-", "too-large", "host-", "dup-host", "refvalue",
                   "typo-", "stack-"):
        assert any(i.startswith(prefix) for i in ids), prefix
