"""IBM Z Secure Execution: IBM Cloud peer pods from the spec's VPC ids, and the KBS's SE verifier
material mounted where the pinned Trustee reads it; secrets stay secrets end to end."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from cli import render
from components import peerpods
from spec import validate
from spec.errors import SpecError
from tests.conftest import ROOT, assert_valid_kubernetes, one, resources_of

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"

# Facts read from confidential-containers/trustee deps/verifier/src/se/ibmse.rs@v0.21.0 (the
# DEFAULT_SE_* constants and the env_or_default! names), written out here independently of
# components.kbs.se_verifier so a wrong constant there fails these tests.
TRUSTEE_SE = {
    "hkds": "/run/confidential-containers/ibmse/hkds",
    "certs": "/run/confidential-containers/ibmse/certs",
    "crls": "/run/confidential-containers/ibmse/crls",
    "root_ca": "/run/confidential-containers/ibmse/root_ca.crt",
    "header": "/run/confidential-containers/ibmse/hdr/hdr.bin",
    "private_key": "/run/confidential-containers/ibmse/rsa/encrypt_key.pem",
    "public_key": "/run/confidential-containers/ibmse/rsa/encrypt_key.pub",
}
SKIP_ENV = "SE_SKIP_CERTS_VERIFICATION"
OFFLINE_ENV = "CERTS_OFFLINE_VERIFICATION"

API_KEY = "IBM-API-KEY-sentinel-0123456789"
HKD = b"-----BEGIN CERTIFICATE-----\nHKD-SENTINEL\n-----END CERTIFICATE-----\n"
HEADER = bytes(range(256))  # binary, as hdr.bin is


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


IBMCLOUD = {
    "vpcId": "r010-vpc-1",
    "subnetId": "02b7-subnet-1",
    "imageId": "r010-se-image-1",
    "resourceGroupId": "0123456789abcdef0123456789abcdef",
    "apiKey": API_KEY,
}
SE_VERIFIER = {
    "hostKeyDocuments": [_b64(HKD), _b64(b"HKD-2")],
    "imageHeader": _b64(HEADER),
    "certificates": [_b64(b"ibm-signing"), _b64(b"digicert-ca")],
    "crls": [_b64(b"crl-1")],
    "rootCa": _b64(b"root"),
}
SECURE = frozenset(
    {
        "coco:nodePools[0].ibmcloud.apiKey",
        "coco:kbs.seVerifier.imageHeader",
        "coco:kbs.seVerifier.rootCa",
        "coco:kbs.seVerifier.hostKeyDocuments[0]",
        "coco:kbs.seVerifier.hostKeyDocuments[1]",
        "coco:kbs.seVerifier.certificates[0]",
        "coco:kbs.seVerifier.certificates[1]",
        "coco:kbs.seVerifier.crls[0]",
    }
)


def _config(pool: dict[str, Any] | None = None, **kbs: Any) -> dict[str, Any]:
    return {
        "coco:environment": "staging",
        "coco:cluster": {"provider": "existing", "context": "ibm"},
        "coco:nodePools": [
            {
                "name": "se",
                "tee": "se",
                "provider": "ibmcloud",
                "region": "eu-de",
                "zone": "eu-de-1",
                "ibmcloud": IBMCLOUD,
                "nodeSelector": {"node.kubernetes.io/worker": ""},  # labelled for CAA
                **(pool or {}),
            }
        ],
        "coco:kbs": {"expose": "loadbalancer", "hostname": "kbs.example.com",
                     "seVerifier": SE_VERIFIER, **kbs},
    }


def _render(config: dict[str, Any], secure: frozenset[str] = SECURE) -> render.Render:
    return render.run(config, stack="t", secure_paths=secure, project_dir=ROOT)


def _errors(config: dict[str, Any], secure: frozenset[str] = SECURE) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate.validate(config, stack="t", secure_paths=secure, base_dir=str(ROOT))
    return {i.path: i.message for i in info.value.issues if i.severity == "error"}


def _written(result: render.Render, out: Path) -> bytes:
    render.write(result, out)
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def rendered() -> render.Render:
    return _render(_config())


class TestIbmCloudPeerPods:
    """peer-pods-cm carries every key CAA v0.22.0 needs, from the spec; the API key lives only
    in the stack-owned Secret."""

    def test_every_required_key_from_the_spec(self, rendered):
        values = render.unwrap(one(rendered, RELEASE, "coco-peer-pods-chart").inputs["values"])
        assert values["provider"] == "ibmcloud"
        cm = values["providerConfigs"]["ibmcloud"]
        expected = {
            "IBMCLOUD_PODVM_IMAGE_ID": "r010-se-image-1",
            "IBMCLOUD_VPC_ID": "r010-vpc-1",
            "IBMCLOUD_VPC_SUBNET_ID": "02b7-subnet-1",
            "IBMCLOUD_RESOURCE_GROUP_ID": "0123456789abcdef0123456789abcdef",
            "IBMCLOUD_ZONE": "eu-de-1",
            "IBMCLOUD_PODVM_INSTANCE_PROFILE_NAME": "bz2e-2x8",
        }
        assert set(peerpods.REQUIRED_KEYS["ibmcloud"]) == set(expected)
        assert {k: cm[k] for k in expected} == expected
        assert cm["IBMCLOUD_VPC_ENDPOINT"] == "https://eu-de.iaas.cloud.ibm.com/v1"
        assert "IBMCLOUD_SECURITY_GROUP_IDS" not in cm and "IBMCLOUD_CLUSTER_ID" not in cm
        assert values["secrets"] == {"mode": "reference",
                                     "existingSecretName": peerpods.SECRET_NAME}

    def test_optional_ids(self):
        pool = {"ibmcloud": {**IBMCLOUD, "securityGroupId": "r010-sg-1", "clusterId": "c1abc"}}
        result = _render(_config(pool))
        cm = render.unwrap(one(result, RELEASE, "coco-peer-pods-chart").inputs["values"])[
            "providerConfigs"]["ibmcloud"]
        assert (cm["IBMCLOUD_SECURITY_GROUP_IDS"], cm["IBMCLOUD_CLUSTER_ID"]) == (
            "r010-sg-1", "c1abc")

    def test_api_key_only_in_the_stack_secret(self, rendered, tmp_path):
        secret = one(rendered, SECRET, "coco-peer-pods-credentials")
        assert secret.inputs["metadata"]["name"] == peerpods.SECRET_NAME
        assert "stringData" in render.secret_paths(secret.inputs)
        assert render.unwrap(secret.inputs["stringData"])["IBMCLOUD_API_KEY"] == API_KEY
        others = [r for r in rendered.registrations if r is not secret]
        assert API_KEY not in repr([render.unwrap(r.inputs) for r in others])
        assert API_KEY.encode() not in _written(rendered, tmp_path / "out")

    def test_secure_execution_is_not_a_tdx_request(self, rendered):
        values = render.unwrap(one(rendered, RELEASE, "coco-peer-pods-chart").inputs["values"])
        assert values["providerConfigs"]["ibmcloud"]["DISABLECVM"] == "true"

    def test_sample_stack_renders(self):
        result = render.run_stack("ibm-se", ROOT)
        assert one(result, RELEASE, "coco-peer-pods-chart")
        assert one(result, SECRET, "coco-kbs-se-verifier")
        assert assert_valid_kubernetes(result) >= 1


def _kbs_container(result: render.Render) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = render.unwrap(one(result, "kubernetes:apps/v1:Deployment").inputs)
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "kbs")
    return pod, container


def _mounted_files(result: render.Render) -> dict[str, str]:
    """Absolute path in the KBS container -> Secret key, for the SE verifier volume."""
    pod, container = _kbs_container(result)
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("secret") or {}
        if source.get("secretName") == "kbs-se-verifier":
            assert mount["readOnly"] is True
            for item in source["items"]:
                files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = item["key"]
    return files


class TestSeVerifierMaterial:
    """Every file sits where Trustee v0.21.0's SE verifier reads it, and is a secret."""

    def test_files_at_trustee_paths(self, rendered):
        files = _mounted_files(rendered)
        secret = render.unwrap(one(rendered, SECRET, "coco-kbs-se-verifier").inputs)
        keys = set(secret["data"]) | set(secret["stringData"])
        assert set(files.values()) == keys  # every key mounted, nothing else
        by_dir: dict[str, list[str]] = {}
        for path in files:
            by_dir.setdefault(path.rsplit("/", 1)[0], []).append(path)
        assert len(by_dir[TRUSTEE_SE["hkds"]]) == 2
        assert len(by_dir[TRUSTEE_SE["certs"]]) == 2
        assert len(by_dir[TRUSTEE_SE["crls"]]) == 1
        for fixed in ("root_ca", "header", "private_key", "public_key"):
            assert TRUSTEE_SE[fixed] in files, fixed
        data = secret["data"]
        assert data[files[TRUSTEE_SE["header"]]] == _b64(HEADER)  # binary kept intact
        hkd_values = {data[files[p]] for p in by_dir[TRUSTEE_SE["hkds"]]}
        assert hkd_values == set(SE_VERIFIER["hostKeyDocuments"])

    def test_every_value_is_a_secret(self, rendered, tmp_path):
        secret = one(rendered, SECRET, "coco-kbs-se-verifier").inputs
        assert {"data", "stringData"} <= set(render.secret_paths(secret))
        assert render.unwrap(secret["data"]) and render.unwrap(secret["stringData"])
        blob = _written(rendered, tmp_path / "out")
        for marker in (b"HKD-SENTINEL", _b64(HKD).encode()):
            assert marker not in blob

    def test_generated_request_key_pair(self, rendered):
        key = one(rendered, "tls:index/privateKey:PrivateKey", "coco-kbs-se-request-key")
        assert (key.inputs["algorithm"], key.inputs["rsaBits"]) == ("RSA", 4096.0)
        secret = one(rendered, SECRET, "coco-kbs-se-verifier")
        assert key.urn in secret.dependencies  # the keys are that resource's outputs

    def test_environment(self, rendered):
        _, container = _kbs_container(rendered)
        env = {e["name"]: e["value"] for e in container["env"]}
        assert (env[SKIP_ENV], env[OFFLINE_ENV]) == ("false", "true")
        dev = _config(**{"seVerifier": {**SE_VERIFIER, "skipCertificateVerification": True}})
        dev["coco:environment"] = "dev"
        _, container = _kbs_container(_render(dev))
        assert {e["name"]: e["value"] for e in container["env"]}[SKIP_ENV] == "true"

    def test_pod_depends_on_the_secret(self, rendered):
        deployment = one(rendered, "kubernetes:apps/v1:Deployment")
        assert one(rendered, SECRET, "coco-kbs-se-verifier").urn in deployment.dependencies

    def test_no_material_no_mount(self, render_stack):
        result = render_stack("baremetal-se")
        assert _mounted_files(result) == {}
        assert not [r for r in resources_of(result, SECRET) if "se-verifier" in r.name]
        assert any("coco:kbs.seVerifier" in w for w in result.warnings)


