"""What every rule module shares: the issue collector and the wording helpers."""

from __future__ import annotations

from spec.errors import ConfigIssue


class Collector:
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues

    def error(self, path: str, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(path, message, hint))

    def warn(self, path: str, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(path, message, hint, "warning"))


def an(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""
