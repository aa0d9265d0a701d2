"""AWS for coco-stack: EKS clusters, SEV-SNP node groups, peer-pod infrastructure, the pod-VM
AMI, and the boto3 preflight (`coco check --live`).

The four functions of the cloud contract (components.clouds.CloudPackage). AWS offers SEV-SNP
only (c6a, m6a, r6a); spec.rules refuses TDX, SEV and SGX pools on AWS. See docs/aws.md.
"""

from __future__ import annotations

from .cluster import cluster
from .image import publish_image
from .peerpods import peer_pods
from .pools import node_pool

__all__ = ["cluster", "node_pool", "peer_pods", "publish_image"]
