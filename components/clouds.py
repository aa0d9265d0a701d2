"""The contract between `CocoStack` and the cloud packages (components.azure, .aws, .gcp).

Each cloud package exposes four module-level functions; `CocoStack` calls them in this order
and never looks inside:

    cluster(name, spec, opts) -> ManagedCluster
        the managed cluster (created, or attached with coco:cluster.attach) and the Kubernetes
        provider built from its kubeconfig (a secret). When the spec has peer-pods pools, the
        system pool's nodes carry `peer_pod_worker_labels(spec)`: cloud-api-adaptor and the
        remote shim run there.
    node_pool(name, spec, pool, cluster, nodes, opts) -> pulumi.ComponentResource
        one nodes-mode pool: confidential worker nodes carrying `nodes.labels` and `nodes.taints`.
    publish_image(name, spec, cluster, image, opts) -> pulumi.Output[str]
        the stack's GuestImage published as a pod-VM image; returns the id the cloud's
        peer-pods configuration names (AZURE_IMAGE_ID, PODVM_AMI_ID, PODVM_IMAGE_NAME).
    peer_pods(name, spec, pools, cluster, image_id, opts) -> peerpods.CloudPeerPods
        the peer-pod infrastructure (network, identity) and the resource ids for peer-pods-cm.

Everything is registered under `opts` (parent = the stack, no Kubernetes provider: cloud
resources use the cloud's default provider from the stack's config, for example
azure-native:location).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from spec import labels
from spec.model import NodePool, Spec

if TYPE_CHECKING:
    from .image import GuestImage
    from .peerpods import CloudPeerPods

# cluster provider -> pool provider (the cloud) -> the package that provisions it
PACKAGES = {"azure": "components.azure", "aws": "components.aws", "gcp": "components.gcp"}
CLUSTER_CLOUD = {"aks": "azure", "eks": "aws", "gke": "gcp"}


@dataclass(frozen=True, order=True)
class Taint:
    key: str
    value: str
    effect: str  # NoSchedule, PreferNoSchedule or NoExecute


@dataclass(frozen=True)
class PoolNodes:
    """What the stack asks a cloud to put on the nodes of one pool it creates."""

    labels: Mapping[str, str]
    taints: tuple[Taint, ...]


def pool_nodes(pool: NodePool) -> PoolNodes:
    """Labels and taints of the nodes of a pool the stack creates.

    Every TEE node is dedicated: the `coco-stack.io/tee=<tee>:NoSchedule` taint keeps ordinary
    pods off (the RuntimeClasses and nodes-mode pod templates tolerate it). Bare-metal nodes also
    start with the runtime-pending taint that kata-deploy removes once their runtime is ready
    (spec.runtime_plan); nodes-mode pools run pods with the node's own runc, so they have
    no runtime to wait for.
    """
    taints = [Taint(labels.TEE, pool.tee, "NoSchedule")]
    if pool.mode == "bare-metal":
        taints.append(Taint(labels.STARTUP_TAINT_KEY, "", "NoSchedule"))
    return PoolNodes(labels.pool_labels(pool.name, pool.tee), tuple(sorted(taints)))


def system_pool_labels() -> dict[str, str]:
    """Labels of a created cluster's system pool on clouds whose system pool keeps the labels it
    was created with: node.kubernetes.io/worker="" always, peer-pods pools or not, so a stack
    that adds its first peer-pods pool later finds its workers already labelled for the
    cloud-api-adaptor daemonset (peerpods chart templates/daemonset.yaml@v0.22.0, a fixed
    nodeSelector). Harmless without peer pods: only CAA's daemonset and the kata-remote
    RuntimeClass select on this label alone; every other pool selector carries the pool's own
    labels (spec.labels.pool_selector), which system nodes lack."""
    return {labels.WORKER: ""}


def peer_pod_worker_labels(spec: Spec) -> dict[str, str]:
    """Labels the system pool's nodes need when the stack has peer-pods pools: the
    cloud-api-adaptor daemonset runs only on nodes labelled node.kubernetes.io/worker=""
    (peerpods chart templates/daemonset.yaml@v0.22.0), and kata-deploy puts the remote shim
    there."""
    return {labels.WORKER: ""} if any(p.mode == "peer-pods" for p in spec.node_pools) else {}


class ManagedCluster(Protocol):
    """What `cluster()` returns: a ComponentResource with these attributes."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]  # always a secret
    outputs: Mapping[str, pulumi.Input[Any]]  # exported as the stack output `cluster`


class CloudPackage(Protocol):
    def cluster(self, name: str, spec: Spec, opts: pulumi.ResourceOptions) -> ManagedCluster: ...

    def node_pool(
        self,
        name: str,
        spec: Spec,
        pool: NodePool,
        cluster: ManagedCluster,
        nodes: PoolNodes,
        opts: pulumi.ResourceOptions,
    ) -> pulumi.ComponentResource: ...

    def publish_image(
        self,
        name: str,
        spec: Spec,
        cluster: ManagedCluster,
        image: GuestImage,
        opts: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]: ...

    def peer_pods(
        self,
        name: str,
        spec: Spec,
        pools: Sequence[NodePool],
        cluster: ManagedCluster,
        image_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> CloudPeerPods: ...


def package(cloud: str) -> CloudPackage:
    """The package that provisions `cloud` (azure, aws or gcp)."""
    module: Any = importlib.import_module(PACKAGES[cloud])
    return module  # type: ignore[no-any-return]
