"""GCP (components.gcp): GKE cluster, Confidential GKE Node pools, peer-pod infrastructure and
the published pod-VM image, all from the project's real program under Pulumi mocks.

Provider-computed values (service-account emails, the key, the cluster endpoint, the image
build's output) come from tests/components/clouds/conftest_gcp.py; everything else is what the
program registered. Assertions run on recorded registrations after the program finished.
"""

from __future__ import annotations

import copy
import json
import shutil
from typing import Any

import pytest
import yaml
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from cli import render
from components import peerpods
from components.gcp import image as gcp_image
from components.gcp import peerpods as gcp_peerpods
from components.gcp.common import TEE_LABEL, gcp_name
from policy import coco_policies
from spec import catalogue, versions
from spec.errors import SpecError
from spec.validate import validate
from tests.components.clouds import conftest_gcp
from tests.components.clouds.conftest_gcp import (
    ATTACHED,
    ATTACHED_SUBNET,
    CA,
    ENDPOINT,
    KEY_FILE,
    KEY_MATERIAL,
    PROJECT,
)
from tests.conftest import ROOT, assert_valid_kubernetes, one, resources_of
from tests.spec.reference_values import complete

# peer pods on an attached cluster confirm their workers are labelled for CAA and, on GKE, run
# Ubuntu (spec.rules.clouds.attached_peer_pod_workers)
WORKERS = {"node.kubernetes.io/worker": "", "cloud.google.com/gke-os-distribution": "ubuntu"}
NODE_POOL = "gcp:container/nodePool:NodePool"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
RELEASE = "kubernetes:helm.sh/v3:Release"
# GCP resource types whose SDK class has no `project` argument (it follows from a parent
# resource: the service account, the bucket)
NO_PROJECT_ARG = {
    "gcp:serviceaccount/key:Key",
    "gcp:storage/bucketObject:BucketObject",
}


@pytest.fixture
def gcp_mocks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return conftest_gcp.install(monkeypatch)


def peer_pods_config(tee: str, machine: str, zone: str, **image: Any) -> dict[str, Any]:
    return {
        "coco:environment": "staging",
        "coco:cluster": {"provider": "gke", "project": PROJECT, "zone": zone},
        "coco:nodePools": [{"name": tee, "tee": tee, "instanceType": machine}],
        "coco:image": image or {"recipe": "podvm"},
        "coco:kbs": {
            "expose": "loadbalancer",
            "hostname": "kbs.example.com",
            # spec.coverage; legacy SEV has no evidence, so nothing to cover
            "referenceValues": complete(tee) if tee != "sev" else {},
        },
    }


def nodes_config(tee: str, **pool: Any) -> dict[str, Any]:
    return {
        "coco:cluster": {"provider": "gke", "project": PROJECT, "region": "europe-west4"},
        "coco:nodePools": [{"name": f"{tee}-nodes", "tee": tee, "mode": "nodes", **pool}],
    }


# SEV-SNP peer pods are refused on GCP (spec.catalogue.REFUSED): the peer-pod infrastructure
# is tested with legacy SEV (N2D, the same zone) and TDX (C3)
SEV = peer_pods_config("sev", "n2d-standard-2", "europe-west4-a")
TDX = peer_pods_config("tdx", "c3-standard-4", "us-central1-a")


def gcp_registrations(result: render.Render) -> list[render.Registration]:
    return [r for r in result.registrations if r.type.startswith("gcp:")]


def peer_pods_cm(result: render.Render) -> dict[str, Any]:
    values = render.unwrap(one(result, RELEASE, "coco-peer-pods-chart").inputs["values"])
    config: dict[str, Any] = values["providerConfigs"]["gcp"]
    return config


