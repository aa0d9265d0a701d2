"""Keep secrets out of every message: URL credentials and the values of secret keys.

`redact_urls(text)` replaces the `user:password@` (or `token@`) part of every URL in a text
with `[redacted]@`, and every query value and fragment with `[redacted]`; every message path
(ConfigIssue, StackFileError, the CLI's `--url`) passes its text through it.
`scrub_fragments(text, secrets)` hides any part of known secrets in text from outside (a
server's error body). `Scrubber` replaces known secret values (the plain-text values
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

# a URL's query (`?...`) and fragment (`#...`) up to the end of the URL (whitespace or a
# quote): RFC 3986 sections 3.4 and 3.5; tokens travel there too (`?token=...`, OAuth's
# `#access_token=...`)
_URL_TAIL = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*)([?#][^\s'\"]*)")

REDACTED = "[redacted]"
SECRET = "[secret]"


def _tail(tail: str) -> str:
    """A URL's `?query#fragment` with every query value and the fragment redacted; the
    parameter names stay, so the message still says which one to drop."""
    query, hash_, _fragment = tail.partition("#")
    shown = ""
    if query:
        pairs = query[1:].split("&") if query.startswith("?") else []
        shown = "?" + "&".join(
            f"{p.split('=', 1)[0]}={REDACTED}" if "=" in p else (REDACTED if p else "")
            for p in pairs
        )
    return shown + (f"#{REDACTED}" if hash_ else "")


def redact_urls(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by [redacted]: the
    `user:password@` part, every query value and the fragment."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _URL_TAIL.sub(lambda m: m.group(1) + _tail(m.group(2)), text)
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


FRAGMENT = 8  # the shortest piece of a secret `scrub_fragments` recognises


def scrub_fragments(text: str, secrets: Iterable[str]) -> str:
    """`text` with every run that shares FRAGMENT or more consecutive characters with one of
    `secrets` replaced by [secret] (a server may echo a token cut, wrapped or quoted), and
    every whole secret of 4 to 7 characters too. For text from outside (a server's error
    body), where any part of a secret may come back."""
    grams: set[str] = set()
    short: set[str] = set()
    for secret in secrets:
        if len(secret) >= FRAGMENT:
            grams.update(secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1))
        elif len(secret) >= 4:
            short.add(secret)
    hidden = [False] * len(text)
    for i in range(len(text) - FRAGMENT + 1):
        if text[i : i + FRAGMENT] in grams:
            hidden[i : i + FRAGMENT] = [True] * FRAGMENT
    for secret in short:
        start = text.find(secret)
        while start >= 0:
            hidden[start : start + len(secret)] = [True] * len(secret)
            start = text.find(secret, start + 1)
    out: list[str] = []
    for i, c in enumerate(text):
        if not hidden[i]:
            out.append(c)
        elif i == 0 or not hidden[i - 1]:
            out.append(SECRET)
    return "".join(out)
