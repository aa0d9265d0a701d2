"""Configuration mistakes are reported with the exact key path, a clear message and a hint.

Every error case starts from a valid baseline stack config and makes ONE change (an edited,
added or removed key). The baselines themselves are checked to be valid and warning-free, so
each error a case expects is caused by its single change.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from cli import main as cli
from spec import stackfile
from spec.errors import ConfigIssue, SpecError
from spec.validate import validate
from tests.spec.reference_values import complete

REPO = Path(__file__).resolve().parents[2]
STACK_FILES = sorted((REPO / "stacks").glob("Pulumi.*.yaml"))

# --- baselines ---------------------------------------------------------------------------------

SSH_KEY = "coco:nodePools[4].hosts[0].sshKey"
RESOURCE_VALUE = "coco:kbs.resources[0].value"
IBM_API_KEY = "coco:nodePools[5].ibmcloud.apiKey"
SE_FILES = frozenset(
    f"coco:kbs.seVerifier.{key}"
    for key in ("hostKeyDocuments[0]", "imageHeader", "certificates[0]", "crls[0]")
)
SECURE = frozenset({SSH_KEY, RESOURCE_VALUE, IBM_API_KEY}) | SE_FILES

# An existing cluster with one pool of every kind the catalogue offers outside a managed cluster.
EXISTING: dict[str, Any] = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "existing", "context": "kind-coco"},
    "coco:nodePools": [
        {  # 0: coco-dev on existing nodes
            "name": "dev",
            "tee": "none",
            "mode": "bare-metal",
            "nodeSelector": {"node.kubernetes.io/worker": ""},
        },
        {  # 1: Azure SNP peer pods
            "name": "azure-snp",
            "tee": "snp",
            "mode": "peer-pods",
            "provider": "azure",
            "instanceType": "Standard_DC2as_v5",
            "region": "westeurope",
            "nodeSelector": {"node.kubernetes.io/worker": ""},  # workers labelled for CAA
        },
        {  # 2: GCP TDX peer pods (SEV-SNP peer pods are refused on GCP: catalogue.REFUSED)
            "name": "gcp-tdx",
            "tee": "tdx",
            "provider": "gcp",
            "instanceType": "c3-standard-4",
            "region": "europe-west1",
            "zone": "europe-west1-b",
            "nodeSelector": {"node.kubernetes.io/worker": ""},  # workers labelled for CAA
        },
        {  # 3: AWS SNP peer pods
            "name": "aws-snp",
            "tee": "snp",
            "provider": "aws",
            "region": "eu-west-1",
            "nodeSelector": {"node.kubernetes.io/worker": ""},  # workers labelled for CAA
        },
        {  # 4: TDX bare metal on hosts reached over SSH
            "name": "metal",
            "tee": "tdx",
            "hosts": [{"address": "10.0.0.5", "sshKey": "[secure]"}],
        },
        {  # 5: IBM Secure Execution peer pods
            "name": "ibm-se",
            "tee": "se",
            "provider": "ibmcloud",
            "region": "eu-de",
            "zone": "eu-de-1",
            "ibmcloud": {"vpcId": "r010-vpc", "subnetId": "02b7-subnet", "imageId": "r010-se",
                         "resourceGroupId": "0123456789abcdef", "apiKey": "[secure]"},
            "nodeSelector": {"node.kubernetes.io/worker": ""},  # workers labelled for CAA
        },
    ],
    "coco:kbs": {
        "resources": [{"path": "default/key/1", "value": "[secure]"}],
        "expose": "loadbalancer",
        "hostname": "kbs.example.com",
        # base64 stand-ins for the SE verifier files (components.kbs.se_verifier)
        "seVerifier": {"hostKeyDocuments": ["SEtE"], "imageHeader": "aGRy",
                       "certificates": ["Y2VydA=="], "crls": ["Y3Js"]},
        # what the pools' evidence needs to be affirmed (spec.coverage)
        "referenceValues": complete("az-snp-vtpm", "snp", "tdx"),
    },
    "coco:image": {"recipe": "minimal"},
}
AKS: dict[str, Any] = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "aks", "location": "westeurope"},
    "coco:nodePools": [{"name": "snp", "tee": "snp"}],
    "coco:image": {"recipe": "minimal"},
    "coco:kbs": {"expose": "loadbalancer", "hostname": "kbs.example.com",
                  "referenceValues": complete("az-snp-vtpm")},
}
EKS: dict[str, Any] = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "eks", "region": "eu-west-1"},
    "coco:nodePools": [{"name": "snp", "tee": "snp"}],
    "coco:image": {"recipe": "minimal"},
    "coco:kbs": {"expose": "loadbalancer", "hostname": "kbs.example.com",
                  "referenceValues": complete("snp")},
}
GKE: dict[str, Any] = {
    "coco:environment": "dev",
    "coco:cluster": {
        "provider": "gke",
        "region": "europe-west4",
        "zone": "europe-west4-a",
        "project": "coco-test-123456",
    },
    "coco:nodePools": [{"name": "tdx", "tee": "tdx"}],
    "coco:image": {"recipe": "minimal"},
    "coco:kbs": {"expose": "loadbalancer", "hostname": "kbs.example.com",
                  "referenceValues": complete("tdx")},
}
PRODUCTION: dict[str, Any] = {
    "coco:environment": "production",
    "coco:cluster": {"provider": "existing"},
    "coco:nodePools": [
        {"name": "snp", "tee": "snp", "mode": "bare-metal", "nodeSelector": {"coco/tee": "snp"}}
    ],
    "coco:kbs": {"expose": "ingress", "hostname": "kbs.example.com",
                 "referenceValues": complete("snp")},
}
BASELINES = {
    "existing": EXISTING,
    "aks": AKS,
    "eks": EKS,
    "gke": GKE,
    "production": PRODUCTION,
}

@pytest.fixture(autouse=True)
def _allow_mixed_clouds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The existing-cluster baseline deliberately mixes Azure, GCP, AWS and IBM peer pods so one
    config exercises every provider's rules; the one-cloud-per-cluster rule it breaks is tested
    on its own in tests/test_runtime.py (TestPeerPodsRuntime)."""
    from spec import rules

    monkeypatch.setattr(rules, "one_peer_pods_cloud", lambda out, pools: None)


