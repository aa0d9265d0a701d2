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
        self.received: list[tuple[str, str, str | None]] = []  # every request, even refused
        self.redirect_to = ""
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


def _serve(tmp_path, tls: bool) -> Iterator[tuple[str, str, FakeKbs, ed25519.Ed25519PrivateKey]]:
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

        def _reply(self, code: int, body: bytes = b"", location: str = "") -> None:
            self.send_response(code)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            fake.received.append((method, self.path, self.headers.get("Authorization")))
            if fake.redirect_to:
                return self._reply(307, location=fake.redirect_to + self.path)
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
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{httpd.server_address[1]}", _pem(ca), fake, admin_key
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, str, FakeKbs, ed25519.Ed25519PrivateKey]]:
    """The KBS over HTTPS, its certificate issued by a test CA."""
    (tmp_path / "tls").mkdir()
    yield from _serve(tmp_path / "tls", tls=True)


@pytest.fixture
def plain_server(tmp_path) -> Iterator[tuple[str, str, FakeKbs, ed25519.Ed25519PrivateKey]]:
    """The same KBS over plain HTTP: it records every request, authorized or not."""
    (tmp_path / "plain").mkdir()
    yield from _serve(tmp_path / "plain", tls=False)


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


def _cli(tmp_path, url: str, *call: str, ca: str | None = None, flags: tuple[str, ...] = ()):
    """Run `coco kbs ...` through cli.main (exit code and messages as users see them)."""
    from cli import main as cli_main

    token = tmp_path / "token"
    if not token.exists():
        token.write_text("header.payload.signature\n")
    argv = ["kbs", "--url", url, "--token-file", str(token), *flags]
    if ca:
        (tmp_path / "ca.pem").write_text(ca)
        argv += ["--cacert", str(tmp_path / "ca.pem")]
    return cli_main.main([*argv, *call])


class TestPlainHttp:
    """The admin token never travels in clear unless the user passes --insecure-http."""

    def test_client_refuses_http_and_sends_nothing(self, plain_server):
        url, _, fake, key = plain_server
        with pytest.raises(KbsClientError) as info:
            KbsClient(url, _token(key), None).set_resource("default/key/1", b"x")
        assert "plain HTTP" in str(info.value) and "--insecure-http" in info.value.hint
        assert fake.received == []

    def test_cli_refuses_http_exit_2(self, plain_server, tmp_path, capsys):
        url, _, fake, _ = plain_server
        (tmp_path / "v").write_bytes(b"v")
        code = _cli(tmp_path, url, "set-resource", "default/key/1", str(tmp_path / "v"))
        err = capsys.readouterr().err
        assert code == 2
        assert "in clear" in err and "hint:" in err and "--insecure-http" in err
        assert fake.received == []

    def test_insecure_http_flag_allows_it(self, plain_server, tmp_path, capsys):
        url, _, fake, key = plain_server
        (tmp_path / "token").write_text(_token(key))
        (tmp_path / "v").write_bytes(b"v")
        code = _cli(tmp_path, url, "set-resource", "default/key/1", str(tmp_path / "v"),
                    flags=("--insecure-http",))
        assert code == 0, capsys.readouterr().err
        assert fake.calls == [("POST", "/kbs/v0/resource/default/key/1", b"v")]

    def test_redirect_to_http_never_resends_the_token(self, server, plain_server):
        url, ca, fake, key = server
        plain_url, _, plain_fake, _ = plain_server
        fake.redirect_to = plain_url
        with pytest.raises(KbsClientError, match="redirect"):
            KbsClient(url, _token(key), ca).set_resource("default/key/1", b"x")
        assert len(fake.received) == 1
        assert plain_fake.received == []


PASSWORD = "pa55-w0rd-XYZ"


class TestCredentialsInUrl:
    """A URL's user:password never reaches a message, and is never used."""

    @pytest.mark.parametrize(
        ("text", "kept", "gone"),
        [
            ("https://user:pw-1@kbs.example.com:8080/x", ["https://", "@kbs.example.com:8080/x"],
             ["user", "pw-1"]),
            ("http://tok3n@host", ["http://", "@host"], ["tok3n"]),
            ("cannot reach HTTPS://ab:cd@h/p and ftp://c-1@d", ["cannot reach", "@h/p", "@d"],
             ["ab:cd", "c-1"]),
            ("https://u-1:p:q@@h", ["https://", "@h"], ["u-1", ":p:q"]),
        ],
    )
    def test_redact_url(self, text, kept, gone):
        # what replaces the credentials is the redaction helper's choice (to be unified with
        # spec/redact.py); that they are gone and the rest stays is the contract
        from cli.kbs_client import redact_url

        shown = redact_url(text)
        assert all(k in shown for k in kept) and not any(g in shown for g in gone), shown

    @pytest.mark.parametrize("text", ["https://kbs.example.com/a@b", "https://h:8080", "x@y"])
    def test_redact_url_leaves_urls_without_credentials(self, text):
        from cli.kbs_client import redact_url

        assert redact_url(text) == text

    @pytest.mark.parametrize("scheme", ["https", "http"])
    def test_refused_redacted_and_nothing_sent(self, server, plain_server, tmp_path, capsys,
                                               scheme):
        from cli.kbs_client import redact_url

        url, ca, fake, key = server if scheme == "https" else plain_server
        with_creds = url.replace("://", f"://admin:{PASSWORD}@")
        with pytest.raises(KbsClientError) as info:
            KbsClient(with_creds, _token(key), ca, insecure_http=True)
        assert PASSWORD not in str(info.value) + info.value.hint
        assert redact_url(with_creds) in str(info.value)
        (tmp_path / "v").write_bytes(b"v")
        for flags in ((), ("--insecure-http",)):
            code = _cli(tmp_path, with_creds, "set-resource", "a/b/c", str(tmp_path / "v"),
                        ca=ca, flags=flags)
            out, err = capsys.readouterr()
            assert code == 2
            assert PASSWORD not in out + err and redact_url(with_creds) in err
        assert fake.received == []

    def test_initdata_url_with_credentials_refused(self, capsys):
        from cli import main as cli_main
        from cli.kbs_client import redact_url

        url = f"http://u:{PASSWORD}@kbs:8080"
        code = cli_main.main(["initdata", "dev", "--url", url])
        out, err = capsys.readouterr()
        assert code == 2 and PASSWORD not in out + err and redact_url(url) in err

    @pytest.mark.parametrize(
        "url",
        ["https://127.0.0.1:notaport", "ftp://h", "https://", "kbs.example.com",
         "https://h/?q=1", "https://h/#f", "https://h /x", ""],
    )
    def test_malformed_urls_are_clear_errors(self, url, tmp_path, capsys):
        with pytest.raises(KbsClientError):
            KbsClient(url, "t", "ca", insecure_http=True)
        (tmp_path / "v").write_bytes(b"v")
        code = _cli(tmp_path, url, "set-resource", "a/b/c", str(tmp_path / "v"))
        err = capsys.readouterr().err
        assert code == 2 and "unexpected" not in err and "error:" in err

    def test_unreachable_is_its_own_error(self):
        import socket

        from cli.kbs_client import KbsUnreachable

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.raises(KbsUnreachable, match="cannot reach"):
            KbsClient(f"http://127.0.0.1:{port}", "t", None, insecure_http=True,
                      timeout=5).set_resource("a/b/c", b"x")


