"""What the Trustee KBS reads from disk: kbs-config.toml, policies, reference values, and the
LocalFs layout of its storage. Pure functions, no Pulumi: `components.kbs.broker` mounts
their output.

Formats are those of Trustee v0.21.0 (spec.versions.TRUSTEE_VERSION), read from its source:
- kbs-config.toml: kbs/src/config.rs (KbsConfig, HttpServerConfig, TlsConfig),
  kbs/src/admin/ (AdminConfig, BearerJwtConfig, IssuerConfig, RegexAclConfig),
  kbs/src/attestation/config.rs and coco/builtin.rs, attestation-service/src/ear_token/mod.rs
  (EarTokenConfiguration, TokenSignerConfig), attestation-service/src/rvps/mod.rs (RvpsConfig),
  kbs/src/token/mod.rs (AttestationTokenVerifierConfig), deps/key-value-storage/src/lib.rs
  (StorageBackendConfig), kbs/src/plugins/implementations/resource/backend.rs
  (RepositoryConfig); documented in kbs/docs/config.md.
- LocalFs storage: deps/key-value-storage/src/local_fs/mod.rs stores each key as one file
  `{dir_path}/{namespace}/{key with "/" written as the four characters \\x2F}`.
- Reference values: rvps/src/reference_value.rs (ReferenceValue, stored as its JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import tomli_w

from spec import versions
from spec.attestation import (
    SAMPLE_REFERENCE_VALUES,
    SCALAR_REFERENCE_VALUES,
    ReferenceValue,
    Scalar,
    reference_value_problem,
    rego_problem,
)

__all__ = [
    "SAMPLE_REFERENCE_VALUES",
    "SCALAR_REFERENCE_VALUES",
    "ReferenceValue",
    "Scalar",
    "reference_value_problem",
    "rego_problem",
]

# Where things live inside the KBS pod.
CONFIG_DIR = "/etc/kbs/config"  # ConfigMap kbs-config
CONFIG_FILE = f"{CONFIG_DIR}/kbs-config.toml"
KEYS_DIR = "/etc/kbs/keys"  # Secret kbs-keys
TLS_KEY = f"{KEYS_DIR}/tls.key"
TLS_CERT = f"{KEYS_DIR}/tls.crt"
CA_CERT = f"{KEYS_DIR}/ca.crt"
TOKEN_KEY = f"{KEYS_DIR}/token.key"
TOKEN_CHAIN = f"{KEYS_DIR}/token-chain.pem"
ADMIN_PUBLIC_KEY = f"{KEYS_DIR}/admin.pub"
# The persistent volume; LocalFs keeps one subdirectory per storage namespace below it.
STORAGE_DIR = "/opt/confidential-containers/storage"

PORT = 8080
# Storage namespaces (kbs/docs/config.md "Storage Namespaces in KBS").
NS_KBS = "kbs"  # resource policy, key "resource-policy.rego" (kbs/src/api_server.rs)
NS_REPOSITORY = "repository"  # resources (resource/backend.rs RESOURCE_STORAGE_NAMESPACE)
NS_AS_POLICY = "attestation_service_policy"  # EAR policies "<id>.rego"
NS_REFERENCE_VALUE = "reference_value"  # RVPS (rvps/src/lib.rs)
SEEDED_NAMESPACES = (NS_KBS, NS_REPOSITORY, NS_AS_POLICY, NS_REFERENCE_VALUE)

# File names of policies in their namespaces: PolicyEngine appends ".rego"
# (deps/policy-engine/src/policy/rego.rs policy_suffix); the KBS resource policy id is
# "resource-policy" (api_server.rs KBS_POLICY_ID); the built-in AS evaluates "default_<class>",
# "default_cpu" for CPU TEEs (attestation-service/src/ear_token/broker.rs).
RESOURCE_POLICY_FILE = "resource-policy.rego"
ATTESTATION_POLICY_ID = "default_cpu"
ATTESTATION_POLICY_FILE = f"{ATTESTATION_POLICY_ID}.rego"

# Admin identity: the JWT claims the KBS checks (kbs/src/admin/authentication/bearer_jwt.rs:
# iss and aud when configured, role always) and the endpoints the role may call. The regex must
# start with "^/kbs" and end with "$" (regex_acl.rs).
ADMIN_ROLE = "admin"
ADMIN_AUDIENCE = "kbs-admin"
ADMIN_ENDPOINTS = (
    r"^/kbs/v0/(resource/[^/]+/[^/]+/[^/]+|resource-policy|attestation-policy"
    r"|reference-value(/[^/]+)?)$"
)

# Reference values never expire on their own: the stack replaces them. rvps/src/
# reference_value.rs parses "%Y-%m-%dT%H:%M:%SZ"; a fixed date keeps renders byte-identical.
REFERENCE_VALUE_EXPIRATION = "9999-12-31T23:59:59Z"
REFERENCE_VALUE_VERSION = versions.RVPS_REFERENCE_VALUE_VERSION

def admin_issuer(stack: str) -> str:
    return f"coco-stack/{stack}"


def local_fs_name(key: str) -> str:
    """The file name LocalFs stores `key` under: "/" becomes the four characters \\x2F."""
    return key.replace("/", "\\x2F")


def kbs_config(*, stack: str, insecure_http: bool = False) -> dict[str, Any]:
    """kbs-config.toml as a mapping, every key spelled as the v0.21.0 structs read it."""
    http: dict[str, Any] = {"sockets": [f"0.0.0.0:{PORT}"], "insecure_http": insecure_http}
    if not insecure_http:
        http |= {"private_key": TLS_KEY, "certificate": TLS_CERT, "tls_profile": "intermediate"}
    return {
        "http_server": http,
        # Attestation tokens are only trusted when their header key chains to our CA: the
        # built-in AS signs with the token key whose certificate the CA issued. Never
        # insecure_header_jwk (it would accept a token signed by any key in its own header).
        "attestation_token": {"trusted_certs_paths": [CA_CERT], "insecure_header_jwk": False},
        "attestation_service": {
            "type": "coco_as_builtin",
            "timeout": 5,
            "attestation_token_broker": {
                "duration_min": 5,
                "signer": {"key_path": TOKEN_KEY, "cert_path": TOKEN_CHAIN},
            },
            "rvps_config": {"type": "BuiltIn"},
        },
        "admin": {
            "authorization_mode": "AuthenticatedAuthorization",
            "authentication": {
                "bearer_jwt": {
                    "identity_providers": [
                        {
                            "issuer": admin_issuer(stack),
                            "audience": ADMIN_AUDIENCE,
                            "public_key_uri": ADMIN_PUBLIC_KEY,
                        }
                    ]
                }
            },
            "authorization": {
                "regex_acl": {"acls": [{"role": ADMIN_ROLE, "allowed_endpoints": ADMIN_ENDPOINTS}]}
            },
        },
        "storage_backend": {
            "storage_type": "LocalFs",
            "backends": {"local_fs": {"dir_path": STORAGE_DIR}},
        },
        "plugins": [{"name": "resource", "storage_backend_type": "kvstorage"}],
    }


def kbs_config_toml(*, stack: str, insecure_http: bool = False) -> str:
    return tomli_w.dumps(kbs_config(stack=stack, insecure_http=insecure_http))


def builtin_policy(name: str) -> str:
    """One of our own Rego policies shipped in components/policies/."""
    return (resources.files("components") / "policies" / name).read_text(encoding="utf-8")


def reference_value_record(name: str, value: ReferenceValue) -> str:
    """The JSON the built-in RVPS stores for one reference value (rvps/src/reference_value.rs
    ReferenceValue: version, name, expiration, value). The value keeps its JSON type: the
    default policy (attestation-service ear_default_policy_cpu.rego@v0.21.0) tests measurements
    with `in` against a list and compares some values (major_version, minimum_minor_version,
    tdvfkernel) with `==`/`>=` against a single value (SCALAR_REFERENCE_VALUES, stored as that
    one value), every other name is stored as a list, and the SNP verifier reports TCB
    versions as numbers, so "3" would never equal 3."""
    items = value if isinstance(value, list) else [value]
    stored: Any = list(dict.fromkeys(sorted(items, key=lambda v: (type(v).__name__, str(v)))))
    if name in SCALAR_REFERENCE_VALUES and len(stored) == 1:
        stored = stored[0]
    record = {
        "version": REFERENCE_VALUE_VERSION,
        "name": name,
        "expiration": REFERENCE_VALUE_EXPIRATION,
        "value": stored,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def merge_reference_values(
    *sources: Mapping[str, ReferenceValue],
) -> dict[str, ReferenceValue]:
    """Union of several sources: a name given twice accepts every value given for it."""
    merged: dict[str, ReferenceValue] = {}
    for source in sources:
        for name, value in source.items():
            if name not in merged:
                merged[name] = value
                continue
            old = merged[name]
            items = [*(old if isinstance(old, list) else [old]),
                     *(value if isinstance(value, list) else [value])]
            merged[name] = list(dict.fromkeys(items))
    return merged


def reference_value_files(values: Mapping[str, ReferenceValue]) -> dict[str, str]:
    """LocalFs file name -> stored record, for every reference value (sorted, deterministic)."""
    files = {}
    for name in sorted(values):
        problem = reference_value_problem(name, values[name])
        if problem:
            raise ValueError(problem)
        files[local_fs_name(name)] = reference_value_record(name, values[name])
    return files


def seed_script() -> str:
    """The init container's script: copy what the stack declares into the persistent LocalFs
    store, overwriting, and delete what an earlier revision declared and this one does not (so
    removing a resource from the stack stops its release). Entries written over the admin API
    under other names are kept. Seeds are mounted at /seed/<namespace>/<LocalFs file name>."""
    namespaces = " ".join(SEEDED_NAMESPACES)
    return f"""set -eu
store={STORAGE_DIR}
mkdir -p "$store/.coco-stack"
for ns in {namespaces}; do
  mkdir -p "$store/$ns"
  list="$store/.coco-stack/$ns.list"
  if [ -f "$list" ]; then
    while IFS= read -r name; do
      [ -e "/seed/$ns/$name" ] || rm -f -- "$store/$ns/$name"
    done < "$list"
  fi
  : > "$list.new"
  for f in /seed/$ns/*; do
    [ -e "$f" ] || continue
    name=$(basename -- "$f")
    cat -- "$f" > "$store/$ns/$name.tmp"
    chmod 0640 -- "$store/$ns/$name.tmp"
    mv -f -- "$store/$ns/$name.tmp" "$store/$ns/$name"
    printf '%s\\n' "$name" >> "$list.new"
  done
  mv -- "$list.new" "$list"
done
"""
