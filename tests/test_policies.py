"""The CrossGuard policy pack (policy/coco_policies.py): each policy's validate function, called
the way the policy analyzer calls it, on resource properties taken from real `coco render`
registrations (the dev stack, a production stack, a staging stack with the insecure options, the
peer-pods component) or, for cloud resources that do not render yet, on hand-written properties
using the provider SDKs' input names (pulumi_azure_native 3.29, pulumi_aws 7.51, pulumi_gcp 10.2).

Props go through pulumi_policy's own deserialize_properties and unknown_checking_proxy, as in the
analyzer server (pulumi_policy/policy.py), so policies see Mapping/Sequence proxies, not dicts.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pulumi
import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from cli import render
from components import peerpods
from components.kbs import config as kbs_config
from policy import coco_policies as cp
from spec import catalogue
from tests.conftest import ROOT, render_program
from tests.spec.reference_values import complete

CONFIGMAP, RELEASE, DEPLOYMENT, RUNTIMECLASS = (
    cp.CONFIGMAP,
    cp.RELEASE,
    cp.DEPLOYMENT,
    cp.RUNTIMECLASS,
)

PRODUCTION = {
    "coco:environment": "production",
    "coco:cluster": {"provider": "existing"},
    "coco:nodePools": [
        {
            "name": "snp",
            "tee": "snp",
            "mode": "bare-metal",
            "nodeSelector": {"coco-stack.io/tee": "snp"},
        }
    ],
    "coco:kbs": {"referenceValues": complete("snp")},  # spec.coverage
}
INSECURE = {
    **PRODUCTION,
    "coco:environment": "staging",
    "coco:kbs": {
        **PRODUCTION["coco:kbs"],
        "resourcePolicy": "allow-all",
        "insecureHttp": True,
    },
}


def validate(policy: str, type_: str, props: dict[str, Any], name: str = "r") -> list[str]:
    """Run one policy as the analyzer does and return the violation messages."""
    (found,) = [p for p in cp.POLICIES if p.name == policy]
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    args = ResourceValidationArgs(
        type_,
        unknown_checking_proxy(deserialize_properties(copy.deepcopy(props))),
        f"urn:pulumi:test::coco::{type_}::{name}",
        name,
        opts,
        None,
        None,
    )
    messages: list[str] = []
    validate_fn = found.validate
    assert callable(validate_fn)
    validate_fn(args, lambda message, urn=None: messages.append(message))
    return messages


def props_of(result: render.Render, type_: str, name: str) -> dict[str, Any]:
    (reg,) = [r for r in result.registrations if r.type == type_ and r.name == name]
    return render.unwrap(reg.inputs)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def dev() -> render.Render:
    return render.run_stack("dev", ROOT)


@pytest.fixture(scope="module")
def production() -> render.Render:
    return render.run(PRODUCTION, stack="prod", project_dir=ROOT)


@pytest.fixture(scope="module")
def insecure() -> render.Render:
    return render.run(INSECURE, stack="insecure", project_dir=ROOT)


@pytest.fixture(scope="module")
def peer_pods_release() -> dict[str, Any]:
    def program() -> None:
        ids = {
            k: pulumi.Output.from_input(f"out:{k}")
            for k in (
                "AZURE_IMAGE_ID",
                "AZURE_RESOURCE_GROUP",
                "AZURE_SUBNET_ID",
                "AZURE_SUBSCRIPTION_ID",
                "AZURE_NSG_ID",
            )
        }
        cloud = peerpods.CloudPeerPods(
            "azure",
            ids,
            {"AZURE_CLIENT_SECRET": "s3cr3t", "AZURE_CLIENT_ID": "cid", "AZURE_TENANT_ID": "tid"},
        )
        pools = [peerpods.PeerPodPool("snp", "Standard_DC2as_v5", "westeurope")]
        config = peerpods.provider_config(cloud, pools, initdata="H4sIAAAA")
        peerpods.PeerPods("pp", cloud, config)

    return props_of(render_program(program), RELEASE, "pp-chart")


class TestEnforcement:
    """Mandatory for production stacks only, chosen from the stack config the engine passes."""

    def test_levels(self):
        assert cp.enforcement_level("production") == EnforcementLevel.MANDATORY
        for env in ("dev", "staging", None):
            assert cp.enforcement_level(env) == EnforcementLevel.ADVISORY

    def test_environment_from_pulumi_config(self):
        config = {"coco:environment": "production", "coco:kbs": "{}"}
        assert cp.environment_from({"PULUMI_CONFIG": json.dumps(config)}) == "production"
        assert cp.environment_from({"PULUMI_CONFIG": json.dumps({"coco:kbs": "{}"})}) == "dev"
        assert cp.environment_from({}) is None
        assert cp.environment_from({"PULUMI_CONFIG": "not json"}) is None


class TestProductionRender:
    """A production stack's render passes every policy; the dev stack's does not."""

    def test_production_passes_all(self, production):
        violations = {
            (p.name, r.name): m
            for r in production.registrations
            for p in cp.POLICIES
            if (m := validate(p.name, r.type, render.unwrap(r.inputs), r.name))
        }
        assert violations == {}

    def test_dev_fails_coco_dev_only(self, dev):
        failing = {
            p.name
            for r in dev.registrations
            for p in cp.POLICIES
            if validate(p.name, r.type, render.unwrap(r.inputs), r.name)
        }
        assert failing == {"no-coco-dev-runtime"}


class TestNoCocoDev:
    def test_pass(self, production):
        assert (
            validate(
                "no-coco-dev-runtime",
                RUNTIMECLASS,
                props_of(production, RUNTIMECLASS, "coco-runtime-kata-qemu-snp"),
            )
            == []
        )
        assert (
            validate(
                "no-coco-dev-runtime", RELEASE, props_of(production, RELEASE, "coco-runtime-chart")
            )
            == []
        )

    def test_violation(self, dev):
        (msg,) = validate(
            "no-coco-dev-runtime",
            RUNTIMECLASS,
            props_of(dev, RUNTIMECLASS, "coco-runtime-kata-qemu-coco-dev"),
        )
        assert "kata-qemu-coco-dev" in msg and "tee: none" in msg
        (msg,) = validate(
            "no-coco-dev-runtime", RELEASE, props_of(dev, RELEASE, "coco-runtime-chart")
        )
        assert "qemu-coco-dev" in msg


class TestKbsHttps:
    def test_pass(self, production):
        assert (
            validate(
                "kbs-https-authenticated-admin",
                CONFIGMAP,
                props_of(production, CONFIGMAP, "coco-kbs-config"),
            )
            == []
        )

    def test_insecure_http(self, insecure):
        (msg,) = validate(
            "kbs-https-authenticated-admin",
            CONFIGMAP,
            props_of(insecure, CONFIGMAP, "coco-kbs-config"),
        )
        assert "insecure_http" in msg

    def test_insecure_allow_all_admin(self, production):
        props = props_of(production, CONFIGMAP, "coco-kbs-config")
        toml = props["data"]["kbs-config.toml"]
        assert 'authorization_mode = "AuthenticatedAuthorization"' in toml
        props["data"]["kbs-config.toml"] = toml.replace(
            '"AuthenticatedAuthorization"', '"InsecureAllowAll"'
        )
        (msg,) = validate("kbs-https-authenticated-admin", CONFIGMAP, props)
        assert "InsecureAllowAll" in msg


class TestResourcePolicy:
    def test_pass(self, production):
        assert (
            validate(
                "kbs-resource-policy-affirming",
                CONFIGMAP,
                props_of(production, CONFIGMAP, "coco-kbs-policies"),
            )
            == []
        )

    def test_allow_all(self, insecure):
        (msg,) = validate(
            "kbs-resource-policy-affirming",
            CONFIGMAP,
            props_of(insecure, CONFIGMAP, "coco-kbs-policies"),
        )
        assert "affirming" in msg


class TestKbsStorage:
    def test_pass(self, production):
        assert (
            validate(
                "kbs-storage-persistent",
                DEPLOYMENT,
                props_of(production, DEPLOYMENT, "coco-kbs-deployment"),
            )
            == []
        )

    def test_empty_dir(self, production):
        props = props_of(production, DEPLOYMENT, "coco-kbs-deployment")
        volumes = props["spec"]["template"]["spec"]["volumes"]
        (storage,) = [v for v in volumes if v["name"] == "storage"]
        del storage["persistentVolumeClaim"]
        storage["emptyDir"] = {}
        messages = validate("kbs-storage-persistent", DEPLOYMENT, props)
        assert messages and all("emptyDir" in m for m in messages)

    def test_path_agrees_with_kbs_config(self):
        assert cp.KBS_STORAGE_PATH == kbs_config.STORAGE_DIR


class TestPinnedImages:
    def test_pass(self, production, peer_pods_release):
        assert (
            validate(
                "images-pinned", DEPLOYMENT, props_of(production, DEPLOYMENT, "coco-kbs-deployment")
            )
            == []
        )
        assert peer_pods_release["values"]["image"]["tag"]
        assert validate("images-pinned", RELEASE, peer_pods_release) == []

    def test_deployment_latest(self, production):
        props = props_of(production, DEPLOYMENT, "coco-kbs-deployment")
        container = props["spec"]["template"]["spec"]["containers"][0]
        container["image"] = container["image"].split(":")[0]
        (msg,) = validate("images-pinned", DEPLOYMENT, props)
        assert "no tag" in msg

    def test_release_missing_tag(self, peer_pods_release):
        props = copy.deepcopy(peer_pods_release)
        del props["values"]["image"]["tag"]
        (msg,) = validate("images-pinned", RELEASE, props)
        assert "values.image" in msg

    @pytest.mark.parametrize(
        "ref,pinned",
        [
            ("ghcr.io/confidential-containers/key-broker-service:built-in-as-v0.21.0", True),
            ("registry:5000/kbs@sha256:" + "a" * 64, True),
            ("registry:5000/kbs", False),
            ("quay.io/x/y:latest", False),
            ("quay.io/x/y:stable", False),
        ],
    )
    def test_references(self, ref, pinned):
        assert (cp.image_problem(ref) is None) is pinned


class TestNoCloudCredentials:
    def test_pass(self, production, peer_pods_release):
        for name in ("coco-kbs-config", "coco-kbs-policies", "coco-kbs-reference-values"):
            assert (
                validate("no-cloud-credentials", CONFIGMAP, props_of(production, CONFIGMAP, name))
                == []
            )
        assert validate("no-cloud-credentials", RELEASE, peer_pods_release) == []

    def test_release_values(self, peer_pods_release):
        props = copy.deepcopy(peer_pods_release)
        props["values"]["providerConfigs"]["azure"]["AZURE_CLIENT_SECRET"] = "s3cr3t"
        (msg,) = validate("no-cloud-credentials", RELEASE, props)
        assert "values.providerConfigs.azure.AZURE_CLIENT_SECRET" in msg and "s3cr3t" not in msg

    def test_configmap_key_and_text(self, production):
        props = props_of(production, CONFIGMAP, "coco-kbs-reference-values")
        props["data"]["AWS_SECRET_ACCESS_KEY"] = "wJalr"
        props["data"]["env"] = "IBMCLOUD_API_KEY=abc\n"
        messages = validate("no-cloud-credentials", CONFIGMAP, props)
        assert len(messages) == 2

    def test_keys_are_secret_keys_of_peer_pods(self):
        assert frozenset().union(*peerpods.CREDENTIAL_KEYS.values()) >= cp.CREDENTIAL_KEYS


# Hand-written cloud props (SDK input names, camelCase as the engine sends them): (type, props
# of a confidential pool, a change that makes it not confidential).
_AZ_VM = {
    "vmName": "coco-snp-0",
    "location": "westeurope",
    "hardwareProfile": {"vmSize": "Standard_DC4as_v5"},
    "securityProfile": {
        "securityType": "ConfidentialVM",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    },
    "tags": {cp.MARKER_TAG: "snp"},
}
_AZ_VMSS = {
    "sku": {"name": "Standard_DC4es_v5", "capacity": 1.0},
    "virtualMachineProfile": {"securityProfile": {"securityType": "ConfidentialVM"}},
    "tags": {cp.MARKER_TAG: "tdx"},
}
_AKS_POOL = {
    "resourceName": "coco",
    "agentPoolName": "snp",
    "count": 1.0,
    "mode": "User",
    "vmSize": "Standard_DC4as_v5",
    "osType": "Linux",
    "nodeLabels": {cp.MARKER_LABEL: "snp"},
}
_AKS = {
    "agentPoolProfiles": [
        {"name": "system", "mode": "System", "vmSize": "Standard_D4s_v5", "count": 2.0},
        {
            "name": "tdx",
            "mode": "User",
            "vmSize": "Standard_DC4es_v5",
            "count": 1.0,
            "nodeLabels": {cp.MARKER_LABEL: "tdx"},
        },
    ]
}
_AWS_LT = {
    "imageId": "ami-0abc",
    "instanceType": "m6a.xlarge",
    "cpuOptions": {"amdSevSnp": "enabled"},
    "tagSpecifications": [{"resourceType": "instance", "tags": {cp.MARKER_TAG: "snp"}}],
}
_AWS_INSTANCE = {
    "ami": "ami-0abc",
    "instanceType": "m6a.large",
    "cpuOptions": {"amdSevSnp": "enabled"},
    "tags": {cp.MARKER_TAG: "snp"},
}
_GCP_TEMPLATE = {
    "machineType": "n2d-standard-4",
    "labels": {cp.MARKER_TAG: "snp"},
    "confidentialInstanceConfig": {"confidentialInstanceType": "SEV_SNP"},
    "scheduling": {"onHostMaintenance": "TERMINATE"},
    "minCpuPlatform": "AMD Milan",
}
_GCP_INSTANCE = {
    "machineType": "c3-standard-4",
    "zone": "europe-west4-a",
    "labels": {cp.MARKER_TAG: "tdx"},
    "confidentialInstanceConfig": {"confidentialInstanceType": "TDX"},
}
_GKE_POOL = {
    "cluster": "coco",
    "nodeCount": 1.0,
    "nodeConfig": {
        "machineType": "n2d-standard-4",
        "labels": {cp.MARKER_LABEL: "snp"},
        "confidentialNodes": {"enabled": True, "confidentialInstanceType": "SEV_SNP"},
    },
}

POOL_CASES = {
    "azure-vm": (
        "azure-native:compute:VirtualMachine",
        _AZ_VM,
        lambda p: p["securityProfile"].update(securityType="TrustedLaunch"),
    ),
    "azure-vmss": (
        "azure-native:compute:VirtualMachineScaleSet",
        _AZ_VMSS,
        lambda p: p["virtualMachineProfile"].pop("securityProfile"),
    ),
    "aks-agentpool": (
        "azure-native:containerservice:AgentPool",
        _AKS_POOL,
        lambda p: p.update(vmSize="Standard_D4s_v5"),
    ),
    "aks-cluster": (
        "azure-native:containerservice:ManagedCluster",
        _AKS,
        lambda p: p["agentPoolProfiles"][1].update(vmSize="Standard_DC4as_v5"),
    ),
    "aws-launch-template": (
        "aws:ec2/launchTemplate:LaunchTemplate",
        _AWS_LT,
        lambda p: p.pop("cpuOptions"),
    ),
    "aws-instance": (
        "aws:ec2/instance:Instance",
        _AWS_INSTANCE,
        lambda p: p["cpuOptions"].update(amdSevSnp="disabled"),
    ),
    "gcp-template": (
        "gcp:compute/instanceTemplate:InstanceTemplate",
        _GCP_TEMPLATE,
        lambda p: p.pop("confidentialInstanceConfig"),
    ),
    "gcp-instance": (
        "gcp:compute/instance:Instance",
        _GCP_INSTANCE,
        lambda p: p["confidentialInstanceConfig"].update(confidentialInstanceType="SEV"),
    ),
    "gke-nodepool": (
        "gcp:container/nodePool:NodePool",
        _GKE_POOL,
        lambda p: p["nodeConfig"]["confidentialNodes"].update(enabled=False),
    ),
}


class TestConfidentialPools:
    """Marked pools are confidential VMs of their TEE; unmarked resources are not checked."""

    @pytest.mark.parametrize("case", sorted(POOL_CASES))
    def test_pass(self, case):
        type_, props, _ = POOL_CASES[case]
        assert validate("confidential-pools", type_, props) == []

    @pytest.mark.parametrize("case", sorted(POOL_CASES))
    def test_violation(self, case):
        type_, props, break_it = POOL_CASES[case]
        props = copy.deepcopy(props)
        break_it(props)
        (msg,) = validate("confidential-pools", type_, props)
        assert "pool" in msg

    def test_unmarked_system_pool_ignored(self):
        props = {**_AKS_POOL, "vmSize": "Standard_D4s_v5", "nodeLabels": {}}
        assert (
            validate("confidential-pools", "azure-native:containerservice:AgentPool", props) == []
        )

    def test_azure_families_agree_with_catalogue(self):
        for tee, families in cp.AZURE_FAMILIES.items():
            offered = {
                f
                for o in catalogue.OFFERINGS
                if o.provider == "azure" and o.tee == tee
                for f in o.families
            }
            assert families == offered
        assert cp.GCP_CONFIDENTIAL_TYPE == peerpods.GCP_CONFIDENTIAL_TYPE


IMAGE_CASES = {
    "gcp-image": (
        "gcp:compute/image:Image",
        {
            "name": "coco-podvm-snp",
            "family": "coco-podvm",
            "rawDisk": {"source": "gs://coco-images/podvm.tar.gz"},
            "labels": {cp.MARKER_TAG: "snp"},
            "guestOsFeatures": [
                {"type": "UEFI_COMPATIBLE"},
                {"type": "SEV_SNP_CAPABLE"},
                {"type": "GVNIC"},
            ],
        },
        lambda p: p["guestOsFeatures"].pop(1),
    ),
    "azure-gallery-image": (
        "azure-native:compute:GalleryImage",
        {
            "galleryName": "coco",
            "galleryImageName": "podvm-snp",
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "identifier": {"publisher": "coco", "offer": "podvm", "sku": "snp"},
            "features": [{"name": "SecurityType", "value": "ConfidentialVM"}],
            "tags": {cp.MARKER_TAG: "snp"},
        },
        lambda p: p.update(features=[{"name": "SecurityType", "value": "TrustedLaunch"}]),
    ),
    "aws-ami": (
        "aws:ec2/ami:Ami",
        {
            "name": "coco-podvm-snp",
            "bootMode": "uefi",
            "tpmSupport": "v2.0",
            "virtualizationType": "hvm",
            "tags": {cp.MARKER_TAG: "snp"},
        },
        lambda p: p.update(bootMode="legacy-bios"),
    ),
}


class TestPeerPodImageFeatures:
    """Marked peer-pod images can boot as confidential VMs of their TEE."""

    @pytest.mark.parametrize("case", sorted(IMAGE_CASES))
    def test_pass(self, case):
        type_, props, _ = IMAGE_CASES[case]
        assert validate("peer-pod-image-tee-features", type_, props) == []

    @pytest.mark.parametrize("case", sorted(IMAGE_CASES))
    def test_violation(self, case):
        type_, props, break_it = IMAGE_CASES[case]
        props = copy.deepcopy(props)
        break_it(props)
        (msg,) = validate("peer-pod-image-tee-features", type_, props)
        assert "snp" in msg
