"""Peer-pod user data for a boot check: what cloud-api-adaptor would hand a pod VM, on a config
disk QEMU attaches, so `coco image boot` (and the podvm boot test) can bring the pod VM up to a
listening agent-protocol-forwarder without any cloud.

The disk is NoCloud-shaped: ISO 9660 labelled `cidata` holding `user-data` (Rock Ridge name),
which the podvm's mount-user-data mounts at /media/cidata where process-user-data reads it
(pkg/paths UserDataPath, cloud-api-adaptor v0.21.0/v0.22.0). The user data is the cloud-config
CAA writes (write_files, parsed strictly by process-user-data): the forwarder's apf.json with a
throwaway TLS key and certificate and a VXLAN pod network, and the initdata (gzip + base64 of the
TOML, pkg/initdata@v0.21.0) holding an aa.toml whose KBS URL goes nowhere.

Non-goals: real KBS settings, cdh.toml, auth.json, policies: the boot check needs the forwarder to
listen, nothing more. The key is generated per boot and never written outside the boot's work
directory.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

INITDATA_TOML = """algorithm = "sha256"
version = "0.1.0"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://kbs.coco-stack.invalid:8080"
'''
"""
AA_TOML = '[token_configs.kbs]\nurl = "http://kbs.coco-stack.invalid:8080"\n'


@dataclass(frozen=True)
class TlsMaterial:
    key_pem: str
    cert_pem: str
    cert_der: bytes  # what the forwarder must present when it serves with this key


def self_signed() -> TlsMaterial:
    """A fresh P-256 key and a one-day self-signed certificate for the forwarder's TLS server."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podvm")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("podvm")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return TlsMaterial(
        key_pem,
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert.public_bytes(serialization.Encoding.DER),
    )


# The empty file the cloud-api-adaptor v0.22.0 daemon adds to the user data when it runs with
# ENABLE_SCRATCH_SPACE=true (pkg/adaptor/cloud/cloud.go, pkg/paths ScratchSpacePath@v0.22.0).
SCRATCH_MARKER = "/run/peerpod/scratch-space.marker"


def peer_pod_user_data(tls: TlsMaterial, *, scratch: bool = False) -> bytes:
    """The cloud-config CAA sends a pod VM: apf.json (TLS material, a VXLAN pod network to the
    worker node at QEMU user-net's host address) and the initdata; with `scratch`, the marker
    that asks the pod VM for scratch space."""
    apf = {
        "pod-network": {
            "podip": "10.244.1.5/32",
            "pod-hw-addr": "0a:58:0a:f4:01:05",
            "interface": "eth0",
            "worker-node-ip": "10.0.2.2/24",
            "tunnel-type": "vxlan",
            "routes": [],
            "neighbors": [],
            "mtu": 1450,
            "index": 0,
            "vxlan-port": 4789,
            "vxlan-id": 555000,
            "dedicated": False,
            "external-net-via-pod-vm": False,
        },
        "pod-namespace": "/run/netns/podns",
        "pod-name": "boot-check",
        "tls-server-key": tls.key_pem,
        "tls-server-cert": tls.cert_pem,
    }
    initdata = base64.b64encode(gzip.compress(INITDATA_TOML.encode(), mtime=0)).decode()
    config = {
        "write_files": [
            {"path": "/run/peerpod/apf.json", "content": json.dumps(apf)},
            {"path": "/run/peerpod/initdata", "content": initdata},
        ]
    }
    if scratch:
        config["write_files"].append({"path": SCRATCH_MARKER, "content": ""})
    return ("#cloud-config\n" + yaml.safe_dump(config, sort_keys=True)).encode()


def cidata_iso(out: Path, user_data: bytes) -> Path:
    """ISO 9660 labelled "cidata" holding `user-data` (Rock Ridge name), made with pycdlib (no
    root, no host tool)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="cidata", rock_ridge="1.09")
    iso.add_fp(io.BytesIO(user_data), len(user_data), "/USERDATA.;1", rr_name="user-data")
    iso.write(str(out))
    iso.close()
    return out
