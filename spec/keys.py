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
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
