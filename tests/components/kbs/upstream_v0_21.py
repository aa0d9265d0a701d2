"""Facts read from Trustee v0.21.0 (commit 258ea4acb7b9bd865fce5c63a539f2120dba8298), used as
test fixtures. Each set names the files it was collected from; nothing here is copied code.

CONFIG_KEYS: every kbs-config.toml key path ("[]" marks an array element) that appears in
  kbs/config/kbs-config.toml, kbs/config/kbs-config-grpc.toml,
  kbs/config/docker-compose/kbs-config.toml, kbs/config/kubernetes/base/kbs-config.toml and the
  examples and property tables of kbs/docs/config.md (sections HTTP Server, Attestation Token,
  Built-In CoCo AS, AttestationTokenBroker, TokenSignerConfig, RVPS, Admin API, Storage
  Backend, Plugins/Resource).
ENUMS: the accepted values of tagged fields, from the serde enums in kbs/src/admin/mod.rs
  (AdminConfig), kbs/src/attestation/config.rs (AttestationServiceConfig),
  attestation-service/src/rvps/mod.rs (RvpsConfig), deps/key-value-storage/src/lib.rs
  (KeyValueStorageType), kbs/src/plugins/plugin_manager.rs (PluginsConfig),
  kbs/src/plugins/implementations/resource/backend.rs (RepositoryConfig), kbs/src/config.rs
  (TlsProfile).
"""

CONFIG_KEYS = frozenset(
    {
        "http_server.sockets",
        "http_server.insecure_http",
        "http_server.private_key",
        "http_server.certificate",
        "http_server.payload_request_size",
        "http_server.worker_count",
        "http_server.tls_profile",
        "attestation_token.trusted_certs_paths",
        "attestation_token.trusted_jwk_sets",
        "attestation_token.insecure_header_jwk",
        "attestation_token.extra_teekey_paths",
        "attestation_service.type",
        "attestation_service.as_addr",
        "attestation_service.pool_size",
        "attestation_service.timeout",
        "attestation_service.attestation_token_broker.duration_min",
        "attestation_service.attestation_token_broker.issuer_name",
        "attestation_service.attestation_token_broker.signer.key_path",
        "attestation_service.attestation_token_broker.signer.cert_path",
        "attestation_service.attestation_token_broker.signer.cert_url",
        "attestation_service.rvps_config.type",
        "attestation_service.rvps_config.storage_type",
        "admin.authorization_mode",
        "admin.authentication.bearer_jwt.identity_providers[].issuer",
        "admin.authentication.bearer_jwt.identity_providers[].audience",
        "admin.authentication.bearer_jwt.identity_providers[].public_key_uri",
        "admin.authentication.bearer_jwt.identity_providers[].jwk_set_uri",
        "admin.authorization.regex_acl.acls[].role",
        "admin.authorization.regex_acl.acls[].allowed_endpoints",
        "storage_backend.storage_type",
        "storage_backend.backends.local_fs.dir_path",
        "storage_backend.backends.local_json.file_dir_path",
        "session_storage_type",
        "plugins[].name",
        "plugins[].storage_backend_type",
    }
)

ENUMS = {
    "admin.authorization_mode": {"InsecureAllowAll", "DenyAll", "AuthenticatedAuthorization"},
    "attestation_service.type": {"coco_as_builtin", "coco_as_grpc", "intel_ta"},
    "attestation_service.rvps_config.type": {"BuiltIn", "GrpcRemote"},
    "storage_backend.storage_type": {"Memory", "LocalJson", "LocalFs", "Postgres", "Redis"},
    "plugins[].name": {"sample", "resource", "nebula-ca", "pkcs11", "external"},
    "plugins[].storage_backend_type": {"kvstorage", "Aliyun", "Aws", "Gcp", "Vault"},
    "http_server.tls_profile": {"old", "intermediate", "modern", "custom"},
}

# kbs/docs/config.md "Admin API Configuration" and regex_acl.rs: the ACL regex is anchored.
ACL_PREFIX, ACL_SUFFIX = "^/kbs", "$"
