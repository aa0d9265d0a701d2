"""Config key paths as `pulumi config --path` writes them (`coco:nodePools[1].hosts[0].sshKey`),
which of them hold secrets, and the placeholder a `secure:` value becomes when it cannot be
decrypted. Shared by the stack-file reader, validation and the rules; imports nothing of ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NAMESPACE = "coco"

# The keys whose values are secrets (SecretStr fields in spec.model).
SECRET_FIELD = re.compile(
    r"^coco:(cluster\.kubeconfig|nodePools\[\d+\]\.hosts\[\d+\]\.sshKey"
    r"|kbs\.resources\[\d+\]\.value|nodePools\[\d+\]\.ibmcloud\.apiKey"
    r"|kbs\.seVerifier\.(imageHeader|rootCa|(hostKeyDocuments|certificates|crls)\[\d+\]))$"
)
# A path at, below or above a secret key: values there are never quoted in messages, whatever
# their type (a number given as a KBS resource value, a string where the list of SE host key
# documents belongs, a string where a host's mapping belongs).
# (Indexes are optional: pools and KBS resources are validated one by one, before their index
# is added to the path.)
_I = r"(\[\d+\])?"
_SECRET_ROOT = (
    rf"cluster\.kubeconfig|nodePools{_I}\.hosts{_I}\.sshKey|kbs\.resources{_I}\.value"
    rf"|nodePools{_I}\.ibmcloud\.apiKey|kbs\.seVerifier"
)
_BELOW_SECRET = re.compile(rf"^coco:({_SECRET_ROOT})([.\[].*)?$", re.IGNORECASE)
_ABOVE_SECRET = re.compile(
    rf"^coco:(cluster|nodePools{_I}\.(hosts{_I}|ibmcloud)|kbs\.resources{_I})$",
    re.IGNORECASE,
)
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_sensitive(path: str) -> bool:
    """Whether a value at `path` may hold a secret (at, below or above a secret key), so a
    message must not quote it."""
    return bool(_BELOW_SECRET.match(path) or _ABOVE_SECRET.match(path))


def secret_values(config: object, path: str = "") -> list[str]:
    """Every plain-text string at or below a secret key of a config mapping (full keys ->
    values): what no message may quote. Keys are matched case-insensitively, so a secret under
    a misspelt key (`sshkey`) counts too."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            if not path:
                ns, sep, section = str(key).partition(":")
                child = path_of(section) if sep and ns.lower() == NAMESPACE else str(key)
            else:
                child = join_key(path, str(key))
            found += secret_values(value, child)
    elif isinstance(config, list):
        for index, value in enumerate(config):
            found += secret_values(value, join_key(path, index))
    elif _BELOW_SECRET.match(path) and config is not None:
        found.append(str(config))
    return found


def join_key(path: str, part: int | str) -> str:
    """Append one key or index to a config key path, the way `pulumi config --path` reads it."""
    if isinstance(part, int):
        return f"{path}[{part}]"
    if _PLAIN_KEY.match(part):
        return f"{path}.{part}"
    return f'{path}["{part}"]'  # label keys with dots and slashes


def path_of(section: str, loc: Iterable[int | str] = ()) -> str:
    text = f"{NAMESPACE}:{section}"
    for part in loc:
        text = join_key(text, part)

    return text


def placeholder(path: str) -> str:
    """The stable text that stands for the `secure:` value at `path` when it cannot be
    decrypted (`coco check`, `coco render`)."""
    return f"[secure value of {path}]"
