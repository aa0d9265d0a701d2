"""A real OCI registry for the payload tests: Debian's docker-registry (distribution 2.8) on
loopback, with token authentication like quay.io and ghcr.io (a 401 names a token realm; the
realm here is a small in-process server that hands anonymous clients a signed JWT, distribution
docs/spec/auth/jwt.md). Test images are written as OCI layouts and pushed with skopeo, an
independent client, so the fetcher reads what a standard tool stored.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVICE = "coco-test-registry"
ISSUER = "coco-test-issuer"
TOOLS = {"docker-registry": "docker-registry", "skopeo": "skopeo"}


def require_registry_tools() -> None:
    """Skip with the apt-get line where docker-registry or skopeo is missing (fail instead under
    COCO_REQUIRE_IMAGE_TESTS=1, as CI runs)."""
    import os

    import pytest

    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        message = f"missing host tools; install them with: apt-get install {' '.join(missing)}"
        if os.environ.get("COCO_REQUIRE_IMAGE_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class TokenServer:
    """Issues a token for every requested scope; records what each request carried."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    requests: list[dict[str, Any]] = field(default_factory=list)

    def token(self, query: dict[str, list[str]]) -> str:
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "",
            "aud": query.get("service", [""])[0],
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": hashlib.sha256(f"{now}{access}".encode()).hexdigest(),
            "access": access,
        }
        der = self.cert.public_bytes(serialization.Encoding.DER)
        headers = {"x5c": [base64.b64encode(der).decode()]}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=headers)


def _self_signed() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    tokens: TokenServer
    storage: Path

    def push(self, layout: Path, repository: str, tag: str) -> None:
        """skopeo copy of an OCI layout, byte for byte (--preserve-digests)."""
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--preserve-digests",
                "--dest-tls-verify=false",
                f"oci:{layout}:{tag}",
                f"docker://{self.host}/{repository}:{tag}",
            ],
            check=True,
            capture_output=True,
        )


@contextmanager
def running_registry(workdir: Path) -> Iterator[Registry]:
    key, cert = _self_signed()
    tokens = TokenServer(key, cert)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            tokens.requests.append({"query": query, "authorization": self.headers["Authorization"]})
            body = json.dumps({"token": tokens.token(query)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    token_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=token_server.serve_forever, daemon=True).start()
    (workdir / "root.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
        "auth": {
            "token": {
                "realm": f"http://127.0.0.1:{token_server.server_address[1]}/token",
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(workdir / "root.pem"),
            }
        },
    }
    (workdir / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen(
        [shutil.which("docker-registry") or "docker-registry", "serve", workdir / "config.yml"],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((workdir / "registry.log").read_text()) from None
                time.sleep(0.1)
        yield Registry(f"127.0.0.1:{port}", tokens, workdir / "storage")
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        token_server.shutdown()


def write_layout(
    layout: Path, tag: str, layers: list[tuple[bytes, str, str]], artifact: bool = False
) -> str:
    """An OCI image layout with one manifest; layers are (blob, media type, title annotation).
    artifact=True writes it the way oras 1.2 pushes a file (empty config, artifactType).
    Returns the manifest digest."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes, media_type: str, title: str = "") -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        descriptor: dict[str, Any] = {
            "mediaType": media_type,
            "digest": f"sha256:{digest}",
            "size": len(data),
        }
        if title:
            descriptor["annotations"] = {"org.opencontainers.image.title": title}
        return descriptor

    if artifact:
        config = put(b"{}", "application/vnd.oci.empty.v1+json")
    else:
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        config = put(json.dumps(image_config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [put(data, media, title) for data, media, title in layers],
    }
    if artifact:
        manifest["artifactType"] = "application/vnd.unknown.artifact.v1"
    descriptor = put(json.dumps(manifest).encode(), manifest["mediaType"])
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return str(descriptor["digest"])
