"""Azure (components.azure) under Pulumi mocks with the project's real program: AKS cluster and
kubeconfig, confidential node pools, pod-VM image publishing, peer-pod identity and network, the
sample stacks, spec errors and the Resource SKUs preflight against recorded response shapes.

The mocks answer what the azure-native provider computes (OIDC issuer, identity ids, storage
endpoints) and the invokes the program makes (client config, cluster credentials, storage keys),
each with values the tests then look for, so every assertion can fail.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import render
from components import peerpods as pp
from components.azure import common, image, preflight, upload
from components.azure import peerpods as azure_pp
from spec import versions
from spec.errors import NoCredentials, SpecError
from spec.validate import validate
from tests.conftest import ROOT, assert_valid_kubernetes, one, resources_of
from tests.test_policies import props_of
from tests.test_policies import validate as run_policy

FIXTURES = Path(__file__).parent / "fixtures" / "azure"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
ISSUER = "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/"
CAA_CLIENT_ID = "caa-client-id-5555"
CAA_PRINCIPAL = "caa-principal-6666"
CLUSTER_PRINCIPAL = "cluster-principal-7777"
KUBECONFIG = "apiVersion: v1\nusers:\n- user: {token: KUBE-SECRET-TOKEN}\n"
STORAGE_KEY = "STORAGE-KEY-SECRET"
ATTACHED_SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/net/providers/Microsoft.Network/"
    "virtualNetworks/vnet/subnets/aks"
)
VHD_SHA = "ab12cd34" + "0" * 56
BUILT = {
    "artifacts": {"disk.vhd": {"sha256": VHD_SHA, "size": 1048576}},
    "reference_values": {},
}
MANAGED = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
ROLE = "azure-native:authorization:RoleAssignment"
FEDERATED = "azure-native:managedidentity:FederatedIdentityCredential"
RELEASE = "kubernetes:helm.sh/v3:Release"

# peer pods on an attached cluster confirm their workers are labelled for CAA
# (spec.rules.clouds.attached_peer_pod_workers)
WORKERS = {"node.kubernetes.io/worker": ""}
SNP_PEER_PODS = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "aks", "location": "westeurope"},
    "coco:nodePools": [{"name": "snp", "tee": "snp"}],
    "coco:kbs": {"expose": "loadbalancer", "hostname": "kbs.example.com"},
    "coco:image": {"recipe": "podvm"},
}


class AzureMocks:
    """Provider outputs and invoke results of azure-native, recorded calls for assertions."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == MANAGED:
            state["oidcIssuerProfile"] = {"enabled": True, "issuerURL": ISSUER}
            state["identity"] = {"type": "SystemAssigned", "principalId": CLUSTER_PRINCIPAL}
        elif args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            state.update(clientId=CAA_CLIENT_ID, principalId=CAA_PRINCIPAL)
        elif args.typ == "azure-native:storage:StorageAccount":
            state["primaryEndpoints"] = {"blob": "https://acct.blob.core.windows.net/"}
        elif args.typ == "command:local:Command" and "image build" in str(state.get("create")):
            state["stdout"] = json.dumps(BUILT)
        else:
            return self.inner.new_resource(args)  # type: ignore[no-any-return]
        return f"{args.name}-id", state

    def call(self, args: Any) -> dict[str, Any]:
        self.calls.append((args.token, dict(args.args)))
        token = args.token.rsplit(":", 1)[-1]
        if token == "getClientConfig":
            return {"subscriptionId": SUBSCRIPTION, "tenantId": "t", "clientId": "c",
                    "objectId": "o"}
        if token == "listManagedClusterUserCredentials":
            value = base64.b64encode(KUBECONFIG.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}
        if token == "getManagedCluster":
            return {
                "oidcIssuerProfile": {"enabled": True, "issuerURL": ISSUER},
                "agentPoolProfiles": [{"name": "nodepool1", "vnetSubnetID": ATTACHED_SUBNET}],
            }
        if token == "listStorageAccountKeys":
            return {"keys": [{"keyName": "key1", "value": STORAGE_KEY, "permissions": "FULL"}]}
        return {}


