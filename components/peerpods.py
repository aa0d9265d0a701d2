"""Peer pods: cloud-api-adaptor (CAA) through the peerpods chart, fed by the cloud components.

A cloud component (Azure, AWS, GCP, IBM Cloud) hands over a `CloudPeerPods`: the ids of what it
provisioned (subnet, security group, image, identity, ...). `provider_config` turns that and the
spec into the peer-pods-cm keys of the pinned release; `PeerPods` installs cert-manager (the
peer-pods webhook needs it first), a Secret the stack owns for whatever credentials the cloud
cannot provide through workload identity, and the peerpods chart in `secrets.mode: reference`,
so no credential ever reaches Helm values or release history.

Facts: cloud-api-adaptor v0.22.0, chart src/cloud-api-adaptor/install/charts/peerpods (0.4.0):
the chart renders `providerConfigs.<provider>` into ConfigMap peer-pods-cm and never checks
keys itself; CAA's src/cloud-api-adaptor/entrypoint.sh and src/cloud-providers/<p>/manager.go
decide what is required. The chart bundles kata-deploy; we turn that copy off and enable the
remote shim in the stack's one kata-deploy (components.runtime), so a node never has two.
CAA and peerpod-ctrl read peer-pods-cm and the Secret only at start (envFrom) and the chart's pod
templates carry no checksum annotation, so `chart_values` adds a pod label that changes with them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import helm, kube
from spec import catalogue, versions
from spec.labels import PART_OF, PREFIX
from spec.model import Charts
from spec.rules.image import SCRATCH_CLOUDS

# Keys CAA v0.22.0 needs to create a pod VM, per provider (manager.go Required() markers plus the
# entrypoint.sh checks; AWS_REGION/AWS_SUBNET_ID/AWS_SG_IDS would otherwise come from the node's
# instance metadata, and GCP_CONFIDENTIAL_TYPE is required whenever DISABLECVM is false
# (gcp/provider.go)). IBM Cloud: the VPC, subnet, zone and resource group are only auto-filled on
# IKS, and coco-stack does not assume IKS.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "azure": (
        "AZURE_IMAGE_ID",
        "AZURE_REGION",
        "AZURE_RESOURCE_GROUP",
        "AZURE_SUBNET_ID",
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_INSTANCE_SIZE",
    ),
    "aws": ("PODVM_AMI_ID", "AWS_REGION", "AWS_SUBNET_ID", "AWS_SG_IDS", "PODVM_INSTANCE_TYPE"),
    "gcp": (
        "GCP_PROJECT_ID",
        "GCP_ZONE",
        "GCP_NETWORK",
        "PODVM_IMAGE_NAME",
        "GCP_CONFIDENTIAL_TYPE",
        "GCP_MACHINE_TYPE",
        # ours, not CAA's: its default pd-standard is refused by C3/C3D and the Hyperdisk-only
        # series (cloud-api-adaptor#2258; spec.catalogue.GCP_BOOT_DISK_TYPES)
        "GCP_DISK_TYPE",
    ),
    "ibmcloud": (
        "IBMCLOUD_PODVM_IMAGE_ID",
        "IBMCLOUD_VPC_ID",
        "IBMCLOUD_VPC_SUBNET_ID",
        "IBMCLOUD_ZONE",
        "IBMCLOUD_RESOURCE_GROUP_ID",
        "IBMCLOUD_PODVM_INSTANCE_PROFILE_NAME",
    ),
}
# Keys CAA reads from the Secret (its *-secrets.yaml.template per provider): never ConfigMap keys.
CREDENTIAL_KEYS: dict[str, frozenset[str]] = {
    "azure": frozenset({"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"}),
    "aws": frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}),
    "gcp": frozenset({"GCP_CREDENTIALS"}),
    "ibmcloud": frozenset({"IBMCLOUD_API_KEY", "IBMCLOUD_IAM_PROFILE_ID"}),
}
# peerpod-ctrl always reads the Secret by this name (src/peerpod-ctrl/chart/templates/
# deployment.yaml@v0.22.0), so the stack's own Secret carries it.
SECRET_NAME = "peer-pods-secret"
# Pod-template label of the CAA daemonset and of peerpod-ctrl whose value follows peer-pods-cm and
# the stack's Secret. Both take them as environment (envFrom in install/charts/peerpods/templates/
# daemonset.yaml and src/peerpod-ctrl/chart/templates/deployment.yaml@v0.22.0), read once at start,
# and neither pod template has a checksum annotation; a changed label is a new pod template, so the
# daemonset (RollingUpdate) and the deployment roll. Both charts take extra pod labels
# (`daemonset.podLabels`, and the subchart's `podLabels` under its alias `resourceCtrl`).
CONFIG_CHECKSUM_LABEL = f"{PREFIX}/config-checksum"
CHECKSUM_LENGTH = 16  # hex digits of sha256 kept: 64 bits, within a label value's 63 characters
# GCP confidential types CAA accepts (GCP_CONFIDENTIAL_TYPE: SEV, SEV_SNP, TDX). The spec
# refuses snp peer pods on GCP (spec.catalogue.REFUSED: CAA v0.22.0 sets no minimum CPU platform).
GCP_CONFIDENTIAL_TYPE = {"sev": "SEV", "snp": "SEV_SNP", "tdx": "TDX"}
# Encrypted scratch space (docs/images.md "Scratch space"), cloud-api-adaptor v0.22.0:
# - ENABLE_SCRATCH_SPACE: the daemon's -enable-scratch-space flag, read from the environment
#   (peer-pods-cm is envFrom) by FlagRegistrar.BoolWithEnv, default false, "1" or "true" turn it
#   on (cmd/cloud-api-adaptor/main.go, src/cloud-providers/util.go); with it CreateVM writes the
#   empty /run/peerpod/scratch-space.marker into the pod VM's user data
#   (pkg/adaptor/cloud/cloud.go), the marker our image's scratch-storage.path waits for.
# - ROOT_VOLUME_SIZE: the pod VM's boot disk in GiB, read by the azure, aws and gcp providers
#   (src/cloud-providers/<p>/manager.go IntWithEnv): azure default 0 = the image's own size, so
#   no free space (azure/provider.go sets OSDisk.DiskSizeGB only when > 0); aws default 30,
#   raised to the AMI's root device size when smaller (aws/provider.go NewProvider,
#   BlockDeviceMappings VolumeSize); gcp default 10, the larger of it and the image's size
#   (gcp/provider.go CreateInstance: the image's DiskSizeGb). A disk larger than its image keeps
#   the image's bytes at its start, so the free space follows the image's partitions, where the
#   image's systemd-repart adds the scratch partition (and moves the backup GPT to the end).
SCRATCH_PROVIDERS = frozenset(SCRATCH_CLOUDS)
GIB = 1 << 30
# ROOT_VOLUME_SIZE where the image is not built (coco render): its GiB are added at `pulumi up`.
UNBUILT_ROOT_VOLUME = "[unknown until built: the image's GiB]"


def root_volume_gib(image_bytes: int | None, scratch_gib: int) -> int:
    """The pod VM's boot disk in whole GiB: the image rounded up to whole GiB (what GCP imports
    and EBS snapshots hold; Azure's VHD is no larger) plus the scratch space. An unknown image
    size (a podvmImage the user brings, or `coco render`, where nothing is built) counts 0."""
    if scratch_gib < 1:
        raise ValueError(f"scratch space must be at least 1 GiB, not {scratch_gib}")
    return -(-(image_bytes or 0) // GIB) + scratch_gib


@dataclass(frozen=True)
class Scratch:
    """The pod VMs' encrypted scratch space: its GiB, and the size of the image they boot: the
    recipe build's output, or None for a podvmImage, whose size coco-stack does not know (the
    disk is then the scratch GiB alone, as coco:image.scratchSpace.sizeGib documents)."""

    gib: int
    image_bytes: pulumi.Input[int | None] | None = None

    def keys(self) -> dict[str, pulumi.Input[str]]:
        size: pulumi.Input[str]
        if self.image_bytes is None:
            size = str(root_volume_gib(None, self.gib))
        else:
            image: pulumi.Output[int | None] = pulumi.Output.from_input(self.image_bytes)
            size = image.apply(self._with_image)
        return {"ENABLE_SCRATCH_SPACE": "true", "ROOT_VOLUME_SIZE": size}

    def _with_image(self, image_bytes: int | None) -> str:
        # A build's size is known during `pulumi up` (and unknown, shown as such, in `pulumi
        # preview`); it resolves to None only under `coco render`'s mocks, where nothing is
        # built: say so there instead of a disk too small by the image's GiB.
        if image_bytes is None:
            return f"{UNBUILT_ROOT_VOLUME} + {self.gib}"
        return str(root_volume_gib(image_bytes, self.gib))


@dataclass(frozen=True)
class PeerPodPool:
    """What the spec says about one peer-pods pool."""

    tee: str
    instance_type: str
    region: str
    zone: str | None = None
    disk_type: str | None = None  # gcp: the pool's diskType, if the user set one


@dataclass(frozen=True)
class CloudPeerPods:
    """What a cloud component provisioned for peer pods: every value a resource output."""

    provider: str
    ids: Mapping[str, pulumi.Input[str]]  # e.g. {"AZURE_SUBNET_ID": subnet.id}
    credentials: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # workload identity: labels on the CAA pods, annotations on its service account
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def provider_config(
    cloud: CloudPeerPods,
    pools: list[PeerPodPool],
    initdata: pulumi.Input[str] | None = None,
    scratch: Scratch | None = None,
) -> dict[str, pulumi.Input[str]]:
    """peer-pods-cm for one provider: the cloud's resource ids plus what the spec decides
    (region, zone, instance sizes per TEE, confidential type, the scratch space). Raises
    ValueError, naming the keys, when something required is missing, a credential is about to
    become a ConfigMap key, or scratch space is asked of a provider that cannot size the disk.
    """
    if not pools:
        raise ValueError("peer pods need at least one pool")
    first = pools[0]
    sizes = ",".join(sorted({p.instance_type for p in pools}))
    spec_keys: dict[str, pulumi.Input[str]]
    if cloud.provider == "azure":
        spec_keys = {
            "AZURE_REGION": first.region,
            "AZURE_INSTANCE_SIZE": first.instance_type,
            "AZURE_INSTANCE_SIZES": sizes,
        }
    elif cloud.provider == "aws":
        spec_keys = {
            "AWS_REGION": first.region,
            "PODVM_INSTANCE_TYPE": first.instance_type,
            "PODVM_INSTANCE_TYPES": sizes,
        }
    elif cloud.provider == "gcp":
        tees = {p.tee for p in pools}
        if len(tees) > 1:
            raise ValueError(
                "GCP peer pods take one GCP_CONFIDENTIAL_TYPE per cluster; "
                f"the pools ask for {', '.join(sorted(tees))}"
            )
        # one boot disk type for every pod VM: the users' (spec.rules makes them agree), else
        # the first type every pool's machine series accepts
        disk = next((p.disk_type for p in pools if p.disk_type), None)
        disk = disk or catalogue.gcp_common_disk_type([p.instance_type for p in pools])
        spec_keys = {
            "GCP_ZONE": first.zone or "",
            "GCP_MACHINE_TYPE": first.instance_type,
            "GCP_INSTANCE_TYPES": sizes,
            "GCP_CONFIDENTIAL_TYPE": GCP_CONFIDENTIAL_TYPE[first.tee],
            "GCP_DISK_TYPE": disk or "",
        }
    elif cloud.provider == "ibmcloud":
        spec_keys = {
            "IBMCLOUD_ZONE": first.zone or "",
            "IBMCLOUD_PODVM_INSTANCE_PROFILE_NAME": first.instance_type,
            "IBMCLOUD_PODVM_INSTANCE_PROFILE_LIST": sizes,
            # SE comes from the SE image on a bz2e profile; DISABLECVM=false would ask the VPC API
            # for TDX confidential_compute_mode (ibmcloud/provider.go@v0.22.0)
            "DISABLECVM": "true",
        }
    else:
        raise ValueError(f"no peer pods for provider {cloud.provider!r}")
    config: dict[str, pulumi.Input[str]] = {**cloud.ids, **spec_keys}
    if initdata is not None:
        config["INITDATA"] = initdata  # base64(gzip(initdata TOML)), parsed by CAA at start
    if scratch is not None:
        if cloud.provider not in SCRATCH_PROVIDERS:
            raise ValueError(
                f"no scratch space for {cloud.provider} peer pods: only "
                f"{', '.join(sorted(SCRATCH_PROVIDERS))} pod VMs boot coco-stack's podvm image"
            )
        config.update(scratch.keys())
    leaked = sorted(CREDENTIAL_KEYS[cloud.provider] & set(config))
    if leaked:
        raise ValueError(f"credentials must go to the Secret, not peer-pods-cm: {leaked}")
    missing = sorted(k for k in REQUIRED_KEYS[cloud.provider] if not config.get(k))
    if missing:
        raise ValueError(f"{cloud.provider} peer pods are missing {', '.join(missing)}")
    return dict(sorted(config.items()))


def config_checksum(
    provider: str,
    config: Mapping[str, pulumi.Input[str]],
    credentials: Mapping[str, pulumi.Input[str]],
) -> pulumi.Output[str]:
    """A short sha256 of what CAA reads at start: the provider, peer-pods-cm's keys and the
    stack's Secret, as sorted JSON. The Secret's values are hashed together with the config and
    only CHECKSUM_LENGTH hex digits are kept, so the label gives nothing usable about them (they
    are cloud keys, not guessable words); it is therefore unsecreted, so Helm values and
    `coco render` stay plain. Unknown until every input is known (preview)."""
    document = pulumi.Output.from_input(
        {"provider": provider, "configmap": dict(config), "secret": dict(credentials)}
    )

    def digest(value: dict[str, Any]) -> str:
        blob = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:CHECKSUM_LENGTH]

    return pulumi.Output.unsecret(document.apply(digest))


def chart_values(cloud: CloudPeerPods, config: Mapping[str, pulumi.Input[str]]) -> dict[str, Any]:
    """Values of the peerpods chart (values.yaml@v0.22.0 key structure)."""
    checksum = config_checksum(cloud.provider, config, cloud.credentials)
    identity = {
        "podLabels": {**cloud.pod_labels, CONFIG_CHECKSUM_LABEL: checksum},
        "serviceAccount": {"annotations": dict(cloud.service_account_annotations)},
    }
    return {
        "provider": cloud.provider,
        "providerConfigs": {cloud.provider: dict(config)},
        "secrets": {
            "mode": "reference",
            "existingSecretName": SECRET_NAME if cloud.credentials else "",
        },
        "image": {
            "name": versions.CLOUD_API_ADAPTOR_IMAGE.repository,
            "tag": versions.CLOUD_API_ADAPTOR_IMAGE.tag,
        },
        "daemonset": identity,
        # both subcharts on by name, not by the chart's defaults (values.yaml@v0.22.0: each
        # `enabled: true`, the Chart.yaml dependency conditions `resourceCtrl.enabled` and
        # `webhook.enabled`): peerpod-ctrl deletes pod VMs left behind (the stack's cleanup and
        # cloud IAM assume it runs), and the webhook the stack installs cert-manager for gives
        # kata-remote pods their peer-pod resource instead of the node's CPU and memory
        "resourceCtrl": {**identity, "enabled": True},
        "webhook": {"enabled": True},
        # the stack's own kata-deploy (components.runtime) provides the remote shim
        "kata-deploy": {"enabled": False},
    }


class PeerPods(pulumi.ComponentResource):
    """cert-manager, the stack-owned credentials Secret and the peerpods chart."""

    def __init__(
        self,
        name: str,
        args: CloudPeerPods,
        config: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
        charts: Charts | None = None,
    ):
        """`charts`: the stack's chart sources (spec.charts; paths already resolved against
        the project directory by spec.rules.charts); None: upstream."""
        super().__init__("coco:runtime:PeerPods", name, None, opts)
        charts = charts or Charts()
        child = pulumi.ResourceOptions(parent=self)
        common = PART_OF
        cm_ns = kube.namespace(f"{name}-cert-manager-namespace", "cert-manager", child)
        cert_manager = helm.release(
            f"{name}-cert-manager",
            "cert-manager",
            versions.CERT_MANAGER_CHART,
            "cert-manager",
            {"crds": {"enabled": True}},  # crds.enabled from cert-manager 1.15
            pulumi.ResourceOptions(parent=self, depends_on=[cm_ns]),
            repo=versions.CERT_MANAGER_REPO,
            source=charts.cert_manager,
        )
        # CAA runs privileged with host networking to reach pod VMs
        ns = kube.namespace(
            f"{name}-namespace", versions.PEERPODS_NAMESPACE, child, pod_security="privileged"
        )
        depends: list[pulumi.Resource] = [ns, cert_manager]
        if args.credentials:
            depends.append(
                k8s.core.v1.Secret(
                    f"{name}-credentials",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=SECRET_NAME, namespace=versions.PEERPODS_NAMESPACE, labels=common
                    ),
                    type="Opaque",
                    string_data={
                        k: pulumi.Output.secret(v) for k, v in sorted(args.credentials.items())
                    },
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
                )
            )
        self.release = helm.release(
            f"{name}-chart",
            "peerpods",
            versions.PEERPODS_CHART,
            versions.PEERPODS_NAMESPACE,
            chart_values(args, config),
            pulumi.ResourceOptions(parent=self, depends_on=depends),
            source=charts.peer_pods,
        )
        self.register_outputs({})
