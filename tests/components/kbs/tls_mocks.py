"""Realistic pulumi_tls outputs under mocks, made with `cryptography`.

The SDK's mocks return a resource's inputs as its state, so pulumi_tls keys and certificates
come back empty. `tls_outputs` computes what the provider would: keys of the requested
algorithm, certificates with the requested subject, SANs, CA flag, key usages and validity.
`patch_render_mocks` wraps cli.render's mocks with it (monkeypatching
pulumi.runtime.mocks.set_mocks), so `render.run` registers the same graph with real PEMs.
Validity starts at a fixed time, so tokens and digests derived from it are stable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

START = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)

_USAGE = {
    "digital_signature": "digital_signature",
    "key_encipherment": "key_encipherment",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
}
_EKU = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
}


def _pem_private(key: Any) -> tuple[str, str]:
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return pkcs8, pkcs8
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return traditional, pkcs8


def _name(subject: dict[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attrs = []
    if subject.get("organization"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("commonName"):
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attrs)


def _hash_for(key: Any) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _build(
    inputs: dict[str, Any],
    subject: x509.Name,
    public: Any,
    sans: list[str],
    issuer: x509.Name,
    signer: Any,
) -> dict[str, Any]:
    hours = float(inputs.get("validityPeriodHours", 24))
    end = START + dt.timedelta(hours=hours)
    uses = set(inputs.get("allowedUses") or [])
    usage = {v: (k in uses) for k, v in _USAGE.items()}
    is_ca = bool(inputs.get("isCaCertificate"))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(end)
        .add_extension(
            x509.BasicConstraints(
                ca=is_ca,
                path_length=int(inputs["maxPathLength"])
                if is_ca and "maxPathLength" in inputs
                else None,
            ),
            critical=True,
        )
        .add_extension(
            x509.KeyUsage(
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
    )
    ekus = [_EKU[u] for u in sorted(uses) if u in _EKU]
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    cert = builder.sign(signer, _hash_for(signer))
    return {
        **inputs,
        "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "validityEndTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # pulumi rpc.py secret signature


def _unsecret(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == _SECRET_SIG:
            return _unsecret(value.get("value"))
        return {k: _unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(v) for v in value]
    return value


def tls_outputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The provider's outputs for a pulumi_tls resource, or None for other types."""
    inputs = _unsecret(inputs)
    if typ == "tls:index/privateKey:PrivateKey":
        algorithm = inputs.get("algorithm")
        key: Any
        if algorithm == "ED25519":
            key = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "ECDSA":
            curve = {"P224": ec.SECP224R1(), "P256": ec.SECP256R1(), "P384": ec.SECP384R1()}
            key = ec.generate_private_key(curve[inputs.get("ecdsaCurve", "P224")])
        else:
            key = rsa.generate_private_key(65537, int(inputs.get("rsaBits", 2048)))
        pem, pkcs8 = _pem_private(key)
        public = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return {**inputs, "privateKeyPem": pem, "privateKeyPemPkcs8": pkcs8, "publicKeyPem": public}
    if typ == "tls:index/selfSignedCert:SelfSignedCert":
        key = serialization.load_pem_private_key(inputs["privateKeyPem"].encode(), None)
        name = _name(inputs.get("subject"))
        return _build(inputs, name, key.public_key(), inputs.get("dnsNames") or [], name, key)
    if typ == "tls:index/certRequest:CertRequest":
        key = serialization.load_pem_private_key(inputs["privateKeyPem"].encode(), None)
        builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        if inputs.get("dnsNames"):
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in inputs["dnsNames"]]),
                critical=False,
            )
        csr = builder.sign(key, _hash_for(key))
        return {**inputs, "certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}
    if typ == "tls:index/locallySignedCert:LocallySignedCert":
        csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
        ca_key = serialization.load_pem_private_key(inputs["caPrivateKeyPem"].encode(), None)
        try:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = sans.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        return _build(inputs, csr.subject, csr.public_key(), names, ca_cert.subject, ca_key)
    return None


def patch_render_mocks(monkeypatch: Any) -> None:
    """pulumi_tls resources get real outputs in every later render."""
    from tests.conftest import patch_provider_outputs

    patch_provider_outputs(monkeypatch, tls_outputs)
