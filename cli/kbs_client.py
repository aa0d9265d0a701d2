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

Transport rules: the admin token grants full control of the KBS (every secret, every policy),
so it never travels in clear unless the caller explicitly allows plain HTTP (`--insecure-http`);
redirects are never followed (urllib would resend the Authorization header to the new
location, even an http:// one); a URL carrying `user:password@` is refused (the admin API
authenticates with the token only) and printed redacted; resource paths go through the spec's
own validator (spec.model.validate_resource_path) and reference-value names through the spec's
name rule, before any request.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from components.kbs.config import ATTESTATION_POLICY_ID
from components.kbs.token import sign_admin_token
from spec.errors import CocoError, ExitCode
from spec.redact import REDACTED, redact_urls, scrub_fragments

__all__ = ["KbsClient", "KbsClientError", "KbsUnreachable", "redact_url", "sign_admin_token"]

# one redaction for every message of the project (spec.redact); re-exported under this name
redact_url = redact_urls
# `Authorization: Bearer X`, `auth=Basic X`, `"authorization": "X"` as a reflecting server
# might print them: the value after the scheme word (or after the header name) is redacted
_AUTH_ECHO = re.compile(
    r"(?i)((?:bearer|basic|token)\s+|authorization[\"']?\s*[:=]\s*[\"']?(?!bearer|basic))"
    r"[^\s\"',;]+"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class KbsClientError(CocoError):
    """The KBS refused a request, or the request was refused before it was sent."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(redact_url(message))
        self.hint = redact_url(hint)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        raise KbsClientError(
            f"{req.get_method()} {_path_of(req.full_url)}: the KBS answered HTTP {code}, a "
            f"redirect to {newurl}; the admin token is never resent to another location",
            "pass the KBS's own URL as --url",
        )


def _path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


class KbsUnreachable(KbsClientError):
    """The KBS could not be reached or failed (HTTP 5xx): exit code 3, not the input's fault."""

    exit_code = ExitCode.UNREACHABLE


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class KbsClient:
    """A few admin calls. `ca_pem` is the stack's CA certificate; None only with plain HTTP."""

    def __init__(
        self,
        url: str,
        token: str,
        ca_pem: str | None,
        timeout: float = 30.0,
        *,
        insecure_http: bool = False,
    ):
        self.url = self.check_url(url, insecure_http)
        self.token = token.strip()
        self.timeout = timeout
        handlers: list[Any] = [_NoRedirects()]
        if self.url.startswith("https://"):
            if not ca_pem:
                raise KbsClientError(
                    "an HTTPS KBS needs the stack's CA certificate",
                    "pass --cacert (pulumi stack output kbsCaCert > ca.pem)",
                )
            try:
                context = ssl.create_default_context(cadata=ca_pem)
            except (ssl.SSLError, ValueError) as exc:
                raise KbsClientError(f"the CA certificate cannot be loaded: {exc}") from None
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    @staticmethod
    def check_url(url: str, insecure_http: bool = False, *, for_guests: bool = False) -> str:
        """The base URL to call, or KbsClientError (printed redacted) before anything is sent.
        `for_guests`: the URL guests reach the KBS at (coco initdata), not the admin API."""
        return _check_url(url, insecure_http, for_guests=for_guests)

    def _scrubbed(self, text: str, sent: bytes | None) -> str:
        """A server's text with the admin token and the request's body taken out (a proxy or
        WAF error page may reflect the request's headers and body), any part of them."""
        secrets = [self.token, *self.token.split(".")]
        if sent:
            secrets.append(sent.decode("utf-8", "replace"))
        text = scrub_fragments(text, secrets)
        # and any credential-looking header value a reflecting server printed
        return _AUTH_ECHO.sub(lambda m: f"{m.group(1)}{REDACTED}", text)

    def _call(self, method: str, path: str, body: bytes | None, content_type: str) -> Response:
        request = urllib.request.Request(
            f"{self.url}/kbs/v0/{path}",
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return Response(reply.status, reply.read())
        except KbsClientError as exc:  # a refused redirect: its Location is the server's text
            raise type(exc)(self._scrubbed(str(exc), body), exc.hint) from None
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            # the server's own words help (the KBS explains a refusal), but only scrubbed of
            # the token and the request body, printable, and short
            detail = self._scrubbed(raw.decode("utf-8", "replace"), body)
            detail = "".join(c if c.isprintable() else " " for c in detail).strip()[:300]
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
            raise failed(
                f"cannot reach {self.url}: {exc.reason}",
                "check --cacert: it must be the stack's CA (pulumi stack output kbsCaCert)"
                if wrong_ca
                else "check --url, that the KBS is up and, for HTTPS, that --cacert is the "
                "stack's CA",
            ) from None
        except http.client.InvalidURL as exc:
            raise KbsClientError(f"{method} /kbs/v0/{path!r}: not a valid request: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise KbsUnreachable(f"cannot reach {self.url}: {exc!r}") from None

    def set_resource(self, path: str, value: bytes) -> None:
        check_resource_path(path)
        self._call("POST", f"resource/{path}", value, "application/octet-stream")

    def set_resource_policy(self, rego: str) -> None:
        body = json.dumps({"policy": b64url(rego.encode())}).encode()
        self._call("POST", "resource-policy", body, "application/json")

    def set_attestation_policy(self, rego: str, policy_id: str = ATTESTATION_POLICY_ID) -> None:
        # our own conservative rule, not the KBS's: a plain name like the default "default_cpu"
        # (never a path, never control characters), checked before the token is sent
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", policy_id):
            raise KbsClientError(
                f"policy id {policy_id!r} is not a plain name",
                f"use letters, digits, '_', '.' and '-', for example {ATTESTATION_POLICY_ID!r}",
            )
        body = json.dumps({"policy_id": policy_id, "policy": b64url(rego.encode())}).encode()
        self._call("POST", "attestation-policy", body, "application/json")

    def get_reference_value(self, name: str) -> Any:
        check_reference_name(name)
        reply = self._call("GET", f"reference-value/{name}", None, "application/json")
        try:
            return json.loads(reply.body.decode("utf-8") or "null")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise KbsUnreachable(
                f"GET /kbs/v0/reference-value/{name}: the KBS answered HTTP {reply.status} "
                f"with a body that is not JSON ({type(exc).__name__} at byte "
                f"{getattr(exc, 'pos', getattr(exc, 'start', 0))} of {len(reply.body)})",
                "check that --url is the KBS itself, not a proxy or another service",
            ) from None


def _check_url(url: str, insecure_http: bool, *, for_guests: bool = False) -> str:
    """The base URL to call, or KbsClientError (printed redacted) before anything is sent."""
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port  # ValueError for a port that is not a number
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise KbsClientError(f"{shown!r} is not an http(s) URL", "write https://HOST:PORT")
    if parts.username is not None or parts.password is not None:
        raise KbsClientError(
            f"{shown!r} carries a user or password; it would be written into every pod's "
            "initdata annotation, and guests attest to the KBS without one"
            if for_guests
            else f"{shown!r} carries a user or password; the KBS admin API authenticates with "
            "the admin token only",
            "drop user:password@ from --url",
        )
    if parts.query or parts.fragment or any(c.isspace() for c in url.strip()):
        raise KbsClientError(f"{shown!r} is not a plain base URL", "write https://HOST:PORT[/PATH]")
    if parts.scheme == "http" and not insecure_http:
        raise KbsClientError(
            f"refusing to send the KBS admin token to {shown} over plain HTTP: the token grants "
            "full control of the KBS (every secret and policy) and would travel in clear",
            "use the KBS's https:// URL with --cacert; only for a test KBS you reach over a "
            "trusted link, pass --insecure-http",
        )
    del port
    return url.strip().rstrip("/")


def check_resource_path(path: str) -> None:
    """The spec's own resource path check (coco:kbs.resources[].path), as a client error."""
    from pydantic_core import PydanticCustomError

    from spec.model import validate_resource_path

    try:
        validate_resource_path(path)
    except PydanticCustomError as exc:
        context = exc.context or {}
        raise KbsClientError(exc.message(), str(context.get("hint", ""))) from None
    # the spec's segment pattern ends in `$`, which also matches before a final newline, and
    # urllib strips surrounding whitespace from a URL: the resource would be stored under
    # another path than the one asked for (reported to the lead for spec/model.py)
    if path != path.strip() or not path.isprintable():
        raise KbsClientError(
            f"{path!r} holds whitespace or control characters",
            "write repo/type/tag, for example 'default/key/1'",
        )


def check_reference_name(name: str) -> None:
    """The spec's reference-value name rule (a value that passes, so only the name is judged)."""
    from spec.attestation import reference_value_problem

    problem = reference_value_problem(name, "-")
    if problem:
        raise KbsClientError(problem, "for example snp_launch_measurement")
