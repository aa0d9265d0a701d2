"""The stack spec: a typed model of the `coco:` config namespace users write in stacks/.

Each section of the namespace (`coco:environment`, `coco:cluster`, `coco:nodePools`, `coco:kbs`,
`coco:image`) is one model; every field is declared once here, with the description that
`coco check`, error hints and the README's config reference reuse. Structure and types are
checked by pydantic in strict mode (no silent "3" -> 3); rules that span fields and the TEE
catalogue live in `spec.validate`, which also turns every problem into a `ConfigIssue`
with the full key path.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from spec import versions

Environment = Literal["dev", "staging", "production"]
ClusterProvider = Literal["existing", "aks", "eks", "gke", "k3s"]
PoolProvider = Literal["azure", "aws", "gcp", "ibmcloud", "baremetal"]
Tee = Literal["snp", "tdx", "se", "sev", "sgx", "none"]
Mode = Literal["peer-pods", "bare-metal", "nodes"]
Expose = Literal["clusterip", "nodeport", "loadbalancer", "ingress"]
# kata-deploy values k8sDistribution (helm-chart values.yaml@4.0.0); other values silently fall
# back to k8s paths upstream, so the spec refuses them.
Distribution = Literal["k8s", "k3s", "rke2", "k0s", "microk8s"]


def _fail(message: str, hint: str) -> PydanticCustomError:
    return PydanticCustomError("coco", "{message}", {"message": message, "hint": hint})


# RFC 1123 label (Kubernetes object names, pool names, namespaces).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1123 subdomain (host names).
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# Kubernetes label keys and values (k8s.io/apimachinery validation: qualified names).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_K8S_VERSION = re.compile(r"^1\.\d{1,2}(\.\d{1,3})?$")
# Trustee resource path segments: kbs/src/plugins/implementations/resource/backend.rs@v0.21.0
# matches repo/type/tag, each segment [a-zA-Z0-9_\-]+[a-zA-Z0-9_\-\.]* (no leading dot, so
# never "." or "..").
_RESOURCE_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise _fail(
            f"{value!r} is not a DNS label",
            "use at most 63 lowercase letters, digits and '-', starting and ending with a "
            "letter or digit, for example 'snp-pool'",
        )
    return value


def _dns_name(value: str) -> str:
    if not _DNS_NAME.match(value):
        raise _fail(
            f"{value!r} is not a valid DNS name",
            "use lowercase letters, digits, '-' and '.', for example 'kbs.example.com'",
        )
    return value


def _k8s_version(value: str) -> str:
    if not _K8S_VERSION.match(value):
        raise _fail(
            f"{value!r} is not a Kubernetes version",
            f"write MAJOR.MINOR or MAJOR.MINOR.PATCH, for example {versions.KUBERNETES_VERSION!r}",
        )
    return value


def _node_selector(value: dict[str, str]) -> dict[str, str]:
    for key, label in value.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not _DNS_NAME.match(prefix)) or not _LABEL_NAME.match(name):
            raise _fail(
                f"{key!r} is not a valid Kubernetes label key",
                "write [prefix/]name, for example 'node.kubernetes.io/instance-type'",
            )
        if not _LABEL_VALUE.match(label):
            raise _fail(
                f"{label!r} (for {key!r}) is not a valid Kubernetes label value",
                "use at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
                "letter or digit; quote values like 'true' in YAML",
            )
    return dict(sorted(value.items()))


def _resource_path(value: str) -> str:
    segments = value.split("/")
    if len(segments) != 3:
        raise _fail(
            f"{value!r} has {len(segments)} segment(s); a KBS resource path has exactly three",
            "write repo/type/tag, for example 'default/key/1'; guests fetch it as "
            "kbs:///repo/type/tag",
        )
    for seg in segments:
        if seg in (".", "..") or not _RESOURCE_SEGMENT.match(seg):
            raise _fail(
                f"{value!r} has an invalid segment {seg!r}",
                "segments use letters, digits, '.', '_' and '-' and do not start with '.' "
                "(so never '.' or '..')",
            )
    return value


def _mirror_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^/@\s]+(/\S*)?", value):
        raise _fail(
            f"{value!r} is not an http(s) URL without user or password",
            "give the URL alone; credentials in a URL would end up in outputs and logs, so put "
            "them in ~/.netrc, which the download reads",
        )
    return value


# A last label of digits (or 0x-hex) makes a host an IPv4 address, never a name (WHATWG URL
# Standard, host parsing, "ends in a number checker"): `256.1.1.1` and `1.2.3` are bad IPv4
# addresses, not host names.
_NUMERIC_LABEL = re.compile(r"^(\d+|0[xX][0-9a-fA-F]*)$")


def host_address(value: str) -> str:
    """A host name or IP address in one canonical spelling, for comparisons (the spec keeps
    the user's spelling), so the same host is recognised however it is written: IP addresses
    as `ipaddress` prints them (`0:0:0:0:0:0:0:1` -> `::1`; `[fd00::1]`, a URL's spelling, is
    refused as before), IPv4-mapped IPv6 as its IPv4 address (`::ffff:10.0.0.1` ->
    `10.0.0.1`), names lowercased without the root's trailing dot, non-ASCII names in their
    IDNA (punycode) form, which is what DNS, SSH and certificates use."""
    if "%" not in value:  # no IPv6 zone ids: they take any text
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            pass
        else:
            # `::ffff:10.0.0.1` is the IPv4 host 10.0.0.1 reached over IPv6 (RFC 4291 2.5.5.2)
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            return str(mapped or ip)
    name = value.lower().removesuffix(".")
    if name and _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        raise _fail(
            f"{value[:80]!r} is not a valid IPv4 address (a name whose last label is a number "
            "is read as an address)",
            "write four numbers from 0 to 255, such as '10.0.0.11', or a DNS name",
        )
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")  # RFC 3490 ToASCII (stdlib codec)
        except UnicodeError:
            name = ""
    if _DNS_NAME.match(name):
        return name
    raise _fail(
        f"{value[:80]!r} is not a host name or IP address",
        "write a DNS name such as 'node-1.lab.example', an IPv4 address such as "
        "'10.0.0.11' or an IPv6 address such as 'fd00::11' (no brackets, port or user)",
    )


def _valid_host(value: str) -> str:
    host_address(value)
    return value


# Public: the one KBS resource path check, shared by coco:kbs.resources[].path and `coco kbs`
# (cli/kbs_client.py). Raises PydanticCustomError: .message() and .context["hint"].
validate_resource_path = _resource_path

DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsName = Annotated[str, AfterValidator(_dns_name)]
K8sVersion = Annotated[str, AfterValidator(_k8s_version)]
NodeSelector = Annotated[dict[str, str], AfterValidator(_node_selector)]
ResourcePath = Annotated[str, AfterValidator(_resource_path)]


# IBM Cloud resource ids (VPC, subnet, image, resource group, security group, cluster): CAA
# splits IBMCLOUD_PODVM_IMAGE_ID and IBMCLOUD_SECURITY_GROUP_IDS at commas
# (cloud-api-adaptor src/cloud-providers/ibmcloud/manager.go@v0.22.0), so one id has none.
_CLOUD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def _cloud_id(value: str) -> str:
    if not _CLOUD_ID.match(value):
        raise _fail(
            f"{value!r} is not an IBM Cloud resource id",
            "copy the id (not the name) from `ibmcloud is vpcs` / `subnets` / `images`, for "
            "example 'r010-0a1b2c3d-...'",
        )
    return value


CloudId = Annotated[str, AfterValidator(_cloud_id)]


class Model(BaseModel):
    """Base of every spec section: camelCase keys, unknown keys refused, no type coercion."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        hide_input_in_errors=True,
    )


