"""initdata: document, annotation and digests against an independent computation."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tomllib

import pytest

from components import initdata
from tests.conftest import ROOT

URL = "https://kbs.coco-kbs.svc.cluster.local:8080"
CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def test_document_structure():
    doc = tomllib.loads(initdata.document(URL, CA, policy="package agent_policy\n"))
    assert doc["version"] == "0.1.0" and doc["algorithm"] == "sha256"
    aa = tomllib.loads(doc["data"]["aa.toml"])
    assert aa == {"token_configs": {"kbs": {"url": URL, "cert": CA}}}
    cdh = tomllib.loads(doc["data"]["cdh.toml"])
    assert cdh == {"kbc": {"name": "cc_kbc", "url": URL, "kbs_cert": CA}}
    assert doc["data"]["policy.rego"] == "package agent_policy\n"
    assert "policy.rego" not in tomllib.loads(initdata.document(URL, CA))["data"]


def test_annotation_is_base64_gzip_and_reproducible():
    text = initdata.document(URL, CA)
    value = initdata.annotation_value(text)
    assert gzip.decompress(base64.b64decode(value)).decode() == text
    assert value == initdata.annotation_value(text)


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_digests_match_an_independent_computation(algorithm):
    text = initdata.document(URL, CA, algorithm=algorithm)
    got = initdata.digests(text, algorithm)
    raw = getattr(hashlib, algorithm)(text.encode()).digest()
    # SNP HOST_DATA is 32 bytes, TDX MRCONFIGID 48 bytes: truncate at the end or pad with 0x00
    host_data = raw[:32] if len(raw) >= 32 else raw + b"\x00" * (32 - len(raw))
    mrconfigid = raw[:48] if len(raw) >= 48 else raw + b"\x00" * (48 - len(raw))
    # Azure vTPM: PCR 8 starts at zero and is extended once with the (32-byte) digest
    pcr = hashlib.sha256()
    pcr.update(b"\x00" * 32)
    pcr.update(host_data)
    assert got.digest == raw.hex()
    assert bytes.fromhex(got.snp_host_data) == host_data and len(host_data) == 32
    assert bytes.fromhex(got.tdx_mrconfigid) == mrconfigid and len(mrconfigid) == 48
    assert got.azure_vtpm_pcr8 == pcr.hexdigest()


def test_sha256_mrconfigid_is_zero_padded():
    got = initdata.digests("x", "sha256")
    assert got.tdx_mrconfigid.endswith("00" * 16)
    assert got.tdx_mrconfigid[:64] == hashlib.sha256(b"x").hexdigest()


def test_coco_initdata_command(tmp_path, capsys):
    from tests.cli.test_main import ca_pem

    ca = tmp_path / "ca.pem"
    ca.write_bytes(ca_pem()[0])  # a real certificate: `--cacert` parses it
    from cli import main

    argv = ["initdata", str(ROOT / "stacks" / "Pulumi.dev.yaml"), "--cacert", str(ca)]
    assert main.main([*argv, "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kbsUrl"] == URL
    annotation = out["annotation"][initdata.ANNOTATION]
    text = gzip.decompress(base64.b64decode(annotation)).decode()
    assert text == out["toml"]
    assert out["digests"]["digest"] == hashlib.sha256(text.encode()).hexdigest()


def test_coco_initdata_needs_the_ca_for_https(capsys):
    from cli import main

    assert main.main(["initdata", str(ROOT / "stacks" / "Pulumi.dev.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "need the stack's CA certificate" in err