class TestRules:
    """One mistake, one error naming its key path, before anything is registered."""

    def test_ibmcloud_keys_required(self):
        config = _config()
        del config["coco:nodePools"][0]["ibmcloud"]
        errors = _errors(config, SECURE - {"coco:nodePools[0].ibmcloud.apiKey"})
        assert list(errors) == ["coco:nodePools[0].ibmcloud"]
        assert "existing VPC" in errors["coco:nodePools[0].ibmcloud"]

    def test_api_key_must_be_a_secret(self):
        errors = _errors(_config(), SECURE - {"coco:nodePools[0].ibmcloud.apiKey"})
        assert list(errors) == ["coco:nodePools[0].ibmcloud.apiKey"]

    def test_zone_required(self):
        errors = _errors(_config({"zone": None}))
        assert list(errors) == ["coco:nodePools[0].zone"]

    def test_zone_in_region(self):
        errors = _errors(_config({"zone": "us-south-1"}))
        assert list(errors) == ["coco:nodePools[0].zone"]
        assert "not in region 'eu-de'" in errors["coco:nodePools[0].zone"]

    def test_bad_id(self):
        errors = _errors(_config({"ibmcloud": {**IBMCLOUD, "imageId": "a,b"}}))
        assert list(errors) == ["coco:nodePools[0].ibmcloud.imageId"]

    def test_pools_share_one_vpc(self):
        config = _config()
        second = {**config["coco:nodePools"][0], "name": "se2",
                  "ibmcloud": {**IBMCLOUD, "subnetId": "02b7-other"}}
        config["coco:nodePools"].append(second)
        secure = SECURE | {"coco:nodePools[1].ibmcloud.apiKey"}
        assert list(_errors(config, secure)) == ["coco:nodePools[1].ibmcloud"]

    def test_ibmcloud_keys_on_another_provider(self):
        config = {
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [{"name": "b", "tee": "snp", "nodeSelector": {"a": "b"},
                                "ibmcloud": IBMCLOUD}],
        }
        assert "coco:nodePools[0].ibmcloud" in _errors(config)

    def test_material_not_base64(self):
        bad = {**SE_VERIFIER, "crls": ["not base64!"]}
        errors = _errors(_config(seVerifier=bad))
        assert list(errors) == ["coco:kbs.seVerifier.crls[0]"]
        assert "not base64!" not in repr(errors)  # never echo a secret

    def test_certificates_needed_to_verify(self):
        bad = {k: v for k, v in SE_VERIFIER.items() if k != "crls"}
        assert list(_errors(_config(seVerifier=bad))) == ["coco:kbs.seVerifier.crls"]

    def test_skip_verification_refused_in_production(self):
        config = _config(seVerifier={**SE_VERIFIER, "skipCertificateVerification": True})
        config["coco:environment"] = "production"
        errors = _errors(config)
        assert list(errors) == ["coco:kbs.seVerifier.skipCertificateVerification"]

    def test_plain_material_is_a_warning(self):
        spec, warnings = validate.validate(
            _config(), stack="t", secure_paths=frozenset({"coco:nodePools[0].ibmcloud.apiKey"})
        )
        assert spec.kbs.se_verifier is not None
        paths = {w.path for w in warnings}
        assert {"coco:kbs.seVerifier.imageHeader", "coco:kbs.seVerifier.crls[0]"} <= paths

    def test_stack_file_placeholders_accepted(self):
        from spec import stackfile

        sf = stackfile.load("ibm-se", ROOT)
        spec, _ = validate.validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths)
        assert spec.kbs.se_verifier is not None and len(spec.kbs.se_verifier.crls) == 3