class SystemPool(Model):
    instance_type: str | None = Field(
        None, description="Instance type of the system (non-TEE) pool; default per cloud."
    )
    count: int = Field(2, ge=1, le=100, description="Number of system nodes.")


class Cluster(Model):
    provider: ClusterProvider = Field(
        "existing",
        description="existing (a cluster you already have), aks, eks, gke, or k3s on your own "
        "hosts.",
    )
    name: DnsLabel | None = Field(None, description="Cluster name; default: the stack name.")
    location: str | None = Field(None, description="Azure region (aks), e.g. westeurope.")
    region: str | None = Field(None, description="AWS or GCP region (eks, gke).")
    zone: str | None = Field(None, description="GCP zone for a zonal GKE cluster.")
    kubernetes_version: K8sVersion = Field(
        versions.KUBERNETES_VERSION,
        description="Kubernetes version of managed clusters, and the schema version every "
        "rendered Kubernetes object is validated against.",
    )
    system_pool: SystemPool | None = Field(
        None, description="The non-TEE pool that runs system pods (aks, eks, gke)."
    )
    context: str | None = Field(
        None, description="existing: kube context to use; default: the current context."
    )
    kubeconfig: SecretStr | None = Field(
        None, min_length=1, description="existing: kubeconfig contents, stored as a Pulumi secret."
    )
    distribution: Distribution | None = Field(
        None,
        description="Kubernetes distribution, for containerd paths: k8s, k3s, rke2, k0s or "
        "microk8s; default k3s for provider k3s, else k8s.",
    )
    attach: bool = Field(
        False,
        description="aks, eks, gke: use the existing managed cluster called `name` instead of "
        "creating one; the stack adds pools and peer-pod infrastructure to it.",
    )
    resource_group: str | None = Field(
        None,
        pattern=r"^[-\w.()]{1,89}[-\w()]$",
        description="aks: Azure resource group of the cluster; default <name>-rg (required "
        "with attach).",
    )
    project: str | None = Field(
        None,
        pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$",
        description="gke: GCP project id of the cluster and its pools.",
    )
    server: Annotated[str, AfterValidator(_valid_host)] | None = Field(
        None,
        description="k3s: the address of the pool host (listed in coco:nodePools[].hosts) that "
        "runs the k3s server; the other hosts join it as agents.",
    )


