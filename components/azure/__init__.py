"""Azure: AKS clusters, confidential node pools, pod-VM image publishing and peer-pod
infrastructure, behind the four functions of `components.clouds.CloudPackage`.

One module per concern: cluster (AKS, created or attached), pools (nodes-mode agent pools),
image (Compute Gallery publishing), peerpods (pod-VM network and CAA workload identity),
preflight (`coco check --live` against the Resource SKUs API). See docs/azure.md.
"""

from __future__ import annotations

from .cluster import cluster
from .image import publish_image
from .peerpods import peer_pods
from .pools import node_pool

__all__ = ["cluster", "node_pool", "peer_pods", "publish_image"]
