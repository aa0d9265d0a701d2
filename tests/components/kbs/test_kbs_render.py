"""The KBS component under mocks: objects, Pod Security, storage, network, secrets, TLS, JWT."""

from __future__ import annotations

import tomllib
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cli import render
from components.kbs import broker as kbs_mod
from components.kbs import config as kbs_config
from spec import rego
from tests.components.kbs.helpers import objects, raw_inputs, restricted_violations
from tests.components.kbs.tls_mocks import patch_render_mocks
from tests.conftest import assert_valid_kubernetes, one

SECRETS = ("TOP-SECRET-ONE", "TOP-SECRET-TWO")
BASE: dict[str, Any] = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "existing"},
    "coco:nodePools": [
        {"name": "dev", "tee": "none", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
    ],
    "coco:kbs": {
        "resources": [
            {"path": "default/key/1", "value": SECRETS[0]},
            {"path": "team-a/cosign/key.pub", "value": SECRETS[1]},
        ]
    },
}

# BASE has a tee: none pool: the KBS also holds what sample guests report (spec.attestation)
SAMPLE_FILES = {
    name: kbs_config.reference_value_record(name, value)
    for name, value in kbs_config.SAMPLE_REFERENCE_VALUES.items()
}


def kbs(**changes: Any) -> dict[str, Any]:
    return {**BASE, "coco:kbs": {**BASE["coco:kbs"], **changes}}


@pytest.fixture
def tls_render(render_config, monkeypatch):
    """Render with realistic pulumi_tls outputs; also returns the KeyBroker built."""
    patch_render_mocks(monkeypatch)
    built: list[kbs_mod.KeyBroker] = []
    original = kbs_mod.KeyBroker.__init__

    def init(self, *a, **kw):
        original(self, *a, **kw)
        built.append(self)

    monkeypatch.setattr(kbs_mod.KeyBroker, "__init__", init)

    def run(config: dict[str, Any]) -> tuple[render.Render, kbs_mod.KeyBroker]:
        result = render_config(config, secure=frozenset({"coco:kbs.resources[0].value"}))
        assert len(built) == 1
        return result, built[-1]

    return run


def resolve(output: Any) -> tuple[Any, bool]:
    from pulumi.runtime.sync_await import _sync_await

    return _sync_await(output.future()), _sync_await(output.is_secret())


