"""GCP: GKE clusters, Confidential GKE Node pools, peer-pod infrastructure and pod-VM images.

The four functions of the cloud contract (components.clouds.CloudPackage); each builds one
component of this package. Every GCP resource names coco:cluster.project explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from spec.model import NodePool, Spec

from ..clouds import ManagedCluster, PoolNodes
from ..image import GuestImage
from ..peerpods import CloudPeerPods
from .cluster import GkeCluster, as_gke
from .image import PodVmImage
from .peerpods import CaaInfrastructure
from .pools import ConfidentialNodePool

__all__ = ["cluster", "node_pool", "peer_pods", "publish_image"]


def cluster(name: str, spec: Spec, opts: pulumi.ResourceOptions) -> ManagedCluster:
    return GkeCluster(name, spec, opts)


def node_pool(
    name: str,
    spec: Spec,
    pool: NodePool,
    cluster: ManagedCluster,
    nodes: PoolNodes,
    opts: pulumi.ResourceOptions,
) -> pulumi.ComponentResource:
    return ConfidentialNodePool(name, spec, pool, as_gke(cluster), nodes, opts)


def publish_image(
    name: str,
    spec: Spec,
    cluster: ManagedCluster,
    image: GuestImage,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    gke = as_gke(cluster)
    return PodVmImage(name, spec, image, gke.project, gke.region, opts).image_name


def peer_pods(
    name: str,
    spec: Spec,
    pools: Sequence[NodePool],
    cluster: ManagedCluster,
    image_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> CloudPeerPods:
    return CaaInfrastructure(name, spec, pools, as_gke(cluster), image_id, opts).peer_pods
