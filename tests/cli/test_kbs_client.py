"""`coco kbs` against a local HTTPS server (loopback only) that checks the JWT and bodies."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from cli.kbs import add_parsers
from cli.kbs_client import KbsClient, KbsClientError, sign_admin_token
from components.kbs import config as kbs_config

ISSUER = kbs_config.admin_issuer("test")


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _cert(subject: str, key: Any, issuer_key: Any, issuer: x509.Name | None, ca: bool):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


class FakeKbs:
    """The admin endpoints of the KBS, checking what the real one checks."""

    def __init__(self, admin_public: Any) -> None:
        self.admin_public = admin_public
        self.calls: list[tuple[str, str, bytes]] = []
        self.reference_values = {"snp_launch_measurement": ["aa" * 48]}

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        try:
            claims = jwt.decode(
                header[7:],
                self.admin_public,
                algorithms=["EdDSA"],
                issuer=ISSUER,
                audience=kbs_config.ADMIN_AUDIENCE,
                options={"require": ["exp", "role"]},
            )
        except jwt.InvalidTokenError:
            return False
        return bool(claims["role"] == kbs_config.ADMIN_ROLE)


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, str, FakeKbs, ed25519.Ed25519PrivateKey]]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", ca_key, ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("kbs", server_key, ca_key, ca.subject, ca=False)
    (tmp_path / "server.pem").write_text(_pem(cert))
    (tmp_path / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    admin_key = ed25519.Ed25519PrivateKey.generate()
    fake = FakeKbs(admin_key.public_key())

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: bytes = b"") -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if not fake.authorized(self.headers.get("Authorization")):
                return self._reply(401, b"Admin auth error")
            fake.calls.append((method, self.path, body))
            if method == "GET" and self.path.startswith("/kbs/v0/reference-value/"):
                name = self.path.rsplit("/", 1)[1]
                return self._reply(200, json.dumps(fake.reference_values.get(name)).encode())
            return self._reply(200)

        def do_POST(self) -> None:
            self._handle("POST")

        def do_GET(self) -> None:
            self._handle("GET")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", _pem(ca), fake, admin_key
    finally:
        httpd.shutdown()
        httpd.server_close()


def _token(key: ed25519.Ed25519PrivateKey, issuer: str = ISSUER) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    now = time.time()
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    start = dt.datetime.fromtimestamp(now - 60, dt.UTC).strftime(fmt)
    end = dt.datetime.fromtimestamp(now + 3600, dt.UTC).strftime(fmt)
    return sign_admin_token(pem, issuer=issuer, not_before=start, expires=end)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TestClient:
    def test_admin_calls_and_bodies(self, server):
        url, ca, fake, key = server
        client = KbsClient(url, _token(key), ca)
        client.set_resource("default/key/1", b"\x00secret\xff")
        client.set_resource_policy("package policy\ndefault allow := false\n")
        client.set_attestation_policy("package policy\n# ear\n")
        assert client.get_reference_value("snp_launch_measurement") == ["aa" * 48]

        (m1, p1, b1), (m2, p2, b2), (m3, p3, b3), (m4, p4, _) = fake.calls
        assert (m1, p1, b1) == ("POST", "/kbs/v0/resource/default/key/1", b"\x00secret\xff")
        assert (m2, p2) == ("POST", "/kbs/v0/resource-policy")
        body = json.loads(b2)
        assert set(body) == {"policy"} and "=" not in body["policy"]
        assert b64url_decode(body["policy"]).decode().startswith("package policy")
        assert (m3, p3) == ("POST", "/kbs/v0/attestation-policy")
        body = json.loads(b3)
        assert body["policy_id"] == "default_cpu"
        assert b64url_decode(body["policy"]) == b"package policy\n# ear\n"
        assert (m4, p4) == ("GET", "/kbs/v0/reference-value/snp_launch_measurement")

    def test_wrong_token_refused(self, server):
        url, ca, fake, _ = server
        other = ed25519.Ed25519PrivateKey.generate()
        with pytest.raises(KbsClientError, match="HTTP 401"):
            KbsClient(url, _token(other), ca).set_resource("a/b/c", b"x")
        with pytest.raises(KbsClientError, match="HTTP 401"):
            _, _, _, key = server
            KbsClient(url, _token(key, issuer="someone-else"), ca).set_resource("a/b/c", b"x")
        assert fake.calls == []

    def test_server_verified_against_the_stack_ca_only(self, server):
        url, _, fake, key = server
        other_key = ec.generate_private_key(ec.SECP256R1())
        other_ca = _pem(_cert("other CA", other_key, other_key, None, ca=True))
        with pytest.raises(KbsClientError, match="cannot reach"):
            KbsClient(url, _token(key), other_ca).set_resource("a/b/c", b"x")
        with pytest.raises(KbsClientError):
            KbsClient(url, _token(key), None)
        assert fake.calls == []

    def test_cli(self, server, tmp_path, capsys):
        url, ca, fake, key = server
        (tmp_path / "ca.pem").write_text(ca)
        (tmp_path / "token").write_text(_token(key) + "\n")
        (tmp_path / "value.bin").write_bytes(b"v1")
        parser = argparse.ArgumentParser()
        add_parsers(parser.add_subparsers(dest="command"))
        common = [
            "kbs",
            "--url",
            url,
            "--cacert",
            str(tmp_path / "ca.pem"),
            "--token-file",
            str(tmp_path / "token"),
        ]
        args = parser.parse_args([*common, "set-resource", "r/t/x", str(tmp_path / "value.bin")])
        assert args.func(args) == 0
        args = parser.parse_args([*common, "get-reference-value", "snp_launch_measurement"])
        assert args.func(args) == 0
        assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == ["aa" * 48]
        assert fake.calls[0] == ("POST", "/kbs/v0/resource/r/t/x", b"v1")
