"""Keep secrets out of every message: URL credentials and the values of secret keys.

`redact_urls(text)` replaces the `user:password@` (or `token@`) part of every URL in a text
with `[redacted]@`; every message path (ConfigIssue, StackFileError, the CLI's `--url`)
passes its text through it. `Scrubber` replaces known secret values (the plain-text values
found at secret key paths of a stack) wherever they occur in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# scheme://userinfo@host: RFC 3986 section 3.2.1 (userinfo is everything before the last '@'
# of the authority; the authority ends at the first '/', '?' or '#').
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#'\"]*)@")
# and `user:password@host` written without a scheme (an SSH-style address, a registry)
_BARE_USERINFO = re.compile(r"(?<![\w/:@.-])([\w.%+-]+:[^\s/?#@'\"]+)@(?=[\w\[])")

REDACTED = "[redacted]"
SECRET = "[secret]"


def redact_urls(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by [redacted]."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _BARE_USERINFO.sub(f"{REDACTED}@", text)


def has_credentials(url: str) -> bool:
    """Whether `url` carries a user or password (`scheme://user[:password]@host`)."""
    return _URL_USERINFO.search(url) is not None


_GRAMS = (32, 16, 8, 4)


class Scrubber:
    """Replaces every known secret value (and URL credentials) in a message.

    Secrets are indexed by their first 32, 16, 8 or 4 characters (the longest their length
    allows), so a message is scanned once, position by position, whatever the number of
    secrets: a stack may hold thousands of KBS resources that share a prefix."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # also as repr() escapes them, since messages quote values with !r; values shorter
        # than four characters would mangle every message and are no secret worth the name
        forms = {form for s in secrets for form in (s, repr(s)[1:-1]) if len(form) >= 4}
        self.index: dict[int, dict[str, list[str]]] = {}
        self.done: dict[str, str] = {}
        for form in sorted(forms, key=lambda f: (-len(f), f)):
            gram = next(g for g in _GRAMS if len(form) >= g)
            self.index.setdefault(gram, {}).setdefault(form[:gram], []).append(form)

    def __call__(self, text: str) -> str:
        if text not in self.done:  # many issues share a hint
            self.done[text] = self._scrub(text)
        return self.done[text]

    def _scrub(self, text: str) -> str:
        found: set[str] = set()
        for gram, index in self.index.items():
            for i in range(len(text) - gram + 1):
                for secret in index.get(text[i : i + gram], ()):
                    if text.startswith(secret, i):
                        found.add(secret)
        for secret in sorted(found, key=lambda f: (-len(f), f)):
            text = text.replace(secret, SECRET)
        return redact_urls(text)