# (path, accepted): the client answers exactly as the spec's coco:kbs.resources[].path does
RESOURCE_PATHS = [
    ("default/key/1", True),
    ("my-repo/type_1/tag.v2", True),
    ("a/b/c", True),
    ("../../etc", False),
    ("default/../key", False),
    ("a/b/..", False),
    ("a/b/.", False),
    ("./b/c", False),
    (".hidden/b/c", False),
    ("a//c", False),
    ("a/b/", False),
    ("/a/b/c", False),
    ("a/b/c/", False),
    ("a/b/c/d", False),
    ("a/b", False),
    ("", False),
    ("a/b/c?x=1", False),
    ("a/b/c#f", False),
    ("a/b/%2e%2e", False),
    ("a b/c/d", False),
    ("a\\b/c/d", False),
    ("ä/b/c", False),
]


class TestResourcePaths:
    """One validator for spec and client: nothing the spec refuses is sent, with the token."""

    @pytest.mark.parametrize(("path", "accepted"), RESOURCE_PATHS)
    def test_same_answer_as_the_spec(self, server, path, accepted):
        from pydantic import TypeAdapter, ValidationError

        from spec.model import ResourcePath

        try:
            TypeAdapter(ResourcePath).validate_python(path)
            spec_accepts = True
        except ValidationError:
            spec_accepts = False
        assert spec_accepts == accepted  # the table is right about the spec

        url, ca, fake, key = server
        client = KbsClient(url, _token(key), ca)
        if accepted:
            client.set_resource(path, b"x")
            assert fake.calls == [("POST", f"/kbs/v0/resource/{path}", b"x")]
        else:
            with pytest.raises(KbsClientError) as info:
                client.set_resource(path, b"x")
            assert info.value.hint
            assert fake.received == []

    def test_cli_refuses_before_reading_the_value_or_the_token(self, server, tmp_path, capsys):
        url, ca, fake, _ = server
        code = _cli(tmp_path, url, "set-resource", "../../etc/shadow", str(tmp_path / "nofile"),
                    ca=ca)
        err = capsys.readouterr().err
        assert code == 2 and "segment" in err and "hint:" in err
        assert fake.received == []

    @pytest.mark.parametrize("path", ["a/b/c\n", "a/b/c\r\nX-Injected: 1", "a/b/c\t"])
    def test_control_characters_never_reach_the_wire(self, server, path):
        # spec.model's segment pattern ends in `$`, which also matches before a final newline
        # (reported to the lead): whichever layer refuses it, it is a clear error, not a crash
        url, ca, fake, key = server
        with pytest.raises(KbsClientError):
            KbsClient(url, _token(key), ca).set_resource(path, b"x")
        assert fake.received == []

    @pytest.mark.parametrize("name", ["../resource/a/b/c", "a/b", "", ".x", "a?b"])
    def test_reference_value_names_checked(self, server, name):
        url, ca, fake, key = server
        with pytest.raises(KbsClientError):
            KbsClient(url, _token(key), ca).get_reference_value(name)
        assert fake.received == []


def test_unreachable_kbs_exit_3(tmp_path, capsys):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "v").write_bytes(b"v")
    code = _cli(tmp_path, f"http://127.0.0.1:{port}", "set-resource", "a/b/c",
                str(tmp_path / "v"), flags=("--insecure-http",))
    err = capsys.readouterr().err
    assert code == 3 and "cannot reach" in err and "hint:" in err


@pytest.mark.parametrize("policy_id", ["../x", "a/b", "", ".hidden", "x\n", "a b"])
def test_attestation_policy_id_checked(server, policy_id):
    url, ca, fake, key = server
    with pytest.raises(KbsClientError, match="policy id"):
        KbsClient(url, _token(key), ca).set_attestation_policy("package policy\n", policy_id)
    assert fake.received == []