class Host(Model):
    address: str = Field(
        min_length=1, description="Host name, IPv4 or IPv6 address reachable over SSH."
    )
    user: str = Field(
        "root", description="SSH user: root (every host command writes system paths; no sudo)."
    )
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    ssh_key: SecretStr = Field(description="SSH private key, stored as a Pulumi secret.")
    host_key: (
        Annotated[str, Field(pattern=r"^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) \S+$")] | None
    ) = Field(
        None,
        description="The host's SSH public host key, `TYPE BASE64` (the part of "
        "`ssh-keyscan -t ed25519 HOST` after the host name); connections to a host that "
        "presents another key fail. Required in production.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        host_address(value)  # refuses what is neither; the user's spelling is kept
        return value

    @field_validator("user")
    @classmethod
    def _root(cls, value: str) -> str:
        if value != "root":
            raise _fail(
                f"SSH user {value!r}: the stack runs every host command as root and does not "
                "use sudo",
                "set user: root (or leave it out) and allow root to log in with this key "
                "(sshd PermitRootLogin prohibit-password)",
            )
        return value


class IbmCloud(Model):
    """IBM Cloud peer pods: the existing VPC resources pod VMs are created in."""

    vpc_id: CloudId = Field(description="Id of the existing VPC (IBMCLOUD_VPC_ID).")
    subnet_id: CloudId = Field(description="Id of the VPC subnet (IBMCLOUD_VPC_SUBNET_ID).")
    image_id: CloudId = Field(
        description="Id of the Secure Execution pod-VM image in the VPC (IBMCLOUD_PODVM_IMAGE_ID)."
    )
    resource_group_id: CloudId = Field(
        description="Id of the resource group (IBMCLOUD_RESOURCE_GROUP_ID)."
    )
    security_group_id: CloudId | None = Field(
        None,
        description="Extra security group of the pod VMs (IBMCLOUD_SECURITY_GROUP_IDS); the "
        "cluster's own is always added.",
    )
    cluster_id: CloudId | None = Field(
        None,
        description="Id of the IKS/ROKS cluster (IBMCLOUD_CLUSTER_ID); default: read by CAA from "
        "kube-system/cluster-info.",
    )
    api_key: SecretStr = Field(
        min_length=1,
        description="IBM Cloud API key for CAA, stored as a Pulumi secret (IBMCLOUD_API_KEY).",
    )


class NodePool(Model):
    name: DnsLabel = Field(description="Pool name, a DNS label unique in the stack.")
    tee: Tee = Field(description="snp, tdx, se, sev, sgx, or none (development only).")
    mode: Mode | None = Field(
        None,
        description="peer-pods (a cloud confidential VM per pod), bare-metal (kata starts TEE "
        "VMs on the pool's hosts), nodes (the worker nodes are confidential VMs). Default: "
        "bare-metal for baremetal, peer-pods for clouds.",
    )
    provider: PoolProvider | None = Field(
        None,
        description="azure, aws, gcp, ibmcloud or baremetal; default from coco:cluster.provider.",
    )
    instance_type: str | None = Field(
        None, description="Confidential instance type; default from the TEE catalogue."
    )
    count: int | None = Field(
        None, ge=0, le=1000, description="nodes mode: number of nodes (default 1)."
    )
    region: str | None = Field(
        None, description="Cloud region (Azure location); default from coco:cluster."
    )
    zone: str | None = Field(None, description="Cloud zone where the provider needs one (gcp).")
    hosts: list[Host] | None = Field(
        None, description="bare-metal: the hosts to check, label and (k3s) join over SSH."
    )
    node_selector: NodeSelector | None = Field(
        None,
        min_length=1,
        description="Reuse existing nodes with these labels instead of creating nodes; peer-pods "
        "pools on an existing or attached cluster: the workers you labelled "
        'node.kubernetes.io/worker="" for cloud-api-adaptor (on their node pool, so replaced '
        "nodes keep it), and on an attached GKE cluster also "
        "cloud.google.com/gke-os-distribution: ubuntu.",
    )
    ibmcloud: IbmCloud | None = Field(
        None, description="ibmcloud peer pods: existing VPC ids and the API key."
    )
    disk_type: str | None = Field(
        None,
        min_length=1,
        description="gcp pools: the boot disk type of the pod VMs (GCP_DISK_TYPE) or nodes, "
        "e.g. pd-balanced or hyperdisk-balanced; default: one the machine series supports.",
    )
    pod_vm_subnet: str | None = Field(
        None,
        min_length=1,
        description="aws or azure peer pods on an attached cluster: the subnet pod VMs join (an "
        "AWS subnet id, or an Azure subnet resource id); default: the cluster's first subnet "
        "(AWS) or its node subnet (Azure).",
    )


class KbsResource(Model):
    path: ResourcePath = Field(description="repo/type/tag; guests fetch kbs:///repo/type/tag.")
    value: SecretStr = Field(
        description="Resource value; always a secret, even when written in plain text."
    )


class SeVerifier(Model):
    """What the KBS's IBM SE verifier reads; every file base64-encoded, handled as a secret."""

    host_key_documents: list[SecretStr] = Field(
        min_length=1, description="Host key documents (HKD-*.crt) of the IBM Z hosts."
    )
    image_header: SecretStr = Field(
        description="SE image header of the pod-VM image (pvextract-hdr -o hdr.bin se.img)."
    )
    certificates: list[SecretStr] = Field(
        default_factory=list,
        description="IBM Z host key signing certificate and its CA certificate (IBM Resource "
        "Link).",
    )
    crls: list[SecretStr] = Field(
        default_factory=list, description="Revocation lists of those certificates."
    )
    root_ca: SecretStr | None = Field(
        None, description="Root CA of the signing chain; default: the system's trust store."
    )
    skip_certificate_verification: bool = Field(
        False,
        description="Trust host key documents without checking IBM's signatures (development "
        "only; refused in production).",
    )


class KataGuest(Model):
    """The kata guest a bare-metal SNP pool boots, measured into snp_launch_measurement."""

    firmware: str | None = Field(
        None,
        min_length=1,
        description="Path of the kata SNP firmware (a copy of a host's "
        f"{versions.KATA_SNP_FIRMWARE}); omitted: taken from the pinned kata release "
        f"({versions.KATA_STATIC.filename}, checked by sha256).",
    )
    kernel: str | None = Field(
        None,
        min_length=1,
        description="Path of the kernel the qemu-snp shim boots (its configuration's `kernel`); "
        "omitted: taken from the pinned kata release.",
    )
    mirror: Annotated[str, AfterValidator(_mirror_url)] | None = Field(
        None,
        description=f"URL to download {versions.KATA_STATIC.filename} from instead of GitHub (an "
        "internal mirror); its pinned sha256 is checked all the same.",
    )
    initrd: str | None = Field(None, description="Path of the initrd, if the shim uses one.")
    cmdline: str = Field(
        min_length=1,
        description="The kernel command line the shim passes (QEMU -append, read on a host).",
    )
    vcpus: list[Annotated[int, Field(ge=1, le=512)]] = Field(
        default_factory=lambda: [versions.KATA_SNP_DEFAULT_VCPUS],
        min_length=1,
        description="vCPU counts of the guests (default_vcpus plus the pods' CPU limits).",
    )
    cpu_model: str = Field(
        versions.KATA_SNP_CPU_MODEL, description="QEMU CPU model of the shim's SNP guests."
    )
    guest_features: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{1,16}$")] = Field(
        "0x1", description="SEV features of the guest's VMSA, hex (sev-snp-measure default)."
    )