class TestCluster:
    """A GKE cluster with its own VPC, Workload Identity, a pinned version and a system pool;
    the kubeconfig is built from the cluster's outputs and is a secret."""

    def test_cluster_settings(self, render_config, gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        cluster = one(result, "gcp:container/cluster:Cluster")
        network = one(result, "gcp:compute/network:Network")
        subnet = one(result, "gcp:compute/subnetwork:Subnetwork")
        pool = f"{PROJECT}.svc.id.goog"
        assert cluster.inputs["workloadIdentityConfig"] == {"workloadPool": pool}
        assert cluster.inputs["minMasterVersion"] == versions.KUBERNETES_VERSION
        assert cluster.inputs["releaseChannel"] == {"channel": "UNSPECIFIED"}
        assert cluster.inputs["removeDefaultNodePool"] is True
        assert cluster.inputs["location"] == "europe-west4-a"
        assert cluster.inputs["network"] == "coco-cluster-network-id" == f"{network.name}-id"
        assert network.inputs["autoCreateSubnetworks"] is False
        assert subnet.inputs["region"] == "europe-west4"
        assert {r["rangeName"] for r in subnet.inputs["secondaryIpRanges"]} == {"pods", "services"}

    def test_every_resource_names_the_project(self, render_config, gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        checked = 0
        for reg in gcp_registrations(result):
            if reg.type in NO_PROJECT_ARG or reg.type.startswith("gcp:serviceaccount/iAM"):
                continue
            assert reg.inputs.get("project") == PROJECT, reg.name
            checked += 1
        assert checked >= 10

    def test_system_pool_runs_peer_pod_workers(self, render_config, gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        system = one(result, NODE_POOL, "coco-cluster-system")
        node = system.inputs["nodeConfig"]
        assert node["labels"] == {"node.kubernetes.io/worker": ""}
        assert node["imageType"] == "UBUNTU_CONTAINERD"
        assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
        sa = one(result, "gcp:serviceaccount/account:Account", "coco-cluster-nodes-sa")
        email = f"{sa.inputs['accountId']}@{PROJECT}.iam.gserviceaccount.com"
        assert node["serviceAccount"] == email
        grant = one(result, "gcp:projects/iAMMember:IAMMember",
                    "coco-cluster-nodes-sa-container.defaultNodeServiceAccount")
        assert grant.inputs["member"] == f"serviceAccount:{node['serviceAccount']}"
        assert system.inputs["nodeCount"] == 2

    @pytest.mark.parametrize(("machine", "disk"), [
        ("n4-standard-4", "hyperdisk-balanced"),  # Hyperdisk only: GKE's pd-balanced refused
        ("c4-standard-4", "hyperdisk-balanced"),
        ("c4d-standard-4", "hyperdisk-balanced"),
        ("n2d-standard-4", "pd-balanced"),
        ("e2-standard-4", None),  # not in the table: GKE's default (pd-balanced), which E2 takes
    ])
    def test_system_pool_boots_from_a_disk_its_series_accepts(self, render_config, gcp_mocks,
                                                              machine, disk):
        """GKE gives a node pool without a disk type pd-balanced, which the Hyperdisk-only
        series refuse (catalogue.GCP_BOOT_DISK_TYPES): the system pool sets the series' own."""
        config = copy.deepcopy(nodes_config("snp"))
        config["coco:cluster"]["systemPool"] = {"instanceType": machine, "count": 1}
        system = one(render_config(config, stack="gcp-test"), NODE_POOL, "coco-cluster-system")
        node = system.inputs["nodeConfig"]
        assert node["machineType"] == machine
        assert node.get("diskType") == disk
        if disk is not None:
            assert disk in catalogue.GCP_BOOT_DISK_TYPES[machine.split("-")[0]]

    def test_no_worker_label_without_peer_pods(self, render_config, gcp_mocks):
        result = render_config(nodes_config("snp"), stack="gcp-test")
        assert one(result, NODE_POOL, "coco-cluster-system").inputs["nodeConfig"]["labels"] == {}

    def test_kubeconfig_secret_from_outputs(self, render_config, gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        provider = one(result, "pulumi:providers:kubernetes", "coco-cluster-k8s")
        assert "kubeconfig" in render.secret_paths(provider.inputs)
        config = yaml.safe_load(render.unwrap(provider.inputs["kubeconfig"]))
        (cluster,) = config["clusters"]
        assert cluster["cluster"] == {"server": f"https://{ENDPOINT}",
                                      "certificate-authority-data": CA}
        (user,) = config["users"]
        assert user["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"

    def test_attach_reads_the_existing_cluster(self, render_config, gcp_mocks):
        config = copy.deepcopy(SEV)
        config["coco:cluster"] = {"provider": "gke", "project": PROJECT, "zone": "europe-west4-a",
                                  "attach": True, "name": "prod-gke"}
        config["coco:nodePools"][0]["nodeSelector"] = WORKERS  # Ubuntu workers labelled for CAA
        result = render_config(config, stack="gcp-test")
        assert resources_of(result, "gcp:container/cluster:Cluster") == []
        assert resources_of(result, "gcp:compute/network:Network") == []
        assert "gcp:container/getCluster:getCluster" in gcp_mocks
        provider = one(result, "pulumi:providers:kubernetes", "coco-cluster-k8s")
        kubeconfig = yaml.safe_load(render.unwrap(provider.inputs["kubeconfig"]))
        assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{ATTACHED['endpoint']}"
        cm = peer_pods_cm(result)
        assert cm["GCP_NETWORK"] == ATTACHED["network"]
        assert cm["GCP_SUBNETWORK"] == ATTACHED["subnetwork"]
        firewall = one(result, "gcp:compute/firewall:Firewall")
        assert firewall.inputs["sourceRanges"] == [ATTACHED_SUBNET["ipCidrRange"]]

    @pytest.mark.parametrize(("reported", "expected"), [
        # pulumi_gcp: "the name or self_link"; the provider stores the GKE API's relative name
        ("prod-nodes", {"name": "prod-nodes", "region": "europe-west4", "project": PROJECT}),
        ("projects/host-proj/regions/europe-west1/subnetworks/shared",
         {"name": "shared", "region": "europe-west1", "project": "host-proj"}),
        ("https://www.googleapis.com/compute/v1/projects/host-proj/regions/europe-west1/"
         "subnetworks/shared", {"name": "shared", "region": "europe-west1",
                                "project": "host-proj"}),
    ])
    def test_attach_looks_the_subnet_up_by_name(self, render_config, gcp_mocks, monkeypatch,
                                                reported, expected):
        """getSubnetwork's self_link needs a full URL, which getCluster's `subnetwork` is not
        (hashicorp/terraform-provider-google#9919): look it up by name, region and project."""
        monkeypatch.setitem(conftest_gcp.ATTACHED, "subnetwork", reported)
        asked: list[dict[str, Any]] = []
        answer = conftest_gcp._InvokeMocks.call

        def call(self: Any, args: Any) -> Any:
            if args.token == "gcp:compute/getSubnetwork:getSubnetwork":
                asked.append(dict(args.args))
            return answer(self, args)

        monkeypatch.setattr(conftest_gcp._InvokeMocks, "call", call)
        config = copy.deepcopy(SEV)
        config["coco:cluster"] = {"provider": "gke", "project": PROJECT, "zone": "europe-west4-a",
                                  "attach": True, "name": "prod-gke"}
        config["coco:nodePools"][0]["nodeSelector"] = WORKERS  # Ubuntu workers labelled for CAA
        result = render_config(config, stack="gcp-test")
        assert asked == [expected]
        assert peer_pods_cm(result)["GCP_SUBNETWORK"] == ATTACHED_SUBNET["id"]

    @pytest.mark.parametrize("reported", ["", "projects/p/regions/r/subnetworks/"])
    def test_attach_without_a_subnet_names_the_key(self, render_config, gcp_mocks, monkeypatch,
                                                   reported):
        monkeypatch.setitem(conftest_gcp.ATTACHED, "subnetwork", reported)
        config = copy.deepcopy(SEV)
        config["coco:cluster"] = {"provider": "gke", "project": PROJECT, "zone": "europe-west4-a",
                                  "attach": True, "name": "prod-gke"}
        config["coco:nodePools"][0]["nodeSelector"] = WORKERS  # Ubuntu workers labelled for CAA
        with pytest.raises(SpecError) as info:
            render_config(config, stack="gcp-test")
        (issue,) = info.value.issues
        assert issue.path == "coco:cluster.attach"
        assert "prod-gke" in issue.message and "remove attach" in issue.hint


class TestConfidentialNodePools:
    """nodes mode: GKE node pools of Confidential GKE Nodes of the pool's TEE."""

    @pytest.mark.parametrize("tee", ["sev", "snp", "tdx"])
    def test_confidential_pool(self, render_config, gcp_mocks, tee):
        result = render_config(nodes_config(tee, zone="europe-west4-b", count=3), stack="gcp-test")
        reg = one(result, NODE_POOL, f"coco-pool-{tee}-nodes-nodes-gke")
        node = reg.inputs["nodeConfig"]
        offering = catalogue.find("gcp", tee, "nodes")
        assert offering is not None
        assert node["confidentialNodes"] == {
            "enabled": True,
            "confidentialInstanceType": peerpods.GCP_CONFIDENTIAL_TYPE[tee],
        }
        assert catalogue.family_of("gcp", node["machineType"]) in offering.families
        assert node.get("minCpuPlatform") == ("AMD Milan" if tee == "snp" else None)
        # GKE has no onHostMaintenance: the Confidential VM default (TERMINATE) applies, and the
        # pool must not ask for a maintenance policy of its own
        assert "hostMaintenancePolicy" not in node
        assert node["taints"] == [{"key": "coco-stack.io/tee", "value": tee,
                                   "effect": "NO_SCHEDULE"}]
        assert node["labels"] == {"coco-stack.io/pool": f"{tee}-nodes", "coco-stack.io/tee": tee,
                                  "node.kubernetes.io/worker": ""}
        assert node["resourceLabels"][TEE_LABEL] == tee
        assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
        assert reg.inputs["nodeLocations"] == ["europe-west4-b"]
        assert reg.inputs["nodeCount"] == 3
        pool = one(result, "coco:pools:NodePool", f"coco-pool-{tee}-nodes")
        component = one(result, "coco:gcp:ConfidentialNodePool")
        assert component.parent_urn == pool.urn and reg.parent_urn == component.urn

    @pytest.mark.parametrize(
        ("tee", "machine", "disk"),
        [("sev", "c4d-standard-4", "hyperdisk-balanced"), ("tdx", "c3-standard-4", "pd-balanced"),
         ("snp", "n2d-standard-4", "pd-balanced")],
    )
    def test_boot_disk_the_series_accepts(self, render_config, gcp_mocks, tee, machine, disk):
        """GKE nodes boot from a disk type their machine series accepts; a user's wins."""
        result = render_config(nodes_config(tee, instanceType=machine), stack="gcp-test")
        node = one(result, NODE_POOL, f"coco-pool-{tee}-nodes-nodes-gke").inputs["nodeConfig"]
        assert node["diskType"] == disk
        chosen = catalogue.gcp_disk_types(machine)[-1]  # the user's choice: last, not default
        result = render_config(nodes_config(tee, instanceType=machine, diskType=chosen),
                               stack="gcp-test")
        reg = one(result, NODE_POOL, f"coco-pool-{tee}-nodes-nodes-gke")
        assert reg.inputs["nodeConfig"]["diskType"] == chosen

    def test_machine_series_rule(self):
        """TDX runs on C3 only: an N2D size is refused with the key path, before any resource."""
        config = nodes_config("tdx", instanceType="n2d-standard-4")
        with pytest.raises(SpecError) as info:
            validate(config, stack="t")
        (issue,) = info.value.issues
        assert issue.path == "coco:nodePools[0].instanceType"
        assert "c3" in issue.hint

    def test_snp_only_on_n2d(self):
        with pytest.raises(SpecError) as info:
            validate(nodes_config("snp", instanceType="c2d-standard-4"), stack="t")
        assert [i.path for i in info.value.issues] == ["coco:nodePools[0].instanceType"]


class TestPeerPodInfrastructure:
    """peer-pods mode: firewall, CAA's identity and key, and every GCP_* key of peer-pods-cm
    taken from a resource output or the spec."""

    @pytest.mark.parametrize(("config", "tee"), [(SEV, "sev"), (TDX, "tdx")])
    def test_required_keys_sourced(self, render_config, gcp_mocks, config, tee):
        result = render_config(config, stack="gcp-test")
        cm = peer_pods_cm(result)
        pool = config["coco:nodePools"][0]
        image = one(result, "gcp:compute/image:Image")
        expected = {
            "GCP_PROJECT_ID": PROJECT,  # spec
            "GCP_ZONE": config["coco:cluster"]["zone"],  # spec
            "GCP_MACHINE_TYPE": pool["instanceType"],  # spec
            "GCP_CONFIDENTIAL_TYPE": peerpods.GCP_CONFIDENTIAL_TYPE[tee],  # spec
            "GCP_NETWORK": "coco-cluster-network-id",  # compute.Network output
            "GCP_SUBNETWORK": "coco-cluster-subnet-id",  # compute.Subnetwork output
            "PODVM_IMAGE_NAME": image.inputs["name"],  # compute.Image output
        }
        assert {k: cm[k] for k in expected} == expected
        # not CAA's default pd-standard, which C3 (TDX) refuses (cloud-api-adaptor#2258)
        assert cm["GCP_DISK_TYPE"] == "pd-balanced"
        assert set(peerpods.REQUIRED_KEYS["gcp"]) <= set(cm)
        assert "GCP_CREDENTIALS" not in cm

    def test_caa_identity_least_privilege(self, render_config, gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        roles = {r.name: r for r in resources_of(result, CUSTOM_ROLE)}
        assert sorted(roles) == ["coco-peer-pods-infra-role", "coco-peer-pods-infra-vm-role"]
        support = roles["coco-peer-pods-infra-role"].inputs["permissions"]
        instances = roles["coco-peer-pods-infra-vm-role"].inputs["permissions"]
        assert instances == sorted(gcp_peerpods.CAA_INSTANCE_PERMISSIONS)
        assert support == sorted(gcp_peerpods.CAA_SUPPORT_PERMISSIONS)
        assert "compute.instances.create" in instances
        assert not any(p.startswith("iam.") for p in support + instances)
        sa = one(result, "gcp:serviceaccount/account:Account", "coco-peer-pods-infra-sa")
        email = f"{sa.inputs['accountId']}@{PROJECT}.iam.gserviceaccount.com"
        key = one(result, "gcp:serviceaccount/key:Key")
        assert key.inputs["serviceAccountId"].endswith(email)
        for role_name, grant_name in [("coco-peer-pods-infra-role", "coco-peer-pods-infra-grant"),
                                      ("coco-peer-pods-infra-vm-role",
                                       "coco-peer-pods-infra-vm-grant")]:
            grant = one(result, IAM_MEMBER, grant_name)
            role_id = roles[role_name].inputs["roleId"]
            assert grant.inputs["role"] == f"projects/{PROJECT}/roles/{role_id}"
            assert grant.inputs["member"] == f"serviceAccount:{email}"
            assert grant.urn in key.dependencies

    def test_key_only_in_the_stack_secret(self, render_config, gcp_mocks, tmp_path):
        """CAA v0.22.0 needs GCP_CREDENTIALS (entrypoint.sh): the key file reaches the Secret
        peer-pods-secret as a secret, and nothing else: not Helm values, not the render."""
        result = render_config(SEV, stack="gcp-test")
        secret = one(result, "kubernetes:core/v1:Secret", "coco-peer-pods-credentials")
        assert secret.inputs["metadata"]["name"] == peerpods.SECRET_NAME
        assert render.secret_paths(secret.inputs) == ["stringData"]
        assert render.unwrap(secret.inputs["stringData"])["GCP_CREDENTIALS"] == KEY_FILE
        values = render.unwrap(one(result, RELEASE, "coco-peer-pods-chart").inputs["values"])
        assert values["secrets"] == {"mode": "reference",
                                     "existingSecretName": peerpods.SECRET_NAME}
        for reg in result.registrations:
            if reg is not secret:
                plain = json.dumps(render.redact(reg.inputs))
                assert KEY_MATERIAL not in plain, reg.name
        render.write(result, tmp_path)
        blob = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
        assert KEY_MATERIAL.encode() not in blob
        assert b"GCP-KEY" not in blob

    def test_firewall_opens_forwarder_and_vxlan_from_nodes(self, render_config, gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        firewall = one(result, "gcp:compute/firewall:Firewall")
        assert firewall.inputs["network"] == "coco-cluster-network-id"
        assert firewall.inputs["direction"] == "INGRESS"
        assert firewall.inputs["sourceRanges"] == [
            one(result, "gcp:compute/subnetwork:Subnetwork").inputs["ipCidrRange"]
        ]
        assert firewall.inputs["allows"] == [{"protocol": "tcp", "ports": ["15150"]},
                                             {"protocol": "udp", "ports": ["4789"]}]

    def test_kubernetes_objects_valid(self, render_config, gcp_mocks):
        assert assert_valid_kubernetes(render_config(SEV, stack="gcp-test")) >= 1

    def test_decode_key(self):
        import base64

        assert gcp_peerpods.decode_key(base64.b64encode(b'{"a": 1}').decode()) == '{"a": 1}'
        assert gcp_peerpods.decode_key(None) == ""


class TestCaaInstancePower:
    """The key sits in a Kubernetes Secret: it may create, read, re-script and delete only VMs
    named like CAA's pod VMs, never the GKE nodes or any other VM of the project."""

    def test_instance_permissions_only_behind_the_pod_vm_condition(self, render_config,
                                                                   gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        roles = {r.inputs["roleId"]: r for r in resources_of(result, CUSTOM_ROLE)}
        caa = [g for g in resources_of(result, IAM_MEMBER) if g.name.startswith("coco-peer-pods")]
        assert len(caa) == 2
        unconditioned = [g for g in caa if "condition" not in g.inputs]
        conditioned = [g for g in caa if "condition" in g.inputs]
        assert len(unconditioned) == len(conditioned) == 1
        (free,), (guarded,) = unconditioned, conditioned
        free_permissions = roles[free.inputs["role"].rsplit("/", 1)[-1]].inputs["permissions"]
        assert not any(p.startswith("compute.instances.") for p in free_permissions)
        guarded_role = roles[guarded.inputs["role"].rsplit("/", 1)[-1]]
        assert {p.split(".")[1] for p in guarded_role.inputs["permissions"]} == {"instances"}
        assert guarded.inputs["condition"] == {
            "title": "coco-stack pod VMs only",
            "description": "instances named podvm-* (cloud-api-adaptor's pod VMs)",
            "expression": 'resource.type == "compute.googleapis.com/Instance" && '
            'resource.name.extract("/instances/{name}").startsWith("podvm-")',
        }


class TestImage:
    """The GuestImage's disk.raw.tar.gz is uploaded and registered with the guest OS features a
    confidential VM of the pool's TEE needs; its name is PODVM_IMAGE_NAME."""

    @pytest.mark.parametrize(("config", "tee", "feature"),
                             [(SEV, "sev", "SEV_CAPABLE"), (TDX, "tdx", "TDX_CAPABLE")])
    def test_guest_os_features(self, render_config, gcp_mocks, config, tee, feature):
        result = render_config(config, stack="gcp-test")
        image = one(result, "gcp:compute/image:Image")
        features = [f["type"] for f in image.inputs["guestOsFeatures"]]
        assert features == sorted(["GVNIC", "UEFI_COMPATIBLE", "VIRTIO_SCSI_MULTIQUEUE", feature])
        assert image.inputs["labels"][TEE_LABEL] == tee
        assert image.inputs["project"] == PROJECT

    def test_upload_of_the_built_artifact(self, render_config, gcp_mocks):
        result = render_config(SEV, stack="gcp-test")
        build = one(result, "coco:image:GuestImage")
        upload = one(result, "gcp:storage/bucketObject:BucketObject")
        bucket = one(result, "gcp:storage/bucket:Bucket")
        image = one(result, "gcp:compute/image:Image")
        asset = upload.inputs["source"]["$asset"]
        assert asset["path"].endswith("build/images/gcp-test/disk.raw.tar.gz")
        assert image.inputs["rawDisk"]["source"] == (
            f"https://storage.googleapis.com/{bucket.inputs['name']}/{upload.inputs['name']}"
        )
        assert bucket.inputs["publicAccessPrevention"] == "enforced"
        assert bucket.inputs["uniformBucketLevelAccess"] is True
        # a new recipe publishes a new image: the name carries the recipe's content hash
        recipe_hash, _pins = one(result, "command:local:Command").inputs["triggers"]
        assert recipe_hash[:12] in image.inputs["name"]
        assert recipe_hash[:12] in upload.inputs["name"]
        assert upload.urn in image.dependencies
        # published by the peer-pods step, not inside the build component
        assert image.parent_urn == one(result, "coco:gcp:PodVmImage").urn != build.urn

    def test_measurements_reach_the_kbs(self, render_config, gcp_mocks):
        result = render_config(TDX, stack="gcp-test")
        data = render.unwrap(
            one(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values").inputs
        )["data"]
        assert "snp_launch_measurement" in data and "m" * 96 in data["snp_launch_measurement"]

    def test_existing_image_is_not_published(self, render_config, gcp_mocks):
        config = peer_pods_config("sev", "n2d-standard-2", "europe-west4-a",
                                  podvmImage="my-podvm-image")
        result = render_config(config, stack="gcp-test")
        assert resources_of(result, "gcp:compute/image:Image") == []
        assert resources_of(result, "gcp:storage/bucket:Bucket") == []
        assert peer_pods_cm(result)["PODVM_IMAGE_NAME"] == "my-podvm-image"

    def test_features_refuse_unknown_tee(self):
        with pytest.raises(ValueError, match="no confidential GCP VM"):
            gcp_image.guest_os_features("se")


def _policy_messages(reg: render.Registration) -> list[str]:
    props = render.unwrap({k: v for k, v in reg.inputs.items() if not k.startswith("__")})
    messages: list[str] = []
    for policy in coco_policies.POLICIES:
        opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
        args = ResourceValidationArgs(
            reg.type,
            unknown_checking_proxy(deserialize_properties(copy.deepcopy(props))),
            f"urn:pulumi:test::coco::{reg.type}::{reg.name}",
            reg.name,
            opts,
            None,
            None,
        )
        validate_fn = policy.validate
        assert callable(validate_fn)
        validate_fn(args, lambda message, urn=None: messages.append(message))
    return messages


class TestPolicies:
    """The CrossGuard pack (policy/) recognises the stack's GCP TEE resources by their
    coco-stack-tee label and finds them confidential."""

    @pytest.mark.parametrize("config", [SEV, TDX, nodes_config("snp"), nodes_config("tdx")])
    def test_gcp_resources_pass(self, render_config, gcp_mocks, config):
        result = render_config(config, stack="gcp-test")
        marked = [r for r in gcp_registrations(result) if TEE_LABEL in json.dumps(r.inputs)]
        assert marked
        for reg in gcp_registrations(result):
            assert _policy_messages(reg) == [], reg.name

    def test_policy_sees_a_wrong_type(self, render_config, gcp_mocks):
        result = render_config(nodes_config("snp"), stack="gcp-test")
        reg = copy.deepcopy(one(result, NODE_POOL, "coco-pool-snp-nodes-nodes-gke"))
        reg.inputs["nodeConfig"]["confidentialNodes"]["confidentialInstanceType"] = "SEV"
        assert any("confidentialNodes" in m for m in _policy_messages(reg))


class TestSampleStacks:
    """stacks/Pulumi.gcp-*.yaml render, the same bytes twice, without a credential in them."""

    @pytest.mark.parametrize("stack", ["gcp-snp", "gcp-tdx", "gcp-sev-nodes"])
    def test_render(self, stack, tmp_path):
        # two fresh renders (the render_stack fixture shares one render between tests)
        first, second = tmp_path / "1", tmp_path / "2"
        render.write(render.run_stack(stack, ROOT), first)
        render.write(render.run_stack(stack, ROOT), second)
        files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        assert files and all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
        document = json.loads((first / "resources.json").read_text())
        assert any(r["type"].startswith("gcp:") for r in document["resources"])


def test_gcp_name():
    assert gcp_name("gcp-snp") == "gcp-snp"
    long = gcp_name("My_Stack.Name-" + "x" * 80, 30)
    assert len(long) <= 30 and long[0].isalpha() and long == long.lower()
    assert gcp_name("a" * 40, 30) != gcp_name("a" * 41, 30)


class TestImageRecipeRule:
    """GCP peer pods publish disk.raw.tar.gz: a recipe without gcp-tar is refused up front."""

    def _recipe(self, tmp_path, formats: str) -> str:
        from tests.conftest import ROOT

        text = (ROOT / "images" / "recipes" / "minimal.toml").read_text()
        text = text.replace('formats = ["raw", "qcow2", "azure-vhd", "gcp-tar"]', formats)
        path = tmp_path / "nogcp.toml"
        path.write_text(text)
        # a copy: recipes refuse payload links pointing out of their folder
        payload = "minimal-payload"
        shutil.copytree(ROOT / "images" / "recipes" / payload, tmp_path / payload)
        return str(path)

    def test_recipe_without_gcp_tar(self, tmp_path):
        recipe = self._recipe(tmp_path, 'formats = ["raw", "qcow2"]')
        with pytest.raises(SpecError) as info:
            validate(peer_pods_config("sev", "n2d-standard-2", "europe-west4-a", recipe=recipe),
                     stack="t")
        (issue,) = info.value.issues
        assert issue.path == "coco:image.recipe" and "gcp-tar" in issue.message
        assert "gcp-tar" in issue.hint

    def test_recipe_with_gcp_tar_or_existing_image(self, tmp_path):
        recipe = self._recipe(tmp_path, 'formats = ["raw", "gcp-tar"]')
        for config in (
            peer_pods_config("sev", "n2d-standard-2", "europe-west4-a", recipe=recipe),
            peer_pods_config("sev", "n2d-standard-2", "europe-west4-a", podvmImage="an-image"),
        ):
            spec, warnings = validate(config, stack="t")  # raises SpecError on any error
            assert spec.node_pools[0].mode == "peer-pods"
            assert "coco:image.recipe" not in [w.path for w in warnings]