class TestObjects:
    def test_every_object_is_valid_kubernetes(self, render_config):
        for expose in ("clusterip", "nodeport", "loadbalancer"):
            assert assert_valid_kubernetes(render_config(kbs(expose=expose))) >= 10
        result = render_config(kbs(expose="ingress", hostname="kbs.example.com"))
        assert assert_valid_kubernetes(result) >= 11

    def test_objects_authored(self, render_config):
        result = render_config(BASE)
        kinds = {(o["kind"], o["metadata"]["name"]) for o in result.kubernetes_objects()}
        for expected in [
            ("Namespace", "coco-kbs"),
            ("ServiceAccount", "kbs"),
            ("Deployment", "kbs"),
            ("Service", "kbs"),
            ("PersistentVolumeClaim", "kbs-storage"),
            ("ConfigMap", "kbs-config"),
            ("ConfigMap", "kbs-policies"),
            ("ConfigMap", "kbs-reference-values"),
            ("Secret", "kbs-keys"),
            ("Secret", "kbs-resources"),
        ]:
            assert expected in kinds
        assert not [k for k in kinds if k[0] == "Ingress"]

    def test_restricted_pod_security(self, render_config):
        pod = objects(render_config(BASE), "Deployment")["kbs"]["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []
        assert pod["automountServiceAccountToken"] is False

    def test_checker_catches_violations(self):
        bad = {
            "hostNetwork": True,
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "securityContext": {"privileged": True}}],
        }
        found = restricted_violations(bad)
        assert len(found) >= 7, found

    def test_storage_is_a_pvc_never_empty_dir(self, render_config):
        result = render_config(kbs(storageSize="5Gi", storageClass="fast"))
        pvc = objects(result, "PersistentVolumeClaim")["kbs-storage"]["spec"]
        assert pvc["resources"]["requests"]["storage"] == "5Gi"
        assert pvc["storageClassName"] == "fast"
        pod = objects(result, "Deployment")["kbs"]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["storage"]["persistentVolumeClaim"]["claimName"] == "kbs-storage"
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts[kbs_config.STORAGE_DIR] == "storage"
        # the only emptyDir is scratch /tmp, never the store
        assert [n for n, v in volumes.items() if "emptyDir" in v] == ["tmp"]

    def test_probes_on_healthz_over_https(self, render_config):
        c = objects(render_config(BASE), "Deployment")["kbs"]["spec"]["template"]["spec"][
            "containers"
        ][0]
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "kbs", "scheme": "HTTPS"}

    @pytest.mark.parametrize(
        ("expose", "service_type"),
        [("clusterip", "ClusterIP"), ("nodeport", "NodePort"), ("loadbalancer", "LoadBalancer")],
    )
    def test_service_per_expose(self, render_config, expose, service_type):
        service = objects(render_config(kbs(expose=expose)), "Service")["kbs"]["spec"]
        assert service["type"] == service_type
        assert service["ports"][0]["port"] == kbs_config.PORT
        assert "nodePort" not in service["ports"][0]  # Kubernetes picks one unless pinned

    def test_pinned_node_port_is_in_service_and_url(self, render_config):
        spec = kbs(expose="nodeport", hostname="kbs.example.com", nodePort=30443)
        result = render_config(spec)
        assert objects(result, "Service")["kbs"]["spec"]["ports"][0]["nodePort"] == 30443
        assert render.unwrap(result.outputs)["kbsUrl"] == "https://kbs.example.com:30443"

    def test_ingress_passthrough(self, render_config):
        result = render_config(kbs(expose="ingress", hostname="kbs.example.com"))
        ingress = objects(result, "Ingress")["kbs"]
        assert ingress["metadata"]["annotations"][
            "nginx.ingress.kubernetes.io/ssl-passthrough"
        ] == ("true")
        assert ingress["spec"]["rules"][0]["host"] == "kbs.example.com"
        assert objects(result, "Service")["kbs"]["spec"]["type"] == "ClusterIP"

    def test_resources_mounted_in_local_fs_layout(self, render_config):
        pod = objects(render_config(BASE), "Deployment")["kbs"]["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}["seed-repository"]["secret"]
        assert volume["secretName"] == "kbs-resources"
        paths = sorted(item["path"] for item in volume["items"])
        assert paths == ["default\\x2Fkey\\x2F1", "team-a\\x2Fcosign\\x2Fkey.pub"]
        by_key = {i["key"]: i["path"] for i in volume["items"]}
        assert by_key[kbs_mod.resource_key("default/key/1")] == "default\\x2Fkey\\x2F1"
        seed = pod["initContainers"][0]
        mounts = {m["mountPath"]: m["name"] for m in seed["volumeMounts"]}
        assert mounts["/seed/repository"] == "seed-repository"
        assert mounts["/seed/kbs"] == "seed-kbs"

    def test_config_map_holds_the_generated_config(self, render_config):
        config = objects(render_config(BASE), "ConfigMap")["kbs-config"]["data"]
        parsed = tomllib.loads(config["kbs-config.toml"])
        assert parsed == kbs_config.kbs_config(stack="test")

    def test_reference_values_shipped(self, render_config, monkeypatch):
        original = kbs_mod.KeyBroker.__init__

        def init(self, *a, **kw):
            kw["reference_values"] = {"snp_launch_measurement": ["ab" * 48]}
            original(self, *a, **kw)

        monkeypatch.setattr(kbs_mod.KeyBroker, "__init__", init)
        result = render_config(BASE)
        data = objects(result, "ConfigMap")["kbs-reference-values"]["data"]
        # the LocalFs file name is the key; the whole map is the seed directory
        assert data == {
            **SAMPLE_FILES,
            "snp_launch_measurement": kbs_config.reference_value_record(
                "snp_launch_measurement", ["ab" * 48]
            ),
        }
        pod = objects(result, "Deployment")["kbs"]["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}["seed-reference-values"]["configMap"]
        assert volume["name"] == "kbs-reference-values" and "items" not in volume

    def test_image_measurements_join_spec_values(self, render_config, monkeypatch):
        """Measurements of the stack's guest images (an Output) are merged with the spec's:
        a name in both accepts both values (the rotation window)."""
        import pulumi

        original = kbs_mod.KeyBroker.__init__

        def init(self, *a, **kw):
            kw["reference_values"] = {"snp_launch_measurement": ["old"]}
            kw["image_reference_values"] = pulumi.Output.from_input(
                {"snp_launch_measurement": ["new"], "tpm_pcr11": ["11"]}
            )
            original(self, *a, **kw)

        monkeypatch.setattr(kbs_mod.KeyBroker, "__init__", init)
        data = objects(render_config(BASE), "ConfigMap")["kbs-reference-values"]["data"]
        assert data == {
            **SAMPLE_FILES,
            "snp_launch_measurement": kbs_config.reference_value_record(
                "snp_launch_measurement", ["new", "old"]
            ),
            "tpm_pcr11": kbs_config.reference_value_record("tpm_pcr11", ["11"]),
        }


class TestSecrets:
    def test_keys_tokens_and_values_are_secret_and_never_rendered(self, tls_render, tmp_path):
        result, broker = tls_render(BASE)
        keys = raw_inputs(result, "kubernetes:core/v1:Secret", "coco-kbs-keys")
        # the whole stringData map is secret: every key, certificate and resource value
        assert render.secret_paths(keys) == ["stringData"]
        assert sorted(render.unwrap(keys)["stringData"]) == sorted(
            ["admin.pub", "ca.crt", "tls.crt", "tls.key", "token-chain.pem", "token.key"]
        )
        resources = raw_inputs(result, "kubernetes:core/v1:Secret", "coco-kbs-resources")
        assert render.secret_paths(resources) == ["stringData"]
        assert sorted(render.unwrap(resources)["stringData"].values()) == sorted(SECRETS)
        token, token_secret = resolve(broker.admin_token)
        assert token_secret and token.count(".") == 2
        # private keys also travel as secrets into the certificate resources
        for reg in result.registrations:
            if reg.type.startswith("tls:") and "privateKeyPem" in str(reg.inputs):
                for key in ("privateKeyPem", "caPrivateKeyPem"):
                    if key in reg.inputs:
                        assert key in render.secret_paths(reg.inputs), (reg.name, key)

        needles = [*SECRETS, token]
        plain = render.unwrap(keys)["stringData"]
        needles += [plain["tls.key"].splitlines()[1], plain["token.key"].splitlines()[1]]
        render.write(result, tmp_path)
        blob = "".join(p.read_text() for p in sorted(tmp_path.rglob("*")) if p.is_file())
        for needle in needles:
            assert needle not in blob

    def test_renewed_certificates_roll_the_pod(self, render_config, monkeypatch):
        # the KBS reads its certificate and token chain only at start: new ones must restart it
        patch_render_mocks(monkeypatch)
        seen = []
        for _ in range(2):  # the TLS mocks issue fresh keys and certificates on every render
            result = render_config(BASE)
            keys = render.unwrap(raw_inputs(result, "kubernetes:core/v1:Secret", "coco-kbs-keys"))
            pod = render.unwrap(
                raw_inputs(result, "kubernetes:apps/v1:Deployment", "coco-kbs-deployment")
            )["spec"]["template"]["metadata"]["annotations"]
            seen.append((keys["stringData"]["tls.crt"], pod["coco-stack.io/config-digest"]))
        (cert1, digest1), (cert2, digest2) = seen
        assert cert1 != cert2
        assert digest1 != digest2

    @pytest.mark.parametrize("new_admin_key", [False, True])
    def test_replaced_admin_key_rolls_the_pod(self, render_config, monkeypatch, new_admin_key):
        # the KBS reads admin.pub only at start: replacing the admin key (revoking every token)
        # must restart it. Every other key and certificate is the same in both renders.
        import json

        from tests.components.kbs.tls_mocks import tls_outputs
        from tests.conftest import patch_provider_outputs

        cache: dict[str, Any] = {}

        def stable(typ: str, inputs: dict[str, Any]) -> Any:
            key = typ + json.dumps(inputs, sort_keys=True, default=str)
            if new_admin_key and inputs.get("algorithm") == "ED25519":  # only the admin key
                return tls_outputs(typ, inputs)
            if key not in cache:
                cache[key] = tls_outputs(typ, inputs)
            return cache[key]

        patch_provider_outputs(monkeypatch, stable)
        seen = []
        for _ in range(2):
            result = render_config(BASE)
            keys = render.unwrap(raw_inputs(result, "kubernetes:core/v1:Secret", "coco-kbs-keys"))
            pod = render.unwrap(
                raw_inputs(result, "kubernetes:apps/v1:Deployment", "coco-kbs-deployment")
            )["spec"]["template"]["metadata"]["annotations"]
            seen.append((keys["stringData"], pod["coco-stack.io/config-digest"]))
        (data1, digest1), (data2, digest2) = seen
        assert data1["tls.crt"] == data2["tls.crt"]  # the certificates did not change
        assert (data1["admin.pub"] != data2["admin.pub"]) is new_admin_key
        assert (digest1 != digest2) is new_admin_key

    def test_ca_and_server_chain(self, tls_render):
        result, broker = tls_render(kbs(expose="ingress", hostname="kbs.example.com"))
        keys = render.unwrap(raw_inputs(result, "kubernetes:core/v1:Secret", "coco-kbs-keys"))
        data = keys["stringData"]
        ca = x509.load_pem_x509_certificate(data["ca.crt"].encode())
        server = x509.load_pem_x509_certificate(data["tls.crt"].encode())
        ca_pem, _ = resolve(broker.ca_cert_pem)
        assert ca_pem == data["ca.crt"]  # the exported CA is the one the KBS chains to

        server.verify_directly_issued_by(ca)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
        assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert server.fingerprint(server.signature_hash_algorithm) != ca.fingerprint(
            ca.signature_hash_algorithm
        )
        sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(
            [
                "kbs",
                "kbs.coco-kbs",
                "kbs.coco-kbs.svc",
                "kbs.coco-kbs.svc.cluster.local",
                "kbs.example.com",
            ]
        )
        # the server key matches the served certificate
        key = serialization.load_pem_private_key(data["tls.key"].encode(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key() == server.public_key()
        # token signer: P-256 (broker.rs requires it), leaf first then CA, issued by the CA
        chain = x509.load_pem_x509_certificates(data["token-chain.pem"].encode())
        assert [c.subject for c in chain][1] == ca.subject
        chain[0].verify_directly_issued_by(ca)
        assert chain[0].extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        token_key = serialization.load_pem_private_key(data["token.key"].encode(), None)
        assert isinstance(token_key, ec.EllipticCurvePrivateKey)
        assert token_key.curve.name == "secp256r1"

    def test_admin_jwt_verifies_with_the_admin_public_key(self, tls_render):
        result, broker = tls_render(BASE)
        data = render.unwrap(raw_inputs(result, "kubernetes:core/v1:Secret", "coco-kbs-keys"))
        public = serialization.load_pem_public_key(data["stringData"]["admin.pub"].encode())
        token, _ = resolve(broker.admin_token)
        assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
        claims = jwt.decode(
            token,
            public,
            algorithms=["EdDSA"],
            audience=kbs_config.ADMIN_AUDIENCE,
            issuer=kbs_config.admin_issuer("test"),
            options={"verify_exp": False, "verify_nbf": False},
        )
        assert claims["role"] == kbs_config.ADMIN_ROLE
        # iat/exp are the server certificate's validity (stable across runs)
        server = x509.load_pem_x509_certificate(data["stringData"]["tls.crt"].encode())
        assert claims["iat"] == int(server.not_valid_before_utc.timestamp())
        assert claims["exp"] == int(server.not_valid_after_utc.timestamp())
        # and the KBS configuration trusts exactly that key, issuer, audience and role
        config = tomllib.loads(
            objects(result, "ConfigMap")["kbs-config"]["data"]["kbs-config.toml"]
        )
        idp = config["admin"]["authentication"]["bearer_jwt"]["identity_providers"][0]
        assert idp["public_key_uri"] == kbs_config.ADMIN_PUBLIC_KEY
        assert (idp["issuer"], idp["audience"]) == (claims["iss"], claims["aud"][0])
        assert config["admin"]["authorization"]["regex_acl"]["acls"][0]["role"] == claims["role"]

    def test_plain_mocks_render_without_keys(self, render_config):
        """Under the plain render mocks (no provider computes keys) the token is simply absent;
        the graph and manifests still render."""
        result = render_config(BASE)
        deployment = one(result, "kubernetes:apps/v1:Deployment")
        annotations = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
        assert "coco-stack.io/resources-digest" in render.secret_paths(annotations)


class TestPolicies:
    def test_default_policies(self, render_config):
        # a coco-dev pool can only produce sample evidence: the sample-accepting variant
        result = render_config(BASE)
        data = objects(result, "ConfigMap")["kbs-policies"]["data"]
        # the shipped policy, its `tees` line naming only the evidence the stack's pools present
        assert data == {
            "resource-policy.rego": rego.builtin_resource_policy(
                kbs_config.builtin_policy("resource-affirming-sample.rego"), ["sample"]
            )
        }
        assert 'tees := {"sample"}\n' in data["resource-policy.rego"]
        tee_only = {**BASE, "coco:nodePools": [
            {"name": "snp", "tee": "snp", "mode": "bare-metal", "nodeSelector": {"a": "b"}}]}
        strict = objects(render_config(tee_only), "ConfigMap")["kbs-policies"]["data"]
        policy = strict["resource-policy.rego"]
        assert policy == rego.builtin_resource_policy(
            kbs_config.builtin_policy("resource-affirming.rego"), ["snp"]
        )
        assert 'tees := {"snp"}\n' in policy
        assert 'not submod["ear.veraison.annotated-evidence"].sample' in policy
        volumes = {
            v["name"]
            for v in objects(result, "Deployment")["kbs"]["spec"]["template"]["spec"]["volumes"]
        }
        assert "seed-attestation-policy" not in volumes  # the release's own default_cpu stays

    def test_user_policies_shipped(self, render_config, tmp_path, monkeypatch):
        policy = tmp_path / "as.rego"
        policy.write_text("package policy\ndefault hardware := 97\n")
        monkeypatch.chdir(tmp_path)
        result = render_config(kbs(attestationPolicy=str(policy), resourcePolicy="allow-all"))
        data = objects(result, "ConfigMap")["kbs-policies"]["data"]
        assert data["attestation-policy.rego"] == policy.read_text()
        assert data["resource-policy.rego"] == kbs_config.builtin_policy("resource-allow-all.rego")
        pod = objects(result, "Deployment")["kbs"]["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}["seed-attestation-policy"]["configMap"]
        assert volume["items"] == [{"key": "attestation-policy.rego", "path": "default_cpu.rego"}]