class Kbs(Model):
    enabled: bool = Field(True, description="Deploy the Trustee key broker.")
    namespace: DnsLabel = Field("coco-kbs", description="Namespace of the KBS.")
    expose: Expose = Field("clusterip", description="clusterip, nodeport, loadbalancer or ingress.")
    hostname: DnsName | None = Field(
        None, description="External host name; required with expose: ingress."
    )
    node_port: int | None = Field(
        None,
        ge=30000,
        le=32767,
        description="expose: nodeport: the node port (30000-32767) the KBS is reached on; "
        "required with a hostname, whose URL carries it.",
    )
    resources: list[KbsResource] = Field(
        default_factory=list, description="Secrets the KBS releases to attested guests."
    )
    resource_policy: str = Field(
        "affirming",
        description="affirming (release only when every attestation result is affirming), "
        "allow-all (refused in production), or a path to a .rego file.",
    )
    attestation_policy: str = Field(
        "default",
        description="default (the pinned Trustee release's policy) or a path to a .rego file.",
    )
    insecure_http: bool = Field(
        False, description="Serve plain HTTP instead of HTTPS; refused in production."
    )
    reference_values: dict[str, str | int | bool | list[str | int | bool]] = Field(
        default_factory=dict,
        description="Reference values the KBS trusts, by the name the attestation policy reads "
        "(snp_launch_measurement, mr_td, ...) -> accepted values; merged with the measurements "
        "of the stack's guest images.",
    )
    storage_size: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,5}(Mi|Gi|Ti)$")] = Field(
        "1Gi",
        description="Size of the KBS storage volume (a PersistentVolumeClaim), e.g. 1Gi.",
    )
    storage_class: DnsName | None = Field(
        None, description="StorageClass of the KBS storage volume; default: the cluster's."
    )
    se_verifier: SeVerifier | None = Field(
        None, description="IBM SE verifier material (se pools): mounted where Trustee reads it."
    )
    kata_guest: KataGuest | None = Field(
        None,
        description="Bare-metal SNP pools: the kata guest's artifacts; its launch measurement "
        "becomes a reference value.",
    )