DELETE = object()  # value of an edit that removes the key
_PATH = re.compile(r"^(coco:[A-Za-z]+)((?:\.[A-Za-z]+|\[\d+\])*)$")
_STEP = re.compile(r"\.([A-Za-z]+)|\[(\d+)\]")


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the key at `path` (config key path syntax) set or removed.

    Indexing one past the end of a list appends.
    """
    match = _PATH.match(path)
    assert match, f"bad edit path {path!r}"
    config = copy.deepcopy(base)
    top, rest = match.groups()
    steps: list[Any] = [top] + [k if k else int(i) for k, i in _STEP.findall(rest)]
    node: Any = config
    for step in steps[:-1]:
        node = node[step]
    last = steps[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return config


def case(
    id: str,
    base: str,
    edit: str,
    value: Any,
    path: str,
    fragment: str,
    *,
    hint: str | None = None,
    secure: frozenset[str] = SECURE,
    xfail: str | None = None,
) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    config = changed(BASELINES[base], edit, value)
    return pytest.param(config, secure, path, fragment, hint, id=id, marks=marks)


def check(config: dict[str, Any], tmp_path: Path, secure: frozenset[str] = SECURE) -> Any:
    return validate(config, stack="t", secure_paths=secure, base_dir=str(tmp_path))


def errors_of(config: dict[str, Any], tmp_path: Path, secure: frozenset[str] = SECURE) -> SpecError:
    with pytest.raises(SpecError) as info:
        check(config, tmp_path, secure)
    return info.value


def show(issues: list[ConfigIssue]) -> str:
    return "\n".join(i.render() for i in issues)


MISTAKES = [
    # --- unknown keys ---------------------------------------------------------------------------
    case("unknown-top-level-key", "existing", "coco:nodePool", [{"name": "x", "tee": "none"}],
         "coco:nodePool", "unknown config key", hint="did you mean 'nodePools'?"),
    case("unknown-cluster-key", "existing", "coco:cluster.kubeconfigPath", "~/.kube/config",
         "coco:cluster.kubeconfigPath", "unknown key 'kubeconfigPath'",
         hint="did you mean 'kubeconfig'?"),
    case("unknown-pool-key-case", "existing", "coco:nodePools[1].instancetype", "Standard_DC2as_v5",
         "coco:nodePools[1].instancetype", "unknown key 'instancetype'",
         hint="did you mean 'instanceType'?"),
    # --- wrong types ----------------------------------------------------------------------------
    case("string-for-int", "existing", "coco:nodePools[4].hosts[0].port", "22",
         "coco:nodePools[4].hosts[0].port", "expected an integer, got a string '22'"),
    case("float-for-int", "existing", "coco:nodePools[3].count", 1.5,
         "coco:nodePools[3].count", "expected an integer, got a number 1.5"),
    case("int-for-string", "existing", "coco:nodePools[1].name", 5,
         "coco:nodePools[1].name", "expected a string, got an integer 5"),
    # a value at a secret path is never quoted, whatever its type (issue 18)
    case("int-resource-value", "existing", "coco:kbs.resources[0].value", 42,
         "coco:kbs.resources[0].value", "expected a string, got an integer"),
    case("pools-mapping-not-list", "existing", "coco:nodePools", {"name": "dev", "tee": "none"},
         "coco:nodePools", "expected a list, got a mapping"),
    case("cluster-list-not-mapping", "existing", "coco:cluster", ["existing"],
         "coco:cluster", "expected a mapping of keys to values, got a list"),
    case("pool-string-not-mapping", "existing", "coco:nodePools[0]", "dev",
         "coco:nodePools[0]", "expected a mapping of keys to values, got a string 'dev'"),
    case("node-selector-list", "existing", "coco:nodePools[0].nodeSelector", ["worker"],
         "coco:nodePools[0].nodeSelector", "expected a mapping of keys to values, got a list"),
    case("bool-as-string-enabled", "existing", "coco:kbs.enabled", "true",
         "coco:kbs.enabled", "expected true or false, got a string 'true'"),
    case("bool-as-string-insecure", "existing", "coco:kbs.insecureHttp", "false",
         "coco:kbs.insecureHttp", "expected true or false, got a string 'false'"),
    case("required-key-missing", "existing", "coco:nodePools[0].tee", DELETE,
         "coco:nodePools[0].tee", "required key is missing", hint="snp, tdx"),
    # --- enums ----------------------------------------------------------------------------------
    case("enum-tee", "existing", "coco:nodePools[1].tee", "sev-snp",
         "coco:nodePools[1].tee", "'sev-snp' is not one of: snp, tdx, se, sev, sgx, none",
         hint="did you mean 'snp'?"),
    case("enum-mode", "existing", "coco:nodePools[1].mode", "peerpods",
         "coco:nodePools[1].mode", "'peerpods' is not one of: peer-pods, bare-metal, nodes",
         hint="did you mean 'peer-pods'?"),
    case("enum-pool-provider", "existing", "coco:nodePools[1].provider", "azure-cloud",
         "coco:nodePools[1].provider", "is not one of: azure, aws, gcp, ibmcloud, baremetal"),
    case("enum-expose", "existing", "coco:kbs.expose", "LoadBalancer",
         "coco:kbs.expose", "'LoadBalancer' is not one of: clusterip, nodeport, loadbalancer",
         hint="did you mean 'loadbalancer'?"),
    case("enum-environment", "existing", "coco:environment", "prod",
         "coco:environment", "'prod' is not one of: dev, staging, production"),
    case("enum-cluster-provider", "existing", "coco:cluster.provider", "openshift",
         "coco:cluster.provider", "'openshift' is not one of: existing, aks, eks, gke, k3s"),
    # --- names ----------------------------------------------------------------------------------
    case("pool-name-not-dns-label", "existing", "coco:nodePools[1].name", "Azure_SNP",
         "coco:nodePools[1].name", "'Azure_SNP' is not a DNS label"),
    case("duplicate-pool-name", "existing", "coco:nodePools[2].name", "azure-snp",
         "coco:nodePools[2].name", "already used by coco:nodePools[1]"),
    case("kbs-namespace-not-dns-label", "existing", "coco:kbs.namespace", "Coco_KBS",
         "coco:kbs.namespace", "'Coco_KBS' is not a DNS label"),
    # --- TEE catalogue --------------------------------------------------------------------------
    case("tdx-on-aws", "existing", "coco:nodePools[3].tee", "tdx",
         "coco:nodePools[3].tee", "Intel TDX is not offered on aws", hint="aws offers: snp"),
    case("sev-on-aws", "existing", "coco:nodePools[3].tee", "sev",
         "coco:nodePools[3].tee", "AMD SEV (legacy, no integrity protection) is not offered on aws",
         hint="gcp"),
    case("sgx-on-aws", "existing", "coco:nodePools[3].tee", "sgx",
         "coco:nodePools[3].tee", "Intel SGX is not offered on aws", hint="enclave-cc"),
    case("se-on-azure", "existing", "coco:nodePools[1].tee", "se",
         "coco:nodePools[1].tee", "IBM Z Secure Execution is not offered on azure",
         hint="ibmcloud (peer-pods)"),
    case("sgx-peer-pods-on-azure", "existing", "coco:nodePools[1].tee", "sgx",
         "coco:nodePools[1].mode", "sgx on azure is not offered in mode 'peer-pods'",
         hint="use mode nodes"),
    case("sgx-bare-metal", "existing", "coco:nodePools[4].tee", "sgx",
         "coco:nodePools[4].tee", "Intel SGX is not offered on baremetal"),
    case("snp-on-aws-bare-metal-mode", "existing", "coco:nodePools[3].mode", "bare-metal",
         "coco:nodePools[3].mode", "snp on aws is not offered in mode 'bare-metal'",
         hint="use mode nodes or peer-pods"),
    # --- instance types -------------------------------------------------------------------------
    case("snp-peer-pods-on-gcp", "existing", "coco:nodePools[2].tee", "snp",
         "coco:nodePools[2].mode", "snp peer-pods on gcp: GCP creates SEV-SNP VMs only with the "
         "minimum CPU platform", hint="use mode: nodes"),
    case("tdx-on-gcp-n2d", "existing", "coco:nodePools[2].instanceType", "n2d-standard-2",
         "coco:nodePools[2].instanceType", "'n2d-standard-2' (n2d) is not a confidential tdx",
         hint="c3"),
    case("azure-snp-non-confidential-size", "existing", "coco:nodePools[1].instanceType",
         "Standard_D4s_v5", "coco:nodePools[1].instanceType",
         "'Standard_D4s_v5' (Dsv5) is not a confidential snp size on azure", hint="DCasv5"),
    case("azure-tdx-with-snp-size", "existing", "coco:nodePools[1].tee", "tdx",
         "coco:nodePools[1].instanceType",
         "'Standard_DC2as_v5' (DCasv5) is not a confidential tdx size on azure", hint="DCesv5"),
    case("aws-snp-m5", "existing", "coco:nodePools[3].instanceType", "m5.large",
         "coco:nodePools[3].instanceType", "'m5.large' (m5) is not a confidential snp size on aws",
         hint="m6a"),
    case("ibm-se-wrong-profile", "existing", "coco:nodePools[5].instanceType", "bx2-2x8",
         "coco:nodePools[5].instanceType", "(bx2) is not a confidential se size on ibmcloud",
         hint="bz2e"),
    case("malformed-aws-instance-type", "existing", "coco:nodePools[3].instanceType", "m6a-large",
         "coco:nodePools[3].instanceType", "'m6a-large' is not an aws instance type",
         hint="'m6a.large'"),
    case("malformed-azure-size", "existing", "coco:nodePools[1].instanceType", "DC4as_v5",
         "coco:nodePools[1].instanceType", "'DC4as_v5' is not an azure instance type",
         hint="'Standard_DC4as_v5'"),
    case("instance-type-on-bare-metal", "existing", "coco:nodePools[0].instanceType", "m6a.large",
         "coco:nodePools[0].instanceType", "bare-metal pools run on their own hosts",
         hint="remove instanceType"),
    # --- keys that belong to other modes ------------------------------------------------------
    case("bare-metal-without-hosts-or-selector", "existing", "coco:nodePools[0].nodeSelector",
         DELETE, "coco:nodePools[0]", "a bare-metal pool needs hosts or a nodeSelector"),
    case("hosts-and-node-selector", "existing", "coco:nodePools[0].hosts",
         [{"address": "10.0.0.9", "sshKey": "[secure]"}],
         "coco:nodePools[0].nodeSelector", "set either hosts or nodeSelector, not both",
         secure=SECURE | {"coco:nodePools[0].hosts[0].sshKey"}),
    case("hosts-on-peer-pods", "existing", "coco:nodePools[1].hosts",
         [{"address": "10.0.0.9", "sshKey": "[secure]"}],
         "coco:nodePools[1].hosts", "hosts only apply to bare-metal pools, not peer-pods",
         secure=SECURE | {"coco:nodePools[1].hosts[0].sshKey"}),
    case("count-on-peer-pods", "existing", "coco:nodePools[1].count", 2,
         "coco:nodePools[1].count", "count only applies to nodes pools; a peer-pods pool",
         hint="remove count"),
    case("nodes-pool-on-existing-without-selector", "existing", "coco:nodePools[1]",
         {"name": "azure-snp", "tee": "snp", "mode": "nodes", "provider": "azure",
          "instanceType": "Standard_DC2as_v5", "region": "westeurope"},
         "coco:nodePools[1].nodeSelector", "must select the confidential nodes it reuses"),
    case("peer-pods-on-existing-without-workers", "existing", "coco:nodePools[2].nodeSelector",
         DELETE, "coco:nodePools[2].nodeSelector",
         "need worker nodes labelled node.kubernetes.io/worker",
         hint="`gcloud container node-pools update POOL --cluster=CLUSTER --location=LOCATION "
         "--node-labels=node.kubernetes.io/worker=` (it replaces the pool's Kubernetes labels: "
         "append the ones to keep as ,KEY=VALUE); `kubectl label nodes -l "
         "cloud.google.com/gke-nodepool=POOL node.kubernetes.io/worker=` labels the current nodes "
         "at once but is lost when a node is recreated; then set nodeSelector: "
         '{node.kubernetes.io/worker: ""} on this pool to confirm'),
    case("duplicate-host", "existing", "coco:nodePools[4].hosts[1]",
         {"address": "10.0.0.5", "sshKey": "[secure]"},
         "coco:nodePools[4].hosts[1].address",
         "host '10.0.0.5' is already listed at coco:nodePools[4].hosts[0].address",
         secure=SECURE | {"coco:nodePools[4].hosts[1].sshKey"}),
    # --- secrets --------------------------------------------------------------------------------
    case("plain-text-ssh-key", "existing", "coco:nodePools[4].hosts[1]",
         {"address": "10.0.0.6", "sshKey": "-----BEGIN OPENSSH PRIVATE KEY-----"},
         "coco:nodePools[4].hosts[1].sshKey", "an SSH key must be stored as a secret",
         hint="pulumi config set --secret --path 'coco:nodePools[4].hosts[1].sshKey'"),
    case("plain-text-kubeconfig", "existing", "coco:cluster",
         {"provider": "existing", "kubeconfig": "apiVersion: v1\nkind: Config\n"},
         "coco:cluster.kubeconfig", "a kubeconfig must be stored as a secret",
         hint="pulumi config set --secret"),
    case("context-and-kubeconfig", "existing", "coco:cluster.kubeconfig", "[secure]",
         "coco:cluster.kubeconfig", "set either context or kubeconfig, not both",
         secure=SECURE | {"coco:cluster.kubeconfig"}),
    case("context-on-aks", "aks", "coco:cluster.context", "kind-coco",
         "coco:cluster.context", "context only applies to provider 'existing'"),
    case("attach-without-name", "aks", "coco:cluster.attach", True,
         "coco:cluster.name", "attach: true needs the name of the existing aks cluster"),
    case("attach-aks-without-resource-group", "aks", "coco:cluster",
         {"provider": "aks", "location": "westeurope", "attach": True, "name": "prod"},
         "coco:cluster.resourceGroup", "attach: true needs the resource group",
         hint="az aks list"),
    case("attach-on-existing", "existing", "coco:cluster.attach", True,
         "coco:cluster.attach", "attach does not apply to cluster provider 'existing'"),
    case("project-on-aks", "aks", "coco:cluster.project", "coco-test-123456",
         "coco:cluster.project", "project does not apply to cluster provider 'aks'"),
    case("gke-without-project", "gke", "coco:cluster.project", DELETE,
         "coco:cluster.project", "gke needs the GCP project id"),
    case("malformed-gcp-project", "gke", "coco:cluster.project", "My_Project",
         "coco:cluster.project", "String should match pattern"),
    case("peer-pods-without-image", "eks", "coco:image", {},
         "coco:image.podvmImage", "aws peer pods need a pod-VM image",
         hint="coco:image.recipe: podvm"),
    case("podvm-image-without-cloud-peer-pods", "production", "coco:image",
         {"podvmImage": "ami-0123456789abcdef0"},
         "coco:image.podvmImage", "podvmImage applies only to azure, aws or gcp"),
    # --- cluster location, regions and zones ----------------------------------------------------
    case("aks-without-location", "aks", "coco:cluster.location", DELETE,
         "coco:cluster.location", "aks needs a location", hint="'westeurope'"),
    case("region-on-existing-cluster", "existing", "coco:cluster.region", "eu-west-1",
         "coco:cluster.region", "region does not apply to cluster provider 'existing'"),
    case("system-pool-on-existing-cluster", "existing", "coco:cluster.systemPool", {"count": 2},
         "coco:cluster.systemPool", "systemPool does not apply to cluster provider 'existing'"),
    case("malformed-azure-location", "aks", "coco:cluster.location", "West Europe",
         "coco:cluster.location", "'West Europe' is not an azure location name",
         hint="'westeurope'"),
    case("malformed-eks-region", "eks", "coco:cluster.region", "euwest1",
         "coco:cluster.region", "'euwest1' is not an aws region name", hint="'eu-west-1'"),
    case("malformed-gke-region", "gke", "coco:cluster.region", "europe-west-4",
         "coco:cluster.region", "'europe-west-4' is not a gcp region name", hint="'europe-west4'"),
    case("malformed-gke-zone", "gke", "coco:cluster.zone", "europe-west4a",
         "coco:cluster.zone", "'europe-west4a' is not a gcp zone name", hint="'europe-west4-a'"),
    case("malformed-pool-aws-region", "existing", "coco:nodePools[3].region", "eu-west",
         "coco:nodePools[3].region", "'eu-west' is not an aws region name"),
    case("malformed-pool-gcp-region", "existing", "coco:nodePools[2].region", "europe_west1",
         "coco:nodePools[2].region", "'europe_west1' is not a gcp region name"),
    case("malformed-pool-ibm-region", "existing", "coco:nodePools[5].region", "eu-de-1",
         "coco:nodePools[5].region", "'eu-de-1' is not an ibmcloud region name", hint="'eu-de'"),
    case("zone-on-azure-pool", "existing", "coco:nodePools[1].zone", "1",
         "coco:nodePools[1].zone", "zone does not apply to azure pools"),
    case("region-on-bare-metal-pool", "existing", "coco:nodePools[0].region", "westeurope",
         "coco:nodePools[0].region", "region does not apply to bare-metal hosts"),
    case("gcp-peer-pods-without-zone", "existing", "coco:nodePools[2].zone", DELETE,
         "coco:nodePools[2].zone", "gcp peer pods need a zone", hint="'europe-west4-a'"),
    case("pool-zone-not-in-region", "existing", "coco:nodePools[2].zone", "europe-west4-a",
         "coco:nodePools[2].zone", "zone 'europe-west4-a' is not in region 'europe-west1'"),
    case("gke-zone-not-in-region", "gke", "coco:cluster.zone", "us-central1-a",
         "coco:cluster.zone", "zone 'us-central1-a' is not in region 'europe-west4'"),
    case("pool-zone-of-region-with-same-prefix", "existing", "coco:nodePools[2].zone",
         "europe-west12-a", "coco:nodePools[2].zone",
         "zone 'europe-west12-a' is not in region 'europe-west1'"),
    # --- providers ------------------------------------------------------------------------------
    case("peer-pods-on-existing-without-provider", "existing", "coco:nodePools[1].provider", DELETE,
         "coco:nodePools[1].provider", "a peer-pods pool on an existing cluster needs a provider",
         hint="azure, aws, gcp or ibmcloud"),
    case("azure-pool-on-eks", "eks", "coco:nodePools[0].provider", "azure",
         "coco:nodePools[0].provider", "azure pools cannot join a 'eks' cluster"),
    # --- KBS ------------------------------------------------------------------------------------
    case("ingress-without-hostname", "existing", "coco:kbs",
         {"expose": "ingress", "resources": [{"path": "default/key/1", "value": "[secure]"}]},
         "coco:kbs.hostname", "expose: ingress needs a hostname", hint="'kbs.example.com'"),
    case("invalid-hostname", "existing", "coco:kbs.hostname", "KBS.example.com",
         "coco:kbs.hostname", "'KBS.example.com' is not a valid DNS name"),
    case("resource-path-two-segments", "existing", "coco:kbs.resources[0].path", "default/key",
         "coco:kbs.resources[0].path", "'default/key' has 2 segment(s)", hint="repo/type/tag"),
    case("resource-path-dotdot", "existing", "coco:kbs.resources[0].path", "default/../1",
         "coco:kbs.resources[0].path", "'default/../1' has an invalid segment '..'"),
    case("duplicate-resource-path", "existing", "coco:kbs.resources[1]",
         {"path": "default/key/1", "value": "[secure]"},
         "coco:kbs.resources[1].path",
         "'default/key/1' is already defined at coco:kbs.resources[0]",
         secure=SECURE | {"coco:kbs.resources[1].value"}),
    case("resources-with-kbs-disabled", "existing", "coco:kbs.enabled", False,
         "coco:kbs.resources", "resources are set but the KBS is disabled"),
    case("unknown-resource-policy-word", "existing", "coco:kbs.resourcePolicy", "strict",
         "coco:kbs.resourcePolicy", "'strict' is neither affirming nor allow-all nor a .rego file"),
    case("unknown-attestation-policy-word", "existing", "coco:kbs.attestationPolicy", "strict",
         "coco:kbs.attestationPolicy", "'strict' is neither default nor a .rego file"),
    case("missing-rego-file", "existing", "coco:kbs.resourcePolicy", "policies/missing.rego",
         "coco:kbs.resourcePolicy", "policy file 'policies/missing.rego' does not exist",
         hint="relative to the project directory"),
    # --- production guards ----------------------------------------------------------------------
    case("production-tee-none", "production", "coco:nodePools[0].tee", "none",
         "coco:nodePools[0].tee", "refused in production"),
    case("production-allow-all", "production", "coco:kbs.resourcePolicy", "allow-all",
         "coco:kbs.resourcePolicy", "refused in production", hint="use affirming"),
    case("production-insecure-http", "production", "coco:kbs.insecureHttp", True,
         "coco:kbs.insecureHttp", "plain HTTP is refused in production"),
    # --- Kubernetes names and versions ----------------------------------------------------------
    case("invalid-label-key", "existing", "coco:nodePools[0].nodeSelector", {"-worker": ""},
         "coco:nodePools[0].nodeSelector", "'-worker' is not a valid Kubernetes label key"),
    case("invalid-label-prefix", "existing", "coco:nodePools[0].nodeSelector",
         {"Bad_Prefix/worker": ""},
         "coco:nodePools[0].nodeSelector", "'Bad_Prefix/worker' is not a valid Kubernetes label"),
    case("invalid-label-value", "existing", "coco:nodePools[0].nodeSelector",
         {"node.kubernetes.io/worker": "not valid!"},
         "coco:nodePools[0].nodeSelector", "'not valid!' (for 'node.kubernetes.io/worker') is not "
         "a valid Kubernetes label value"),
    case("unquoted-bool-label-value", "existing", "coco:nodePools[0].nodeSelector",
         {"node.kubernetes.io/worker": True},
         'coco:nodePools[0].nodeSelector["node.kubernetes.io/worker"]',
         "expected a string, got a boolean True"),
    case("kubernetes-version-malformed", "existing", "coco:cluster.kubernetesVersion", "v1.33",
         "coco:cluster.kubernetesVersion", "'v1.33' is not a Kubernetes version",
         hint="MAJOR.MINOR"),
    case("port-out-of-range", "existing", "coco:nodePools[4].hosts[0].port", 70000,
         "coco:nodePools[4].hosts[0].port", "70000 is out of range"),
]


class TestBaselines:
    """Every baseline is valid and warning-free, so each case's error comes from its one change."""

    @pytest.mark.parametrize("name", sorted(BASELINES))
    def test_baseline_is_valid(self, name: str, tmp_path: Path) -> None:
        spec, warnings = check(BASELINES[name], tmp_path)
        assert warnings == []
        assert spec.stack == "t"
        assert len(spec.node_pools) == len(BASELINES[name]["coco:nodePools"])

    def test_cases_are_distinct(self) -> None:
        configs = [repr((p.values[0], sorted(p.values[1]))) for p in MISTAKES]
        assert len(MISTAKES) >= 32
        assert len(set(configs)) == len(configs)
        assert len({p.id for p in MISTAKES}) == len(MISTAKES)

    def test_edit_helper_changes_one_key(self) -> None:
        config = changed(EXISTING, "coco:nodePools[1].instanceType", "x")
        assert config["coco:nodePools"][1]["instanceType"] == "x"
        assert EXISTING["coco:nodePools"][1]["instanceType"] == "Standard_DC2as_v5"
        assert "tee" not in changed(EXISTING, "coco:nodePools[0].tee", DELETE)["coco:nodePools"][0]


