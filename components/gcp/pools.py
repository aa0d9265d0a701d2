"""ConfidentialNodePool: one nodes-mode pool as a GKE node pool of Confidential GKE Nodes.

Scope: a container.NodePool whose nodes are confidential VMs of the pool's TEE
(nodeConfig.confidentialNodes with the confidential instance type), the machine series and
minimum CPU platform the TEE needs (spec.catalogue: SEV on N2D/C2D/C3D/C4D, SEV-SNP on N2D
with "AMD Milan", TDX on C3), the pool's Kubernetes labels and NoSchedule taints, the
`coco-stack-tee` resource label, and Workload Identity's GKE metadata server.
Non-goals: autoscaling, GPUs, sole tenancy, attestation of the nodes (node-level
confidentiality only: pods run with the node's runc, spec.catalogue notes).

Host maintenance: GKE node pools have no onHostMaintenance setting (pulumi_gcp 10.2.0
NodePoolNodeConfigHostMaintenancePolicyArgs carries only maintenance_interval); Compute Engine
applies TERMINATE, the Confidential VM default, to confidential VMs that cannot live-migrate
(cloud.google.com/confidential-computing/confidential-vm/docs/troubleshoot-live-migration).
The pool therefore sets no host maintenance policy at all.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components import clouds
from spec import catalogue
from spec.model import NodePool, Spec

from .cluster import MANAGEMENT, NODE_SCOPES, GkeCluster
from .common import PART_OF_LABEL, TEE_LABEL, gcp_name

# Kubernetes taint effects -> GKE's enum (container/v1 NodeTaint.Effect).
TAINT_EFFECT = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}


def confidential_settings(pool: NodePool) -> dict[str, str]:
    """The catalogue's platform facts for the pool: confidentialInstanceType and, where the TEE
    needs one, minCpuPlatform. Raises ValueError for a pool the catalogue does not offer."""
    offering = catalogue.find("gcp", pool.tee, "nodes")
    if offering is None or "confidentialInstanceType" not in offering.platform:
        raise ValueError(f"no confidential GKE nodes for tee {pool.tee!r} (spec.rules)")
    return dict(offering.platform)


def boot_disk_type(pool: NodePool) -> str | None:
    """The catalogue's preferred boot disk of the pool's machine series (None: GKE's default)."""
    return catalogue.gcp_boot_disk_type(pool.instance_type or "")


class ConfidentialNodePool(pulumi.ComponentResource):
    """A GKE node pool of confidential nodes for one `coco:nodePools[]` entry."""

    def __init__(
        self,
        name: str,
        spec: Spec,
        pool: NodePool,
        cluster: GkeCluster,
        nodes: clouds.PoolNodes,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:gcp:ConfidentialNodePool", name, None, opts)
        platform = confidential_settings(pool)
        self.node_pool = gcp.container.NodePool(
            f"{name}-gke",
            name=gcp_name(f"tee-{pool.name}", 40),
            cluster=cluster.cluster_name,
            location=cluster.location,
            project=cluster.project,
            # a TEE machine series exists only in some zones (coco check --live): pin the
            # pool's zone when the spec names one
            node_locations=[pool.zone] if pool.zone else None,
            node_count=pool.count if pool.count is not None else 1,
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=pool.instance_type,
                confidential_nodes=gcp.container.NodePoolNodeConfigConfidentialNodesArgs(
                    enabled=True,
                    confidential_instance_type=platform["confidentialInstanceType"],
                ),
                min_cpu_platform=platform.get("minCpuPlatform"),
                # GKE's default boot disk (pd-balanced) does not exist for the Hyperdisk-only
                # series (C4D): the pool's diskType, else the series' first choice
                disk_type=pool.disk_type or boot_disk_type(pool),
                service_account=cluster.node_service_account,
                oauth_scopes=list(NODE_SCOPES),
                labels=dict(sorted(nodes.labels.items())),
                taints=[
                    gcp.container.NodePoolNodeConfigTaintArgs(
                        key=t.key, value=t.value, effect=TAINT_EFFECT[t.effect]
                    )
                    for t in nodes.taints
                ],
                resource_labels={**PART_OF_LABEL, TEE_LABEL: pool.tee},
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
            ),
            management=MANAGEMENT,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.node_pool.name})