class Runtime(Model):
    node_feature_discovery: bool | Literal["external"] = Field(
        False,
        description="true: install Node Feature Discovery and select TEE nodes by its labels "
        "(amd.feature.node.kubernetes.io/snp, ...) instead of the stack's pool labels; not with "
        "peer-pods pools (kata-deploy would then skip cloud workers). \"external\": NFD already "
        "runs in the cluster (NVIDIA GPU operator, OpenShift NFD operator, ...): the stack does "
        "not install it but declares the RuntimeClass overhead kata-deploy then adds, so "
        "`pulumi refresh` shows no drift; attached clusters running NFD must say external. "
        "Nodes are still selected by the stack's pool labels.",
    )
    debug: bool = Field(False, description="kata-deploy debug logging.")

    @field_validator("node_feature_discovery", mode="before")
    @classmethod
    def _nfd(cls, value: Any) -> Any:
        if value is True or value is False or value == "external":
            return value
        shown = "a mapping or list" if isinstance(value, dict | list) else repr(value)[:80]
        raise _fail(
            f'expected true, false or "external", got {shown}',
            "set true (the stack installs Node Feature Discovery), \"external\" (NFD already "
            "runs in the cluster, e.g. the NVIDIA GPU operator's) or false (no NFD in the "
            "cluster); booleans unquoted",
        )

    @property
    def installs_nfd(self) -> bool:
        """The stack installs NFD (the kata-deploy chart's node-feature-discovery subchart)."""
        return self.node_feature_discovery is True

    @property
    def nfd_present(self) -> bool:
        """NFD runs in the cluster, installed by the stack or not: kata-deploy 4.0.0 sees its
        NodeFeatureRule CRD (binary/src/k8s/nfd.rs setup_nfd_rules@4.0.0)."""
        return self.node_feature_discovery is not False