class TestMistakes:
    """Each single mistake is an error at its exact key path, with a message and a hint."""

    @pytest.mark.parametrize(("config", "secure", "path", "fragment", "hint"), MISTAKES)
    def test_mistake_is_reported_at_its_path(
        self,
        config: dict[str, Any],
        secure: frozenset[str],
        path: str,
        fragment: str,
        hint: str | None,
        tmp_path: Path,
    ) -> None:
        exc = errors_of(config, tmp_path, secure)
        at_path = [i for i in exc.issues if i.path == path]
        assert at_path, f"no error at {path}; got:\n{show(exc.issues)}"
        matching = [i for i in at_path if fragment in i.message]
        assert matching, f"no error at {path} mentions {fragment!r}; got:\n{show(at_path)}"
        if hint is not None:
            assert any(hint in i.hint for i in matching), show(matching)
        assert all(i.severity == "error" for i in exc.issues)
        no_hint = [i for i in exc.issues if not i.hint.strip()]
        assert not no_hint, f"errors without a hint:\n{show(no_hint)}"
        assert path in str(exc)


class TestAllMistakesAtOnce:
    """One SpecError carries every independent mistake, not just the first one found."""

    def test_five_sections_and_pools_reported_together(self, tmp_path: Path) -> None:
        config = copy.deepcopy(EXISTING)
        config["coco:clustr"] = {"provider": "existing"}
        config["coco:cluster"]["kubernetesVersion"] = "v1.33"
        config["coco:nodePools"][1]["instanceType"] = "Standard_D4s_v5"
        config["coco:nodePools"][3]["tee"] = "tdx"
        config["coco:nodePools"][4]["hosts"][0]["port"] = "22"
        config["coco:kbs"]["resources"][0]["path"] = "default/key"
        config["coco:kbs"]["expose"] = "LoadBalancer"
        expected = {
            "coco:clustr",
            "coco:cluster.kubernetesVersion",
            "coco:nodePools[1].instanceType",
            "coco:nodePools[3].tee",
            "coco:nodePools[4].hosts[0].port",
            "coco:kbs.resources[0].path",
            "coco:kbs.expose",
        }
        exc = errors_of(config, tmp_path)
        assert {i.path for i in exc.issues} == expected, show(exc.issues)
        assert len(exc.issues) == len(expected)
        assert f"has {len(expected)} errors" in str(exc)
        for path in expected:
            assert path in str(exc)

    def test_a_broken_pool_does_not_hide_the_others(self, tmp_path: Path) -> None:
        config = copy.deepcopy(EXISTING)
        config["coco:nodePools"][0]["tee"] = "nonsense"  # type error: pool 0 fails pass 2
        config["coco:nodePools"][2]["instanceType"] = "n2d-standard-2"  # rule error in pass 3
        exc = errors_of(config, tmp_path)
        paths = {i.path for i in exc.issues}
        assert paths == {"coco:nodePools[0].tee", "coco:nodePools[2].instanceType"}


