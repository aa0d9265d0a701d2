"""The KBS admin token: an EdDSA JWT the KBS verifies with the public key of its
`[admin.authentication.bearer_jwt]` identity provider (Trustee kbs/src/admin/@v0.21.0; the recipe
of kbs/config/docker-compose/setup.sh: header {"alg":"EdDSA","typ":"JWT"}, Ed25519 key). The JWT
library the KBS uses requires an `exp` claim (jsonwebtoken Validation default). Pure: the KBS
component signs it at deploy time, `coco kbs` reads it back.
"""

from __future__ import annotations

from datetime import datetime

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.kbs.config import ADMIN_AUDIENCE, ADMIN_ROLE


def _epoch(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def sign_admin_token(
    private_key_pem: str, *, issuer: str, not_before: str, expires: str, role: str = ADMIN_ROLE
) -> str:
    """An EdDSA JWT for the KBS admin API, signed with the Ed25519 key in PKCS#8 PEM.

    `not_before` and `expires` are RFC 3339 times taken from the stack (the validity of the KBS
    server certificate): the token is the same on every run and renewed with the certificate.
    Ed25519 signatures are deterministic, so the same inputs give the same token."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the KBS admin key must be an Ed25519 key")
    claims = {
        "iss": issuer,
        "sub": role,
        "aud": [ADMIN_AUDIENCE],
        "role": role,
        "iat": _epoch(not_before),
        "nbf": _epoch(not_before),
        "exp": _epoch(expires),
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": "JWT"})
