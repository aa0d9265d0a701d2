"""Nodes-mode pools on AKS: one agent pool of confidential VMs per pool.

AKS has no security-type field for agent pools: a confidential size (DCasv5/DCadsv5/ECasv5/
ECadsv5 for SEV-SNP, DCesv5/DCedsv5/ECesv5/ECedsv5 for TDX) with an Ubuntu OS SKU makes AKS pick
its confidential node image (learn.microsoft.com/azure/aks/use-cvm). SGX pools are DCsv3/DCdsv3
nodes served by the cluster's ACCSGXDevicePlugin add-on (components.azure.cluster); CoCo has no
SGX runtime, so the stack only labels and taints them.

Non-goals: autoscaling, spot pools, zones, Windows; changing an existing pool to a confidential
size (AKS cannot, the pool is replaced).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import containerservice as aks

from spec.model import NodePool, Spec

from ..clouds import ManagedCluster, PoolNodes
from . import common
from .cluster import AksCluster

# Ubuntu is the OS SKU AKS documents for confidential VM pools on every supported Kubernetes
# version (Ubuntu2404 needs 1.32+, AzureLinux a preview flag): learn.microsoft.com/azure/aks/
# use-cvm.
CVM_OS_SKU = "Ubuntu"


def node_taints(nodes: PoolNodes) -> list[str]:
    """AKS writes taints as key=value:Effect (AgentPool nodeTaints)."""
    return [f"{t.key}={t.value}:{t.effect}" for t in nodes.taints]


class AksNodePool(pulumi.ComponentResource):
    """One confidential AKS agent pool carrying the stack's pool labels and taints."""

    def __init__(
        self,
        name: str,
        args: tuple[NodePool, AksCluster, PoolNodes],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:azure:AksNodePool", name, None, opts)
        pool, cluster, nodes = args
        self.agent_pool = aks.AgentPool(
            f"{name}-agentpool",
            resource_group_name=cluster.resource_group_name,
            resource_name_=cluster.cluster_name,
            # spec.rules checks the pool name fits AKS (AKS_POOL_NAME)
            agent_pool_name=pool.name,
            mode="User",
            type="VirtualMachineScaleSets",
            vm_size=pool.instance_type,
            count=pool.count if pool.count is not None else 1,
            os_type="Linux",
            os_sku=CVM_OS_SKU,
            vnet_subnet_id=cluster.node_subnet_id,
            node_labels=dict(sorted(nodes.labels.items())),
            node_taints=node_taints(nodes),
            tags=common.tags(pool.tee),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"agentPool": self.agent_pool.name})


def node_pool(
    name: str,
    spec: Spec,
    pool: NodePool,
    cluster: ManagedCluster,
    nodes: PoolNodes,
    opts: pulumi.ResourceOptions,
) -> AksNodePool:
    if not isinstance(cluster, AksCluster):
        raise TypeError("Azure node pools join an AKS cluster (coco:cluster.provider: aks)")
    return AksNodePool(name, (pool, cluster, nodes), opts)