class ScratchSpace(Model):
    """The pod VMs' encrypted scratch space for container image layers (peer pods)."""

    enabled: bool | None = Field(
        None,
        description="Turn on the pod VMs' encrypted scratch space for image layers "
        "(cloud-api-adaptor ENABLE_SCRATCH_SPACE; without it images are pulled into the pod "
        "VM's memory). Default: on when the pod VMs boot the recipe's image and the recipe "
        "ships the scratch units; off with podvmImage, whose image may lack them (set true "
        "only if it has them). azure, aws and gcp peer pods only.",
    )
    size_gib: int = Field(
        20,
        ge=1,
        description="GiB of scratch space: the pod VM's boot disk (ROOT_VOLUME_SIZE) is the "
        "image's size in whole GiB plus this. With podvmImage coco-stack does not know the "
        "image's size: the disk is this alone, so include the image in it. At least 10 with gcp "
        "peer pods (GCP's persistent-disk minimum).",
    )


class Image(Model):
    recipe: str | None = Field(
        None,
        description="Guest image recipe (a name in images/recipes/ or a path to a .toml) built "
        "during `pulumi up` into build/images/<stack>/; its measurements join the KBS reference "
        "values. Building needs root and the Debian tools listed in docs/images.md.",
    )
    podvm_image: str | None = Field(
        None,
        min_length=1,
        description="Peer pods: an existing pod-VM image to use instead of publishing the "
        "recipe's image (Azure gallery image version id, AWS AMI id, GCP image name).",
    )
    scratch_space: ScratchSpace | None = Field(
        None,
        description="Peer pods: the pod VMs' encrypted scratch space (docs/images.md, "
        '"Scratch space"); default: on, 20 GiB, for the recipe\'s image.',
    )


# --- coco:charts: where the Helm charts come from (air-gapped and regulated installs) ---------


def _chart_digest(value: str) -> str:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise _fail(
            f"{value!r} is not a chart digest",
            "write sha256: and 64 lowercase hex digits, as `coco check` prints it for the "
            "chart directory",
        )
    return value


