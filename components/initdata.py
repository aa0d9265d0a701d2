"""initdata: the configuration a confidential guest is started with, and its digests.

Format: Trustee kbs/docs/initdata.md@v0.21.0. The initdata is a TOML document with `version`,
`algorithm` and a `[data]` table of file name -> file contents; the guest reads
"aa.toml" (attestation agent: `[token_configs.kbs]` url and cert), "cdh.toml" (confidential data
hub: `[kbc]` name "cc_kbc", url, kbs_cert) and optionally "policy.rego" (the kata agent policy).
Kata takes it in the pod annotation io.katacontainers.config.hypervisor.cc_init_data as
base64(gzip(TOML)); cloud-api-adaptor takes the same value as INITDATA.

The digest is the `algorithm` hash of the exact TOML bytes. It is bound to the TEE evidence by
(initdata.md "Integrity Binding", ../shared/facts/trustee-kbs.md):
- SNP: HOST_DATA, 32 bytes: the digest truncated or zero-padded to 32 bytes;
- TDX: MRCONFIGID, 48 bytes: truncated or zero-padded to 48 bytes;
- Azure vTPM (peer pods): PCR 8 extended once from zero: sha256(32 zero bytes || digest
  truncated or zero-padded to 32 bytes).
Pure functions, deterministic: gzip without a timestamp or file name.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass
from typing import Literal

import tomli_w

from spec import versions

ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"
VERSION = versions.INITDATA_VERSION
Algorithm = Literal["sha256", "sha384", "sha512"]
ALGORITHMS: tuple[Algorithm, ...] = ("sha256", "sha384", "sha512")


def fit(digest: bytes, size: int) -> bytes:
    """initdata.md: truncate at the end, or pad with zero bytes at the end, to `size` bytes."""
    return digest[:size].ljust(size, b"\0")


def aa_toml(url: str, ca_cert: str | None) -> str:
    kbs: dict[str, str] = {"url": url}
    if ca_cert:
        kbs["cert"] = ca_cert
    return tomli_w.dumps({"token_configs": {"kbs": kbs}})


def cdh_toml(url: str, ca_cert: str | None) -> str:
    kbc: dict[str, str] = {"name": "cc_kbc", "url": url}
    if ca_cert:
        kbc["kbs_cert"] = ca_cert
    return tomli_w.dumps({"kbc": kbc})


def document(
    url: str,
    ca_cert: str | None,
    *,
    policy: str | None = None,
    algorithm: Algorithm = "sha256",
) -> str:
    """The initdata TOML for guests that talk to the KBS at `url`, trusting `ca_cert` (PEM;
    None only for a plain-HTTP development KBS)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown initdata algorithm {algorithm!r}; use {', '.join(ALGORITHMS)}")
    data = {"aa.toml": aa_toml(url, ca_cert), "cdh.toml": cdh_toml(url, ca_cert)}
    if policy is not None:
        data["policy.rego"] = policy
    return tomli_w.dumps(
        {"version": VERSION, "algorithm": algorithm, "data": data}, multiline_strings=True
    )


def annotation_value(toml_text: str) -> str:
    """base64(gzip(TOML)), with a zero gzip timestamp so the value is reproducible."""
    packed = gzip.compress(toml_text.encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode("ascii")


@dataclass(frozen=True)
class Digests:
    algorithm: str
    digest: str  # hex of the full digest
    snp_host_data: str  # hex, 32 bytes
    tdx_mrconfigid: str  # hex, 48 bytes
    azure_vtpm_pcr8: str  # hex, 32 bytes

    def as_dict(self) -> dict[str, str]:
        return {
            "algorithm": self.algorithm,
            "digest": self.digest,
            "snpHostData": self.snp_host_data,
            "tdxMrConfigId": self.tdx_mrconfigid,
            "azureVtpmPcr8": self.azure_vtpm_pcr8,
        }


def digests(toml_text: str, algorithm: Algorithm = "sha256") -> Digests:
    raw = hashlib.new(algorithm, toml_text.encode("utf-8")).digest()
    pcr8 = hashlib.sha256(bytes(32) + fit(raw, 32)).digest()
    return Digests(
        algorithm=algorithm,
        digest=raw.hex(),
        snp_host_data=fit(raw, 32).hex(),
        tdx_mrconfigid=fit(raw, 48).hex(),
        azure_vtpm_pcr8=pcr8.hex(),
    )


def summary(
    url: str, ca_cert: str | None, *, policy: str | None = None, algorithm: Algorithm = "sha256"
) -> dict[str, object]:
    """What `coco initdata STACK` prints: the TOML, the annotation and every digest."""
    text = document(url, ca_cert, policy=policy, algorithm=algorithm)
    return {
        "kbsUrl": url,
        "toml": text,
        "annotation": {ANNOTATION: annotation_value(text)},
        "digests": digests(text, algorithm).as_dict(),
    }