@contextlib.contextmanager
def _installed() -> Iterator[list[AzureMocks]]:
    import pulumi.runtime.mocks as mocks

    made: list[AzureMocks] = []
    original = mocks.set_mocks

    def set_mocks(the_mocks: Any, *a: Any, **kw: Any) -> None:
        wrapped = AzureMocks(the_mocks)
        made.append(wrapped)
        if kw.get("monitor") is not None:
            kw["monitor"].mocks = wrapped
        original(wrapped, *a, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mocks, "set_mocks", set_mocks)
        yield made


@pytest.fixture
def azure() -> Iterator[list[AzureMocks]]:
    """AzureMocks around every render's mocks; the list holds one instance per render."""
    with _installed() as made:
        yield made


@pytest.fixture(scope="module")
def snp() -> Iterator[tuple[render.Render, AzureMocks]]:
    """The SNP peer-pods stack rendered once for the tests that only read it."""
    with _installed() as made:
        result = render.run(SNP_PEER_PODS, stack="test", project_dir=ROOT)
        yield result, made[-1]


def _render(config: dict[str, Any]) -> render.Render:
    return render.run(config, stack="test", project_dir=ROOT)


def _values(result: render.Render) -> dict[str, Any]:
    return render.unwrap(one(result, RELEASE, "coco-peer-pods-chart").inputs["values"])  # type: ignore[no-any-return]


def _roles(result: render.Render) -> dict[str, tuple[str, str, str]]:
    """name -> (role guid, scope, principal) of every role assignment."""
    found = {}
    for r in resources_of(result, ROLE):
        inputs = render.unwrap(r.inputs)
        guid = inputs["roleDefinitionId"].rsplit("/", 1)[-1]
        found[r.name] = (guid, inputs["scope"], inputs["principalId"])
    return found