def _oci_repository(value: str) -> str:
    if not re.fullmatch(r"oci://[^/@\s?#]+(/[^@\s?#]+)*/?", value):
        raise _fail(
            f"{value!r} is not an oci:// repository without user, password, query or fragment",
            "write oci://HOST[/PATH] of the mirror that holds the chart (for example "
            "oci://registry.example/charts); Helm reaches OCI mirrors only through oci://, and "
            "credentials belong in `helm registry login` (the registry config), never in the URL",
        )
    return value.rstrip("/")


class ChartSource(Model):
    """Where one pinned chart comes from instead of its upstream repository."""

    path: str | None = Field(
        None,
        min_length=1,
        description="A chart directory (an unpacked `helm pull --untar`), relative to the project "
        "directory or absolute; its Chart.yaml must name the pinned chart at the pinned version.",
    )
    digest: Annotated[str, AfterValidator(_chart_digest)] | None = Field(
        None,
        description="With path: `sha256:<hex>` over the directory's files (sorted relative paths "
        "and contents; `coco check` prints it); any other content is refused.",
    )
    repository: Annotated[str, AfterValidator(_oci_repository)] | None = Field(
        None,
        description="A private OCI mirror (oci://HOST/PATH) holding the chart under its pinned "
        "name and version; Helm pulls `<repository>/<name>` at the pinned version.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ChartSource:
        if (self.path is None) == (self.repository is None):
            raise _fail(
                "give exactly one of path (a local chart directory) or repository (an OCI mirror)",
                "set path: DIR, or repository: oci://HOST/PATH; or remove the entry to pull the "
                "pinned chart from upstream",
            )
        if self.digest is not None and self.path is None:
            raise _fail(
                "digest pins a local chart directory, and this entry has none",
                "remove digest (a mirror is pinned by the chart version), or use path",
            )
        return self


class Charts(Model):
    """Chart sources; an entry left out is pulled from upstream at the version spec/versions.py
    pins."""

    runtime: ChartSource | None = Field(
        None,
        description=f"The {versions.COCO_CHART.name} chart {versions.COCO_CHART.version} "
        "(the CoCo runtime, kata-deploy).",
    )
    peer_pods: ChartSource | None = Field(
        None,
        description=f"The {versions.PEERPODS_CHART.name} chart {versions.PEERPODS_CHART.version} "
        "(cloud-api-adaptor, peer-pods pools).",
    )
    cert_manager: ChartSource | None = Field(
        None,
        description=f"The {versions.CERT_MANAGER_CHART.name} chart "
        f"{versions.CERT_MANAGER_CHART.version} (installed with peer pods).",
    )


SECTIONS: dict[str, Any] = {
    "environment": Environment,
    "cluster": Cluster,
    "nodePools": list[NodePool],
    "kbs": Kbs,
    "runtime": Runtime,
    "image": Image,
    "charts": Charts,
}
SECTION_DOCS = {
    "environment": "dev, staging or production; production turns on strict guards "
    "(no tee none, no allow-all policies, no insecure options).",
    "cluster": "The Kubernetes cluster: created (aks, eks, gke, k3s) or existing.",
    "nodePools": "The TEE node pools: one entry per pool.",
    "kbs": "The Trustee key broker service.",
    "runtime": "The CoCo runtime (kata-deploy through the confidential-containers chart).",
    "image": "The measured guest image the stack builds.",
    "charts": "Where the Helm charts come from: a local chart directory or a private OCI "
    "mirror instead of the upstream repositories (air-gapped installs; docs/air-gapped.md).",
}
DEFAULTS: dict[str, Any] = {
    "environment": "dev",
    "cluster": {},
    "nodePools": [],
    "kbs": {},
    "runtime": {},
    "image": {},
    "charts": {},
}


class Spec(BaseModel):
    """A validated stack: every default resolved (pool provider, mode and instance type)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    stack: str
    environment: Environment
    cluster: Cluster
    node_pools: tuple[NodePool, ...]
    kbs: Kbs
    runtime: Runtime
    image: Image
    # chart paths resolved to absolute directories by spec.rules.charts
    charts: Charts = Charts()