class TestMistakeStaysInItsSection:
    """A type error in coco:cluster is reported there, not as made-up errors in the pools."""

    @pytest.mark.parametrize(
        ("base", "edit", "value"),
        [
            pytest.param("existing", "coco:cluster.kubernetesVersion", "v1.33",
                         id="existing-cluster-version"),
            pytest.param(
                "aks", "coco:cluster.kubernetesVersion", "v1.33", id="aks-cluster-version",
            ),
        ],
    )
    def test_cluster_type_error_has_no_pool_errors(
        self, base: str, edit: str, value: Any, tmp_path: Path
    ) -> None:
        exc = errors_of(changed(BASELINES[base], edit, value), tmp_path)
        assert [i.path for i in exc.issues] == [edit], show(exc.issues)


class TestWarningsDoNotRaise:
    """Warnings are returned next to a valid spec; they never make validation fail."""

    def test_allow_all_in_dev_is_a_warning(self, tmp_path: Path) -> None:
        config = changed(EXISTING, "coco:kbs.resourcePolicy", "allow-all")
        spec, warnings = check(config, tmp_path)
        assert spec.kbs.resource_policy == "allow-all"
        at = [w for w in warnings if w.path == "coco:kbs.resourcePolicy"]
        assert at and all(w.severity == "warning" for w in warnings)
        assert "allow-all" in at[0].message

    def test_plain_text_resource_value_is_a_warning(self, tmp_path: Path) -> None:
        spec, warnings = check(EXISTING, tmp_path, secure=SECURE - {RESOURCE_VALUE})
        assert [w.path for w in warnings] == [RESOURCE_VALUE]
        assert "plain text" in warnings[0].message
        assert "--secret" in warnings[0].hint
        assert spec.kbs.resources[0].value.get_secret_value() == "[secure]"

    def test_several_warnings_together(self, tmp_path: Path) -> None:
        config = changed(EXISTING, "coco:kbs.insecureHttp", True)
        config["coco:kbs"]["resourcePolicy"] = "allow-all"
        config["coco:nodePools"][2]["tee"] = "sev"
        config["coco:nodePools"][2]["instanceType"] = "n2d-standard-2"
        _, warnings = check(config, tmp_path)
        paths = {w.path for w in warnings}
        assert {"coco:kbs.insecureHttp", "coco:kbs.resourcePolicy",
                "coco:nodePools[2].tee"} <= paths

    def test_existing_rego_file_is_accepted(self, tmp_path: Path) -> None:
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "release.rego").write_text("package policy\n")
        config = changed(EXISTING, "coco:kbs.resourcePolicy", "policies/release.rego")
        spec, warnings = check(config, tmp_path)
        assert spec.kbs.resource_policy == "policies/release.rego"
        # without opa on the machine, one line says the file was only checked lightly
        assert [w for w in warnings if not w.message.startswith("opa not found:")] == []

    def test_warnings_are_kept_apart_from_errors(self, tmp_path: Path) -> None:
        config = changed(EXISTING, "coco:kbs.resourcePolicy", "allow-all")
        config["coco:nodePools"][3]["tee"] = "tdx"
        exc = errors_of(config, tmp_path)
        assert [i.path for i in exc.issues] == ["coco:nodePools[3].tee"]
        assert "coco:kbs.resourcePolicy" in [w.path for w in exc.warnings]
        assert "has 1 error:" in str(exc)


