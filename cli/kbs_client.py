"""The KBS admin API, from outside the cluster: the admin token, and a small HTTPS client.

Admin requests carry `Authorization: Bearer <JWT>`; the KBS verifies the JWT with the public
key in its `[admin.authentication.bearer_jwt]` identity provider, checks `iss` and `aud` when
configured and the `role` claim against the regex ACL (Trustee kbs/src/admin/@v0.21.0; the
recipe of kbs/config/docker-compose/setup.sh: header {"alg":"EdDSA","typ":"JWT"}, Ed25519
key). The JWT library the KBS uses requires an `exp` claim (jsonwebtoken Validation default).

Endpoints and bodies (kbs/src/api_server.rs@v0.21.0, attestation-service/src/lib.rs):
- POST /kbs/v0/resource/<repo>/<type>/<tag>: the raw resource bytes;
- POST /kbs/v0/resource-policy: {"policy": base64url-no-pad(rego)};
- POST /kbs/v0/attestation-policy: {"policy_id": "default_cpu", "policy": base64url-no-pad};
- GET /kbs/v0/reference-value/<name>: the stored value as JSON.
The server certificate is verified against the stack's CA only (no system trust store).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from components.kbs.config import ATTESTATION_POLICY_ID
from components.kbs.token import sign_admin_token
from spec.errors import CocoError, ExitCode

__all__ = ["KbsClient", "KbsClientError", "KbsUnreachable", "sign_admin_token"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class KbsClientError(CocoError):
    """The KBS refused a request or could not be reached."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class KbsUnreachable(KbsClientError):
    """The KBS could not be reached or failed (HTTP 5xx): exit code 3, not the input's fault."""

    exit_code = ExitCode.UNREACHABLE


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class KbsClient:
    """A few admin calls. `ca_pem` is the stack's CA certificate; None only with plain HTTP."""

    def __init__(self, url: str, token: str, ca_pem: str | None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token.strip()
        self.timeout = timeout
        if self.url.startswith("https://"):
            if not ca_pem:
                raise KbsClientError(
                    "an HTTPS KBS needs the stack's CA certificate",
                    "pass --cacert (pulumi stack output kbsCaCert > ca.pem)",
                )
            self.context: ssl.SSLContext | None = ssl.create_default_context(cadata=ca_pem)
        elif self.url.startswith("http://"):
            self.context = None
        else:
            raise KbsClientError(f"{url!r} is not an http(s) URL", "write https://HOST:PORT")

    def _call(self, method: str, path: str, body: bytes | None, content_type: str) -> Response:
        request = urllib.request.Request(
            f"{self.url}/kbs/v0/{path}",
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self.context
            ) as reply:
                return Response(reply.status, reply.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()[:500]
            failed = KbsUnreachable if exc.code >= 500 else KbsClientError
            raise failed(
                f"{method} /kbs/v0/{path}: HTTP {exc.code} {detail}",
                "check the admin token (pulumi stack output kbsAdminToken --show-secrets)"
                if exc.code in (401, 403)
                else "",
            ) from None
        except urllib.error.URLError as exc:
            # a server certificate the stack's CA did not sign: the --cacert given is wrong (2)
            wrong_ca = isinstance(exc.reason, ssl.SSLCertVerificationError)
            failed = KbsClientError if wrong_ca else KbsUnreachable
            raise failed(f"cannot reach {self.url}: {exc.reason}") from None

    def set_resource(self, path: str, value: bytes) -> None:
        if len(path.split("/")) != 3:
            raise KbsClientError(f"{path!r} is not repo/type/tag", "for example default/key/1")
        self._call("POST", f"resource/{path}", value, "application/octet-stream")

    def set_resource_policy(self, rego: str) -> None:
        body = json.dumps({"policy": b64url(rego.encode())}).encode()
        self._call("POST", "resource-policy", body, "application/json")

    def set_attestation_policy(self, rego: str, policy_id: str = ATTESTATION_POLICY_ID) -> None:
        body = json.dumps({"policy_id": policy_id, "policy": b64url(rego.encode())}).encode()
        self._call("POST", "attestation-policy", body, "application/json")

    def get_reference_value(self, name: str) -> Any:
        reply = self._call("GET", f"reference-value/{name}", None, "application/json")
        return json.loads(reply.body or b"null")
