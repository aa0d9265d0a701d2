"""GkeCluster: the stack's GKE cluster (created, or attached with coco:cluster.attach).

Scope: a VPC network and subnet of its own (VPC-native, with secondary ranges for pods and
services), a Standard GKE cluster with Workload Identity Federation and no default node pool, a
dedicated least-privilege node service account, the system pool (non-TEE nodes that run the
system pods, cloud-api-adaptor and the remote shim), and the kubeconfig (a secret) the
Kubernetes provider uses. Attach mode reads an existing cluster and its subnet instead.
Non-goals: private clusters, Autopilot, Cloud NAT, release-channel upgrades (the version is
pinned), TEE pools (components.gcp.pools), peer-pod infrastructure (components.gcp.peerpods).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import yaml

from spec import catalogue
from spec.errors import ConfigIssue, SpecError
from spec.model import Spec

from .. import clouds
from .common import PART_OF_LABEL, cluster_name, gcp_name, location, project

# The system pool's default machine type: general purpose, not confidential (the TEE work runs
# in TEE pools or pod VMs). 4 vCPU leaves room for kata-deploy, CAA, cert-manager and the KBS.
SYSTEM_MACHINE_TYPE = "e2-standard-4"
# Container-Optimized OS has a read-only root, so kata-deploy cannot install the remote shim on
# it; upstream's GKE test cluster uses Ubuntu nodes for that reason (cloud-api-adaptor
# src/cloud-api-adaptor/test/provisioner/gcp/cluster.go@v0.22.0: ImageType UBUNTU_CONTAINERD).
SYSTEM_IMAGE_TYPE = "UBUNTU_CONTAINERD"
# Address plan of the stack's own VPC: nodes (and peer-pod VMs, which CAA puts in the same
# subnet), pods and services (VPC-native cluster, secondary ranges).
NODE_RANGE = "10.10.0.0/20"
POD_RANGE = "10.20.0.0/14"
SERVICE_RANGE = "10.24.0.0/20"
# Roles of the nodes' service account instead of the Compute Engine default account (Editor):
# cloud.google.com/kubernetes-engine/docs/how-to/service-accounts ("use a least privilege
# service account": roles/container.defaultNodeServiceAccount).
NODE_ROLES = ("roles/container.defaultNodeServiceAccount",)
# OAuth scope of the nodes; what they may do is limited by the service account's roles.
NODE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# Nodes keep the pinned version (no auto-upgrade; the cluster has no release channel) and are
# repaired when unhealthy.
MANAGEMENT = gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=False)


def kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that authenticates with gke-gcloud-auth-plugin (the exec credential plugin
    GKE requires since 1.26: cloud.google.com/kubernetes-engine/docs/how-to/
    cluster-access-for-kubectl). It holds no credential itself, but is exported as a secret."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": f"https://{endpoint}",
                    "certificate-authority-data": ca_certificate,
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "gke-gcloud-auth-plugin",
                        "installHint": "install gke-gcloud-auth-plugin (gcloud components "
                        "install gke-gcloud-auth-plugin, or apt-get install "
                        "google-cloud-cli-gke-gcloud-auth-plugin)",
                        "provideClusterInfo": True,
                    }
                },
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=True)


@dataclass(frozen=True)
class SubnetworkRef:
    name: str
    region: str
    project: str


def subnetwork_ref(value: str | None, cluster: str, project: str, region: str) -> SubnetworkRef:
    """Where getCluster's `subnetwork` points. The provider reads the GKE API's
    networkConfig.subnetwork, a relative name projects/<p>/regions/<r>/subnetworks/<s>
    (terraform-provider-google resource_container_cluster.go; a self link URL has the same
    tail); pulumi_gcp 10.2.0 documents "the name or self_link", so a bare name is taken to be in
    the cluster's project and region."""
    parts = (value or "").strip().strip("/").split("/")

    def after(key: str, default: str) -> str:
        at = parts.index(key) + 1 if key in parts else len(parts)
        return parts[at] if at < len(parts) else default

    name = after("subnetworks", "") if "subnetworks" in parts else "/".join(parts)
    if not name or "/" in name:
        raise SpecError([ConfigIssue(
            "coco:cluster.attach",
            f"the GKE cluster {cluster} reports no subnetwork coco-stack can read ({value!r}); "
            "peer pods and their firewall rule need the cluster's node subnet",
            "attach a VPC-native cluster whose nodes are in a subnetwork, or let the stack "
            "create the cluster (remove attach)",
        )])
    return SubnetworkRef(name, after("regions", region), after("projects", project))