STACK_YAML = """\
config:
  kubernetes:context: kind-coco
  coco:environment: dev
  coco:cluster:
    provider: existing
  coco:nodePools:
    - name: metal
      tee: snp
      hosts:
        - address: 10.0.0.5
          sshKey:
{ssh_key}
  coco:kbs:
    referenceValues:  # what snp evidence needs to be affirmed (spec.coverage)
      snp_launch_measurement: [test]
      snp_bootloader: [1]
      snp_microcode: [1]
      snp_snp_svn: [1]
      snp_tee_svn: [1]
    resources:
      - path: default/key/1
        value:
          secure: {resource_cipher}
"""


def write_stack(tmp_path: Path, ssh_key: str, resource_cipher: str = "v1:c2VjcmV0") -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: coco-stack\nruntime: python\n")
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(STACK_YAML.format(ssh_key=ssh_key, resource_cipher=resource_cipher))
    return path


class TestSecureValues:
    """`secure:` values count as secrets, become stable placeholders and never leak ciphertext."""

    SECURE_KEY = "            secure: v1:AAAABBBBciphertextOFkey"
    PLAIN_KEY = "            -----BEGIN OPENSSH PRIVATE KEY-----"

    def test_secure_ssh_key_passes(self, tmp_path: Path) -> None:
        sf = stackfile.load(str(write_stack(tmp_path, self.SECURE_KEY)))
        assert sf.name == "t"
        assert sf.project_dir == tmp_path.resolve()
        assert sf.secure_paths == {"coco:nodePools[0].hosts[0].sshKey",
                                   "coco:kbs.resources[0].value"}
        assert sf.secret_keys == ["coco:kbs", "coco:nodePools"]
        spec, warnings = validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                                  base_dir=str(sf.project_dir))
        assert warnings == []
        assert spec.node_pools[0].hosts is not None
        assert spec.node_pools[0].hosts[0].ssh_key.get_secret_value() == stackfile.placeholder(
            "coco:nodePools[0].hosts[0].sshKey")

    def test_plain_ssh_key_fails(self, tmp_path: Path) -> None:
        sf = stackfile.load(str(write_stack(tmp_path, self.PLAIN_KEY)))
        assert "coco:nodePools[0].hosts[0].sshKey" not in sf.secure_paths
        with pytest.raises(SpecError) as info:
            validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                     base_dir=str(sf.project_dir))
        assert [i.path for i in info.value.issues] == ["coco:nodePools[0].hosts[0].sshKey"]
        assert "secret" in info.value.issues[0].message

    def test_placeholders_are_stable_and_hide_ciphertext(self, tmp_path: Path) -> None:
        path = write_stack(tmp_path, self.SECURE_KEY)
        first = stackfile.load(str(path))
        second = stackfile.load(str(path))
        assert first.config == second.config
        # re-encrypting (new ciphertext) does not change the placeholder either
        write_stack(tmp_path, "            secure: v1:ZZZZdifferentCipher", "v1:b3RoZXI=")
        third = stackfile.load(str(path))
        assert third.config == first.config
        host = first.config["coco:nodePools"][0]["hosts"][0]
        assert host["sshKey"] == "[secure value of coco:nodePools[0].hosts[0].sshKey]"
        value = first.config["coco:kbs"]["resources"][0]["value"]
        assert value == stackfile.placeholder("coco:kbs.resources[0].value")
        text = repr(first.config) + repr(first.pulumi_config())
        for cipher in ("ciphertextOFkey", "v1:c2VjcmV0", "secure:", "'secure'"):
            assert cipher not in text
        assert first.config["kubernetes:context"] == "kind-coco"