class TestCluster:
    """A created AKS cluster has OIDC issuer, workload identity, the pinned version and a system
    pool labelled for CAA; its kubeconfig reaches the Kubernetes provider only as a secret."""

    def test_cluster_shape(self, snp):
        result, _ = snp
        cluster = render.unwrap(one(result, MANAGED).inputs)
        assert cluster["kubernetesVersion"] == versions.KUBERNETES_VERSION
        assert cluster["oidcIssuerProfile"] == {"enabled": True}
        assert cluster["securityProfile"] == {"workloadIdentity": {"enabled": True}}
        assert cluster["identity"] == {"type": "SystemAssigned"}
        (system,) = cluster["agentPoolProfiles"]
        assert system["mode"] == "System" and system["osSKU"] == "Ubuntu"
        assert system["nodeLabels"] == {"node.kubernetes.io/worker": ""}
        assert system["vnetSubnetID"] == "coco-cluster-nodes-subnet-id"
        assert "addonProfiles" not in cluster
        guid, scope, principal = _roles(result)["coco-cluster-vnet-network-contributor"]
        assert (guid, scope, principal) == (
            common.NETWORK_CONTRIBUTOR, "coco-cluster-vnet-id", CLUSTER_PRINCIPAL
        )

    def test_kubeconfig_is_a_secret(self, snp):
        result, calls = snp
        provider = one(result, "pulumi:providers:kubernetes")
        assert render.secret_paths(provider.inputs) == ["kubeconfig"]
        assert render.unwrap(provider.inputs)["kubeconfig"] == KUBECONFIG
        (args,) = [a for t, a in calls.calls if t.endswith("listManagedClusterUserCredentials")]
        assert args == {"resourceGroupName": "test-rg", "resourceName": "test"}
        assert "KUBE-SECRET-TOKEN" not in render.dumps_json(result.document())

    def test_attach_creates_no_cluster(self, azure):
        config = {
            **SNP_PEER_PODS,
            "coco:cluster": {"provider": "aks", "location": "westeurope", "attach": True,
                             "name": "prod", "resourceGroup": "prod-rg"},
            "coco:nodePools": [{**SNP_PEER_PODS["coco:nodePools"][0], "nodeSelector": WORKERS}],
        }
        result = _render(config)
        for type_ in (MANAGED, "azure-native:resources:ResourceGroup",
                      "azure-native:network:VirtualNetwork", "azure-native:network:Subnet"):
            assert resources_of(result, type_) == [], type_
        assert _values(result)["providerConfigs"]["azure"]["AZURE_SUBNET_ID"] == ATTACHED_SUBNET
        roles = _roles(result)
        assert roles["coco-peer-pods-infra-subnet-network-contributor"][:2] == (
            common.NETWORK_CONTRIBUTOR, ATTACHED_SUBNET
        )
        issuers = {render.unwrap(r.inputs)["issuer"] for r in resources_of(result, FEDERATED)}
        assert issuers == {ISSUER}

    @pytest.fixture
    def managed_vnet(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """getManagedCluster of a cluster whose VNet AKS made: its pool has no vnetSubnetID."""
        answer = AzureMocks.call

        def call(self: AzureMocks, args: Any) -> dict[str, Any]:
            result = answer(self, args)
            if args.token.endswith("getManagedCluster"):
                result["agentPoolProfiles"] = [{"name": "nodepool1"}]
            return result

        monkeypatch.setattr(AzureMocks, "call", call)

    def test_attach_to_aks_managed_vnet_is_refused(self, azure, managed_vnet):
        """AZURE_SUBNET_ID would be "" and the subnet role assignment's scope empty: say so at
        coco:cluster.attach instead of letting Azure refuse an empty scope."""
        config = {
            **SNP_PEER_PODS,
            "coco:cluster": {"provider": "aks", "location": "westeurope", "attach": True,
                             "name": "prod", "resourceGroup": "prod-rg"},
            "coco:nodePools": [{**SNP_PEER_PODS["coco:nodePools"][0], "nodeSelector": WORKERS}],
        }
        with pytest.raises(SpecError) as info:
            _render(config)
        (issue,) = info.value.issues
        assert issue.path == "coco:cluster.attach"
        assert "prod" in issue.message and "prod-rg" in issue.message
        assert "coco:nodePools[0]" in issue.message
        assert "--vnet-subnet-id" in issue.hint and "remove attach" in issue.hint

    def test_attach_with_a_named_pod_vm_subnet(self, azure, managed_vnet):
        """podVmSubnet gives the pod VMs a subnet where the attached cluster has none."""
        subnet = ("/subscriptions/s/resourceGroups/net-rg/providers/Microsoft.Network/"
                  "virtualNetworks/shared/subnets/podvms")
        config = {
            **SNP_PEER_PODS,
            "coco:cluster": {"provider": "aks", "location": "westeurope", "attach": True,
                             "name": "prod", "resourceGroup": "prod-rg"},
            "coco:nodePools": [{"name": "snp", "tee": "snp", "podVmSubnet": subnet,
                                "nodeSelector": {"node.kubernetes.io/worker": ""}}],
        }
        result = _render(config)
        assert _values(result)["providerConfigs"]["azure"]["AZURE_SUBNET_ID"] == subnet
        scopes = [render.unwrap(r.inputs)["scope"] for r in resources_of(result, ROLE)]
        assert subnet in scopes  # Network Contributor on the subnet the NICs join

    def test_attach_to_aks_managed_vnet_without_peer_pods(self, azure, managed_vnet):
        """Nodes-mode pools need no pod-VM subnet: the same cluster is fine for them."""
        config = {
            **SNP_PEER_PODS,
            "coco:cluster": {"provider": "aks", "location": "westeurope", "attach": True,
                             "name": "prod", "resourceGroup": "prod-rg"},
            "coco:nodePools": [{"name": "cvm", "tee": "snp", "mode": "nodes"}],
            "coco:image": {},
        }
        result = _render(config)
        assert len(resources_of(result, AGENT_POOL)) == 1
        assert resources_of(result, ROLE) == []


CVM_NODES = {
    **SNP_PEER_PODS,
    "coco:nodePools": [{"name": "cvm", "tee": "snp", "mode": "nodes", "count": 3}],
    "coco:image": {},
}


class TestNodesPools:
    """Nodes-mode pools are AKS agent pools of confidential sizes with an OS SKU AKS accepts for
    confidential VMs, the stack's TEE labels, taints and the policy marker tag."""

    def test_agent_pool(self, azure):
        result = _render(CVM_NODES)
        pool = render.unwrap(one(result, AGENT_POOL).inputs)
        assert pool["vmSize"] == "Standard_DC4as_v5"
        assert pool["osSKU"] == "Ubuntu" and pool["mode"] == "User" and pool["count"] == 3
        assert pool["agentPoolName"] == "cvm"
        assert pool["nodeLabels"]["coco-stack.io/tee"] == "snp"
        assert pool["nodeTaints"] == ["coco-stack.io/tee=snp:NoSchedule"]
        assert pool["tags"][common.TEE_TAG] == "snp"
        assert one(result, AGENT_POOL).parent_urn == one(
            result, "coco:azure:AksNodePool").urn
        # no peer pods, yet the system pool is labelled for CAA: agentPoolProfiles is ignored
        # after creation, so a peer-pods pool added later could not label it any more
        system = render.unwrap(one(result, MANAGED).inputs)["agentPoolProfiles"][0]
        assert system["nodeLabels"] == {"node.kubernetes.io/worker": ""}
        # the policy pack accepts the pool, and would refuse it with a non-confidential size
        props = props_of(result, AGENT_POOL, "coco-pool-cvm-nodes-agentpool")
        assert run_policy("confidential-pools", AGENT_POOL, props) == []
        assert run_policy("confidential-pools", AGENT_POOL, {**props, "vmSize": "Standard_D4s_v5"})

    def test_sgx_pool_gets_device_plugin_and_no_runtime(self, azure):
        config = {**CVM_NODES,
                  "coco:nodePools": [{"name": "sgx", "tee": "sgx", "mode": "nodes"}]}
        result = _render(config)
        addons = render.unwrap(one(result, MANAGED).inputs)["addonProfiles"]
        assert addons["ACCSGXDevicePlugin"]["enabled"] is True
        assert render.unwrap(one(result, AGENT_POOL).inputs)["vmSize"] == "Standard_DC4s_v3"
        assert resources_of(result, "kubernetes:node.k8s.io/v1:RuntimeClass") == []
        assert any("coco:nodePools[0].tee" in w and "no CoCo runtime" in w
                   for w in result.warnings)


class TestPeerPods:
    """CAA gets a workload identity federated to exactly its service accounts, roles scoped to
    the resource group and the image, a NAT'd pod-VM subnet with an NSG, and every required
    AZURE_* key from a resource output or the spec; no credential anywhere."""

    def test_identity_and_roles(self, snp):
        result, _ = snp
        subjects = sorted(render.unwrap(r.inputs)["subject"]
                          for r in resources_of(result, FEDERATED))
        assert subjects == [
            "system:serviceaccount:confidential-containers-system:cloud-api-adaptor",
            "system:serviceaccount:confidential-containers-system:peerpodctrl-controller-manager",
        ]
        for r in resources_of(result, FEDERATED):
            inputs = render.unwrap(r.inputs)
            assert inputs["issuer"] == ISSUER
            assert inputs["audiences"] == ["api://AzureADTokenExchange"]
            assert inputs["resourceName"] == "test-caa"
        # Azure refuses concurrent federated-credential writes on one identity: a chain
        first, second = resources_of(result, FEDERATED)
        assert first.urn in second.dependencies or second.urn in first.dependencies
        roles = {n: v for n, v in _roles(result).items() if v[2] == CAA_PRINCIPAL}
        assert sorted((g, s) for g, s, _ in roles.values()) == sorted([
            (common.VIRTUAL_MACHINE_CONTRIBUTOR,
             f"/subscriptions/{SUBSCRIPTION}/resourceGroups/test-rg"),
            (common.READER, "coco-podvm-image-version-id"),
        ])
        for r in resources_of(result, ROLE):
            assert render.unwrap(r.inputs)["roleDefinitionId"].startswith(
                f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
            )

    def test_provider_config_keys_are_sourced(self, snp):
        result, _ = snp
        values = _values(result)
        config = values["providerConfigs"]["azure"]
        expected = {
            "AZURE_IMAGE_ID": "coco-podvm-image-version-id",  # GalleryImageVersion output
            "AZURE_NSG_ID": "coco-peer-pods-infra-nsg-id",
            "AZURE_SUBNET_ID": "coco-peer-pods-infra-subnet-id",
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,  # getClientConfig
            "AZURE_RESOURCE_GROUP": "test-rg",
            "AZURE_REGION": "westeurope",  # spec
            "AZURE_INSTANCE_SIZE": "Standard_DC2as_v5",  # spec (catalogue default)
        }
        assert {k: config[k] for k in expected} == expected
        assert set(pp.REQUIRED_KEYS["azure"]) <= set(config)
        assert not set(config) & pp.CREDENTIAL_KEYS["azure"]
        for part in ("daemonset", "resourceCtrl"):
            # besides the config checksum components.peerpods may add (another concern)
            labels = {k: v for k, v in values[part]["podLabels"].items()
                      if k != "coco-stack.io/config-checksum"}
            assert labels == {"azure.workload.identity/use": "true"}
            assert values[part]["serviceAccount"]["annotations"] == {
                "azure.workload.identity/client-id": CAA_CLIENT_ID
            }
        assert values["secrets"] == {"mode": "reference", "existingSecretName": ""}
        assert resources_of(result, "kubernetes:core/v1:Secret") != []  # KBS secrets only
        assert pp.SECRET_NAME not in {
            render.unwrap(s.inputs)["metadata"]["name"]
            for s in resources_of(result, "kubernetes:core/v1:Secret")
        }

    def test_podvm_subnet(self, snp):
        result, _ = snp
        subnet = render.unwrap(one(result, "azure-native:network:Subnet",
                                   "coco-peer-pods-infra-subnet").inputs)
        assert subnet["natGateway"] == {"id": "coco-peer-pods-infra-nat-id"}
        assert subnet["networkSecurityGroup"] == {"id": "coco-peer-pods-infra-nsg-id"}
        assert subnet["virtualNetworkName"] == "test-vnet"
        assert subnet["addressPrefix"] == common.PODVM_SUBNET_CIDR
        nat = render.unwrap(one(result, "azure-native:network:NatGateway").inputs)
        assert nat["publicIpAddresses"] == [{"id": "coco-peer-pods-infra-nat-ip-id"}]

    def test_existing_community_image_needs_no_reader_or_gallery(self, azure):
        # the id format of the upstream community gallery images (confidentialcontainers.org
        # content/en/docs/examples/azure-simple.md); the gallery name here is made up
        community = "/CommunityGalleries/example-gallery/Images/podvm/Versions/0.22.0"
        config = {**SNP_PEER_PODS, "coco:image": {"podvmImage": community}}
        result = _render(config)
        assert _values(result)["providerConfigs"]["azure"]["AZURE_IMAGE_ID"] == community
        assert resources_of(result, "azure-native:compute:Gallery") == []
        assert common.READER not in {g for g, _, _ in _roles(result).values()}

    def test_federated_subject_matches_chart_service_account(self):
        assert azure_pp.federated_subject("cloud-api-adaptor") == (
            f"system:serviceaccount:{versions.PEERPODS_NAMESPACE}:cloud-api-adaptor"
        )


class TestImage:
    """The GuestImage's VHD goes up as a page blob (its key a secret) and becomes a gallery image
    version whose definition allows confidential VMs; the version name follows the digest."""

    def test_gallery_image(self, snp):
        result, _ = snp
        definition = render.unwrap(one(result, "azure-native:compute:GalleryImage").inputs)
        assert definition["features"] == [{"name": "SecurityType",
                                           "value": "ConfidentialVmSupported"}]
        assert definition["hyperVGeneration"] == "V2"
        assert definition["osState"] == "Generalized" and definition["osType"] == "Linux"
        assert definition["tags"][common.TEE_TAG] == "snp"
        props = props_of(result, "azure-native:compute:GalleryImage",
                         "coco-podvm-image-definition")
        assert run_policy("peer-pod-image-tee-features", "azure-native:compute:GalleryImage",
                          props) == []
        version = render.unwrap(one(result, "azure-native:compute:GalleryImageVersion").inputs)
        assert version["galleryImageVersionName"] == image.image_version(VHD_SHA) == "1.43794.52532"
        source = version["storageProfile"]["osDiskImage"]["source"]
        assert source["uri"] == "https://acct.blob.core.windows.net/podvm-images/podvm-ab12cd3400000000.vhd"
        assert source["storageAccountId"] == "coco-podvm-image-storage-id"
        account = render.unwrap(one(result, "azure-native:storage:StorageAccount").inputs)
        assert account["allowBlobPublicAccess"] is False
        assert account["accountName"] == image.storage_account_name(SUBSCRIPTION, "test-rg", "test")

    def test_upload_command_and_secret_key(self, snp):
        result, _ = snp
        upload_cmd = one(result, "command:local:Command", "coco-podvm-image-upload")
        create = render.unwrap(upload_cmd.inputs)["create"]
        assert "components.azure.upload" in create and "--blob podvm-ab12cd3400000000.vhd" in create
        assert render.unwrap(upload_cmd.inputs)["triggers"] == [VHD_SHA]
        assert render.secret_paths(upload_cmd.inputs) == ["environment.AZURE_STORAGE_KEY"]
        assert render.unwrap(upload_cmd.inputs)["environment"]["AZURE_STORAGE_KEY"] == STORAGE_KEY
        version = one(result, "azure-native:compute:GalleryImageVersion")
        assert upload_cmd.urn in version.dependencies

    def test_image_version_names(self):
        assert image.image_version("") == "1.0.0"
        assert image.image_version("ffffffff") == "1.65535.65535"
        a = image.storage_account_name("s", "g", "c")
        assert a == image.storage_account_name("s", "g", "c") and len(a) <= 24 and a.isalnum()
        assert a != image.storage_account_name("s2", "g", "c")


class TestUploadTool:
    """The page-blob upload refuses to run without a key or with a file of partial pages."""

    def test_refusals(self, tmp_path, monkeypatch, capsys):
        vhd = tmp_path / "disk.vhd"
        vhd.write_bytes(b"\0" * 1000)
        argv = ["--account-url", "https://a.blob.core.windows.net/", "--container", "c",
                "--blob", "b", str(vhd)]
        monkeypatch.delenv("AZURE_STORAGE_KEY", raising=False)
        assert upload.main(argv) == 2
        monkeypatch.setenv("AZURE_STORAGE_KEY", "k")
        assert upload.main(argv) == 2
        assert "512-byte pages" in capsys.readouterr().err


class TestSecretsNotRendered:
    """No kubeconfig and no storage key in plain text in `coco render` output."""

    def test_render_output(self, snp, tmp_path):
        result, _ = snp
        render.write(result, tmp_path / "out")
        blob = b"".join(p.read_bytes() for p in sorted((tmp_path / "out").rglob("*"))
                        if p.is_file())
        for needle in (b"KUBE-SECRET-TOKEN", STORAGE_KEY.encode(),
                       base64.b64encode(KUBECONFIG.encode())):
            assert needle not in blob
        assert b"[secret]" in blob


class TestSampleStacks:
    """The Azure sample stacks render, validate and render deterministically."""

    @pytest.mark.parametrize("stack", ["azure-snp", "azure-tdx", "azure-cvm"])
    def test_renders(self, azure, stack):
        result = render.run_stack(stack, ROOT)
        assert assert_valid_kubernetes(result) >= 1
        sizes = _values(result)["providerConfigs"]["azure"]["AZURE_INSTANCE_SIZES"]
        expected = {"azure-snp": "Standard_DC2as_v5", "azure-tdx": "Standard_DC4es_v5",
                    "azure-cvm": "Standard_DC2as_v5"}
        assert sizes == expected[stack]

    def test_deterministic(self, azure):
        first = render.dumps_json(render.run_stack("azure-cvm", ROOT).document())
        assert first == render.dumps_json(render.run_stack("azure-cvm", ROOT).document())


def _issues(config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        validate(config, stack="t")
    return [(i.path, i.message) for i in info.value.issues]


class TestSpecErrors:
    """Single mistakes in Azure stacks name the key path, before anything is registered."""

    def test_non_confidential_size(self):
        pools = [{"name": "snp", "tee": "snp", "instanceType": "Standard_D4s_v5"}]
        ((path, message),) = _issues({**SNP_PEER_PODS, "coco:nodePools": pools})
        assert path == "coco:nodePools[0].instanceType" and "not a confidential snp" in message

    def test_tdx_size_for_snp(self):
        pools = [{"name": "snp", "tee": "snp", "instanceType": "Standard_DC2es_v5"}]
        ((path, _),) = _issues({**SNP_PEER_PODS, "coco:nodePools": pools})
        assert path == "coco:nodePools[0].instanceType"

    def test_bad_location(self):
        cluster = {"provider": "aks", "location": "West Europe"}
        ((path, _),) = _issues({**SNP_PEER_PODS, "coco:cluster": cluster})
        assert path == "coco:cluster.location"

    def test_bad_pool_region(self):
        pools = [{"name": "snp", "tee": "snp", "region": "eu-west-1"}]
        paths = [p for p, _ in _issues({**SNP_PEER_PODS, "coco:nodePools": pools})]
        assert paths == ["coco:nodePools[0].region"]

    def test_tee_not_on_azure(self):
        pools = [{"name": "se", "tee": "se"}]
        ((path, _),) = _issues({**SNP_PEER_PODS, "coco:nodePools": pools})
        assert path == "coco:nodePools[0].tee"

    def test_aks_pool_name(self):
        pools = [{"name": "snp-nodes", "tee": "snp", "mode": "nodes"}]
        ((path, message),) = _issues({**SNP_PEER_PODS, "coco:nodePools": pools,
                                      "coco:image": {}})
        assert path == "coco:nodePools[0].name" and "AKS" in message

    def test_registers_nothing(self, azure):
        pools = [{"name": "snp", "tee": "snp", "instanceType": "Standard_D4s_v5"}]
        with pytest.raises(SpecError):
            _render({**SNP_PEER_PODS, "coco:nodePools": pools})
        assert azure == []  # mocks never installed: validation stopped first


class RecordedSkus:
    """SkuClient over the recorded response, every entry parsed by the SDK's ResourceSku."""

    def __init__(self) -> None:
        from azure.mgmt.compute.models import ResourceSku

        raw = json.loads((FIXTURES / "resource_skus.json").read_text())["value"]
        self.entries = [ResourceSku(e) for e in raw]
        self.calls = 0

    def resource_skus(self) -> list[Any]:
        self.calls += 1
        return self.entries


def _spec(pools: list[dict[str, Any]], **cluster: Any) -> Any:
    config = {**SNP_PEER_PODS, "coco:nodePools": pools,
              "coco:cluster": {"provider": "aks", "location": "westeurope", **cluster}}
    spec, _ = validate(config, stack="t")
    return spec


class TestPreflight:
    """Resource SKUs answers: an available size passes, a missing size and a restricted size are
    errors with the key path and the regions that would work."""

    def test_available_size(self):
        client = RecordedSkus()
        spec = _spec([{"name": "snp", "tee": "snp"}, {"name": "tdx", "tee": "tdx"}])
        assert preflight.live_check(spec, client=client) == []
        assert client.calls == 1

    def test_missing_size(self):
        spec = _spec([{"name": "snp", "tee": "snp", "instanceType": "Standard_EC2as_v5"}])
        (issue,) = preflight.live_check(spec, client=RecordedSkus())
        assert issue.path == "coco:nodePools[0].instanceType" and issue.severity == "error"
        assert "Standard_EC2as_v5" in issue.message
        assert "Standard_DC2as_v5" in issue.hint  # usable snp sizes in the region

    def test_restricted_size(self):
        spec = _spec([{"name": "snp", "tee": "snp", "instanceType": "Standard_DC4as_v5"}])
        (issue,) = preflight.live_check(spec, client=RecordedSkus())
        assert issue.path == "coco:nodePools[0].region" and issue.severity == "error"
        assert "NotAvailableForSubscription" in issue.message
        assert issue.hint == "regions where Standard_DC4as_v5 is usable: northeurope"

    def test_size_not_in_region(self):
        spec = _spec([{"name": "tdx", "tee": "tdx"}], location="northeurope")
        issues = preflight.live_check(spec, client=RecordedSkus())
        # the system pool's size is not in northeurope in the recording either
        assert [i.path for i in issues] == ["coco:cluster.location", "coco:nodePools[0].region"]
        issue = issues[1]
        assert issue.path == "coco:nodePools[0].region"
        assert issue.hint.endswith("westeurope")

    def test_capability_contradicts_tee(self):
        entries = RecordedSkus()
        for e in entries.entries:
            if e["name"] == "Standard_DC2as_v5":
                e["capabilities"] = [{"name": "ConfidentialComputingType", "value": "TDX"}]
        spec = _spec([{"name": "snp", "tee": "snp"}])
        (issue,) = preflight.live_check(spec, client=entries)
        assert issue.path == "coco:nodePools[0].instanceType" and "TDX" in issue.message

    def test_system_pool_location(self):
        system = {"instanceType": "Standard_F4s_v2"}
        spec = _spec([{"name": "snp", "tee": "snp"}], systemPool=system)
        (issue,) = preflight.live_check(spec, client=RecordedSkus())
        assert issue.path == "coco:cluster.systemPool.instanceType"

    def test_ignores_other_resource_types(self):
        raw = json.loads((FIXTURES / "resource_skus.json").read_text())["value"]
        parsed = [s for e in raw for s in preflight.parse(e)]
        assert {s.name for s in parsed} == {"Standard_DC2as_v5", "Standard_DC4as_v5",
                                            "Standard_DC2es_v5", "Standard_D4s_v5"}

    def test_no_credentials(self):
        with pytest.raises(NoCredentials) as info:
            preflight.default_client({})
        assert info.value.cloud == "azure" and "az account show" in info.value.hint

    def test_no_azure_pools_makes_no_call(self):
        spec, _ = validate({"coco:nodePools": [
            {"name": "d", "tee": "none", "nodeSelector": {"a": "b"}}]}, stack="t")
        assert preflight.live_check(spec, client=None) == []