class GkeCluster(pulumi.ComponentResource):
    """The GKE cluster, its network and the Kubernetes provider built from its kubeconfig."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    outputs: Mapping[str, pulumi.Input[Any]]
    # what the pools, the image and the peer-pod infrastructure need
    project: str
    location: str
    region: str
    cluster_name: pulumi.Output[str]
    network: pulumi.Output[str]  # projects/<p>/global/networks/<n>
    subnetwork: pulumi.Output[str]  # projects/<p>/regions/<r>/subnetworks/<s>
    node_range: pulumi.Output[str]  # the subnet's primary range: nodes and pod VMs
    node_service_account: pulumi.Output[str]  # email

    def __init__(self, name: str, args: Spec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:gcp:GkeCluster", name, None, opts)
        spec = args
        self.project = project(spec)
        self.location = location(spec)
        self.region = spec.cluster.region or self.location.rsplit("-", 1)[0]
        child = pulumi.ResourceOptions(parent=self)
        gke_name = cluster_name(spec)

        self.node_service_account = self._node_account(name, gke_name, child)
        if spec.cluster.attach:
            endpoint, ca = self._attach(gke_name)
        else:
            endpoint, ca = self._create(name, spec, gke_name, child)
        config = pulumi.Output.all(self.cluster_name, endpoint, ca).apply(
            lambda v: kubeconfig(f"gke_{self.project}_{self.location}_{v[0]}", v[1], v[2])
        )
        self.kubeconfig = pulumi.Output.secret(config)
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )
        self.outputs = {
            "provider": "gke",
            "name": self.cluster_name,
            "project": self.project,
            "location": self.location,
            "attached": spec.cluster.attach,
            "network": self.network,
            "kubeconfig": self.kubeconfig,
        }
        self.register_outputs({"name": self.cluster_name, "network": self.network})

    def _node_account(
        self, name: str, gke_name: str, child: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        account = gcp.serviceaccount.Account(
            f"{name}-nodes-sa",
            account_id=gcp_name(f"{gke_name}-nodes", 30),
            display_name=f"coco-stack GKE nodes of {gke_name}",
            project=self.project,
            opts=child,
        )
        for role in NODE_ROLES:
            gcp.projects.IAMMember(
                f"{name}-nodes-sa-{role.rsplit('/', 1)[-1]}",
                project=self.project,
                role=role,
                member=account.email.apply(lambda e: f"serviceAccount:{e}"),
                opts=child,
            )
        email: pulumi.Output[str] = account.email
        return email

    def _attach(self, gke_name: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        found = gcp.container.get_cluster_output(
            name=gke_name, location=self.location, project=self.project
        )
        # by name, region and project: getSubnetwork's self_link wants a full URL, which
        # getCluster does not give (hashicorp/terraform-provider-google#9919)
        ref = found.subnetwork.apply(
            lambda value: subnetwork_ref(value, gke_name, self.project, self.region)
        )
        subnet = gcp.compute.get_subnetwork_output(
            name=ref.apply(lambda r: r.name),
            region=ref.apply(lambda r: r.region),
            project=ref.apply(lambda r: r.project),
        )
        self.cluster_name = found.name.apply(lambda n: n or gke_name)
        self.network = found.network
        self.subnetwork = subnet.id
        self.node_range = subnet.ip_cidr_range
        return found.endpoint, found.master_auths.apply(
            lambda auths: auths[0].cluster_ca_certificate if auths else ""
        )

    def _create(
        self, name: str, spec: Spec, gke_name: str, child: pulumi.ResourceOptions
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        network = gcp.compute.Network(
            f"{name}-network",
            name=gcp_name(f"{gke_name}-vpc"),
            auto_create_subnetworks=False,
            project=self.project,
            opts=child,
        )
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            name=gcp_name(f"{gke_name}-nodes"),
            network=network.id,
            region=self.region,
            ip_cidr_range=NODE_RANGE,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name="pods", ip_cidr_range=POD_RANGE
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name="services", ip_cidr_range=SERVICE_RANGE
                ),
            ],
            project=self.project,
            opts=child,
        )
        cluster = gcp.container.Cluster(
            f"{name}-gke",
            name=gke_name,
            location=self.location,
            project=self.project,
            network=network.id,
            subnetwork=subnet.id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name="pods", services_secondary_range_name="services"
            ),
            # the system pool below replaces the default pool GKE insists on creating first
            remove_default_node_pool=True,
            initial_node_count=1,
            min_master_version=spec.cluster.kubernetes_version,
            # pinned version: no release channel moves it (GKE still upgrades a version at
            # its end of support)
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="UNSPECIFIED"),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{self.project}.svc.id.goog"
            ),
            resource_labels=PART_OF_LABEL,
            deletion_protection=spec.environment == "production",
            opts=child,
        )
        system = spec.cluster.system_pool
        machine = (system.instance_type if system else None) or SYSTEM_MACHINE_TYPE
        gcp.container.NodePool(
            f"{name}-system",
            name="system",
            cluster=cluster.name,
            location=self.location,
            project=self.project,
            node_count=system.count if system else 2,
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=machine,
                # GKE's default boot disk is pd-balanced, which the Hyperdisk-only series (N4,
                # C4, C4D) cannot attach: the series' first boot-disk type of the catalogue's
                # table (spec.catalogue.GCP_BOOT_DISK_TYPES, sources there); a series not in
                # the table (E2, the default) keeps GKE's default.
                disk_type=catalogue.gcp_boot_disk_type(machine),
                image_type=SYSTEM_IMAGE_TYPE,
                service_account=self.node_service_account,
                oauth_scopes=list(NODE_SCOPES),
                # only with peer-pods pools: GKE updates a node pool's Kubernetes labels in
                # place (terraform-provider-google 4.48.0, under pulumi-gcp), so a pool added
                # later still reaches these nodes
                labels=dict(sorted(clouds.peer_pod_worker_labels(spec).items())),
                resource_labels=PART_OF_LABEL,
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
            ),
            management=MANAGEMENT,
            opts=child,
        )
        self.cluster_name = cluster.name
        self.network = network.id
        self.subnetwork = subnet.id
        self.node_range = subnet.ip_cidr_range
        return cluster.endpoint, cluster.master_auth.apply(
            lambda auth: (auth.cluster_ca_certificate or "") if auth else ""
        )


def as_gke(cluster: clouds.ManagedCluster) -> GkeCluster:
    """The GKE cluster behind the contract's ManagedCluster (the stack passes back ours)."""
    if not isinstance(cluster, GkeCluster):
        raise TypeError(f"GCP pools need the stack's GkeCluster, got {type(cluster).__name__}")
    return cluster
