"""The KBS's IBM Secure Execution verifier material: one Secret, mounted where Trustee reads it.

Scope: the files the built-in attestation service's SE verifier of the pinned Trustee release
reads (host key documents, IBM's signing certificates and CRLs, an optional root CA, the SE image
header, and the RSA key pair it encrypts the attestation request's measurement key and nonce
with), the Secret that carries them, its volume and mount in the KBS pod, and the environment
the verifier reads. The KBS component (`components.kbs.broker`) adds these to its Deployment
when `coco:kbs.seVerifier` is set.

Non-goals: fetching HKDs, certificates or CRLs from IBM (the user downloads them from IBM Resource
Link and keeps them current), building the SE image or extracting its header (s390x, pvimg;
docs/secure-execution.md), and SE reference values (the attestation policy compares the claims
se.image_phkh, se.attestation_phkh, se.tag; the user supplies them).

Facts, all from confidential-containers/trustee deps/verifier/src/se/ibmse.rs@v0.21.0:
- defaults below /run/confidential-containers/ibmse: hkds/ (every file a host key document),
  certs/ and crls/ (every file), root_ca.crt (used only when it exists), hdr/hdr.bin, and
  rsa/encrypt_key.pem + rsa/encrypt_key.pub;
- the directories, the header and the CRLs are read again for every attestation challenge
  (generate_supplemental_challenge), so a Secret update reaches the verifier without a restart;
  the RSA keys are read once (SeVerifierImpl::new in a OnceCell);
- SE_SKIP_CERTS_VERIFICATION (default false) skips the HKD signature check;
  CERTS_OFFLINE_VERIFICATION (default false) is passed to s390_pv's CertVerifier: true verifies
  with the mounted CRLs instead of downloading them (the download meaning is (unverified): read
  from the upstream README "use CERTS_OFFLINE_VERIFICATION=true to verify the certificates
  offline", not from the s390_pv source);
- the RSA key pair is used by the KBS alone (it encrypts with the public key and decrypts the
  guest's echo with the private key), so the stack generates it (4096 bits, as the upstream
  README's openssl recipe) and no user ever handles it;
- the x86_64 and s390x KBS images both build the SE verifier (kbs/Cargo.toml@v0.21.0:
  all-verifier on x86_64, se-verifier on s390x).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from spec import versions
from spec.model import SeVerifier

SECRET_NAME = "kbs-se-verifier"
VOLUME = "se-verifier"
ROOT = versions.SE_VERIFIER_DIR
# Paths below ROOT, as ibmse.rs@v0.21.0 names them (DEFAULT_SE_* constants)
HKDS = "hkds"
CERTS = "certs"
CRLS = "crls"
ROOT_CA = "root_ca.crt"
HEADER = "hdr/hdr.bin"
PRIVATE_KEY = "rsa/encrypt_key.pem"
PUBLIC_KEY = "rsa/encrypt_key.pub"
RSA_BITS = 4096


@dataclass(frozen=True)
class SeVerifierMount:
    """What the KBS Deployment adds: the Secret (to depend on), a volume, a mount, env."""

    secret: k8s.core.v1.Secret
    volume: k8s.core.v1.VolumeArgs
    mount: k8s.core.v1.VolumeMountArgs
    env: list[k8s.core.v1.EnvVarArgs]


def files(args: SeVerifier) -> dict[str, tuple[str, str]]:
    """Secret key -> (path below ROOT, base64 content) for the user's material, sorted."""
    found: dict[str, tuple[str, str]] = {}
    for prefix, directory, items, suffix in (
        ("hkd", HKDS, args.host_key_documents, "crt"),
        ("cert", CERTS, args.certificates, "crt"),
        ("crl", CRLS, args.crls, "crl"),
    ):
        for i, item in enumerate(items):
            key = f"{prefix}-{i}.{suffix}"
            found[key] = (f"{directory}/{key}", item.get_secret_value())
    found["hdr.bin"] = (HEADER, args.image_header.get_secret_value())
    if args.root_ca is not None:
        found["root-ca.crt"] = (ROOT_CA, args.root_ca.get_secret_value())
    return dict(sorted(found.items()))


def environment(args: SeVerifier) -> dict[str, str]:
    """The verifier's switches; its paths stay at their defaults, where the Secret is mounted."""
    return {
        "CERTS_OFFLINE_VERIFICATION": "true",  # the mounted CRLs, no downloads from the KBS
        "SE_SKIP_CERTS_VERIFICATION": "true" if args.skip_certificate_verification else "false",
    }


def _secret(value: Any) -> pulumi.Output[Any]:
    """Output.secret, typed (the SDK's signature defeats mypy)."""
    return cast(pulumi.Output[Any], cast(Any, pulumi.Output).secret(value))


def deploy(
    name: str,
    args: SeVerifier,
    namespace: str,
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> SeVerifierMount:
    """The RSA key pair, the Secret, and what the KBS pod needs to read them."""
    key = tls.PrivateKey(
        f"{name}-se-request-key",
        algorithm="RSA",
        rsa_bits=RSA_BITS,
        opts=pulumi.ResourceOptions(parent=opts.parent),
    )
    user = files(args)
    data = {k: _secret(content) for k, (_, content) in user.items()}  # already base64
    secret = k8s.core.v1.Secret(
        f"{name}-se-verifier",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=SECRET_NAME, namespace=namespace, labels=dict(labels)
        ),
        type="Opaque",
        data=data,
        # the provider marks tls private keys secret, the SDK's mocks do not: wrap both
        string_data={
            "encrypt-key.pem": _secret(key.private_key_pem),
            "encrypt-key.pub": _secret(key.public_key_pem),
        },
        opts=opts,
    )
    paths = {k: path for k, (path, _) in user.items()}
    paths |= {"encrypt-key.pem": PRIVATE_KEY, "encrypt-key.pub": PUBLIC_KEY}
    volume = k8s.core.v1.VolumeArgs(
        name=VOLUME,
        secret=k8s.core.v1.SecretVolumeSourceArgs(
            secret_name=SECRET_NAME,
            default_mode=0o440,
            items=[k8s.core.v1.KeyToPathArgs(key=k, path=p) for k, p in sorted(paths.items())],
        ),
    )
    mount = k8s.core.v1.VolumeMountArgs(name=VOLUME, mount_path=ROOT, read_only=True)
    env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in environment(args).items()]
    return SeVerifierMount(secret, volume, mount, env)
