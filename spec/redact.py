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

REDACTED = "[redacted]"
SECRET = "[secret]"


def redact_urls(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by [redacted]."""
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def has_credentials(url: str) -> bool:
    """Whether `url` carries a user or password (`scheme://user[:password]@host`)."""
    return _URL_USERINFO.search(url) is not None


class Scrubber:
    """Replaces every known secret value (and URL credentials) in a message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret that contains another is replaced whole; very short values
        # ("", "a") would mangle every message and are no secret worth the name
        # (and as repr() escapes them, since messages quote values with !r)
        forms = {form for s in secrets for form in (s, repr(s)[1:-1])}
        self.secrets = sorted({s for s in forms if len(s) >= 3}, key=lambda s: (-len(s), s))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, SECRET)
        return redact_urls(text)