BAD_STACK = """\
config:
  coco:environment: production
  coco:clustr:
    provider: existing
  coco:cluster:
    provider: existing
    region: eu-west-1
  coco:nodePools:
    - name: snp
      tee: snp
      mode: bare-metal
      nodeSelector:
        coco/tee: snp
    - name: Bad_Name
      tee: tdx
      provider: aws
  coco:kbs:
    resourcePolicy: allow-all
    resources:
      - path: default/key/1
        value:
          secure: v1:TOPsecretCIPHER
  coco:image:
    recipe: 7
"""
BAD_PATHS = [
    "coco:clustr",
    "coco:cluster.region",
    "coco:nodePools[0]",  # snp evidence without reference values (spec.coverage)
    "coco:nodePools[1].name",
    "coco:kbs.resourcePolicy",
    "coco:image.recipe",
]


class TestCli:
    """`coco check` exits 0 on every shipped stack and 2 with every key path on bad input."""

    @pytest.mark.parametrize("stack_file", STACK_FILES, ids=[p.name for p in STACK_FILES])
    def test_check_shipped_stack(
        self, stack_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(REPO)
        name = stack_file.name[len("Pulumi."):-len(".yaml")]
        code = cli.main(["check", name])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"stack {name} " in out
        assert ": valid" in out
        assert "error:" not in err

    def test_shipped_stacks_exist(self) -> None:
        assert any(p.name == "Pulumi.dev.yaml" for p in STACK_FILES)

    def test_bad_stack_file_exits_2_with_every_path(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "Pulumi.bad.yaml"
        path.write_text(BAD_STACK)
        code = cli.main(["check", str(path)])
        out, err = capsys.readouterr()
        assert code == 2
        assert out == ""
        for key_path in BAD_PATHS:
            assert f"error: {key_path}: " in err, err
        assert f"{len(BAD_PATHS)} error(s) in stack {path}" in err
        assert "hint:" in err
        assert "TOPsecretCIPHER" not in err
        assert "Traceback" not in err

    def test_unknown_stack_name_exits_2_with_known_stacks(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.chdir(REPO)
        code = cli.main(["check", "no-such-stack"])
        _, err = capsys.readouterr()
        assert code == 2
        assert "no stack named 'no-such-stack'" in err
        hint = [line for line in err.splitlines() if "hint:" in line]
        assert hint and "known stacks:" in hint[0]
        for stack_file in STACK_FILES:
            assert stack_file.name[len("Pulumi."):-len(".yaml")] in hint[0]

    def test_missing_stack_file_path_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = cli.main(["check", str(tmp_path / "Pulumi.gone.yaml")])
        _, err = capsys.readouterr()
        assert code == 2
        assert "does not exist" in err
