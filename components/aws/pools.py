"""Nodes-mode pools on EKS: a managed node group of SEV-SNP worker nodes.

SEV-SNP can only be chosen at launch (docs.aws.amazon.com/AWSEC2/latest/UserGuide/
snp-work-launch.html), so the node group launches from a launch template with
`cpu_options.amd_sev_snp = "enabled"`. EKS refuses launch templates that set SubnetId,
IamInstanceProfile, RequestSpotInstances, HibernationOptions or TerminateInstances
(docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/
aws-properties-eks-nodegroup-launchtemplatespecification.html); CpuOptions is not on that list.
The AMI is EKS's AL2023 x86_64 image (ami_type, not the template's image_id, so EKS keeps its
bootstrap user data); SNP needs a UEFI or uefi-preferred AMI (docs.aws.amazon.com/AWSEC2/latest/
UserGuide/sev-snp.html#snp-requirements) and AL2023 AMIs are uefi-preferred on x86_64
(docs.aws.amazon.com/linux/al2023/ug/uefi-secure-boot.html; for the EKS-optimized AL2023 AMI
unverified: `coco check --live` does not check it, a node that fails to launch shows in the node
group's health issues).

Non-goals: custom node AMIs, spot capacity, per-pool subnets outside the stack's VPC.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from spec.model import NodePool, Spec

from ..clouds import PoolNodes
from . import _common, userdata
from .cluster import AMI_TYPE, EksCluster, template_version

# Kubernetes taint effects as EKS spells them (eks NodeGroup taints[].effect).
EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}


class SnpNodeGroup(pulumi.ComponentResource):
    """One nodes-mode pool: an SNP launch template and the managed node group using it."""

    def __init__(
        self,
        name: str,
        spec: Spec,
        pool: NodePool,
        cluster: EksCluster,
        nodes: PoolNodes,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:aws:SnpNodeGroup", name, None, opts)
        here = _common.child(self)
        region = pool.region or cluster.region
        tags = _common.tags(spec, pool.tee, **{"coco-stack-pool": pool.name})
        api_labels, kubelet_labels = userdata.split(nodes.labels)
        tagged = [
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
            for kind in ("instance", "volume")
        ]
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-template",
            description=f"coco-stack {spec.stack}: SEV-SNP nodes of pool {pool.name}",
            cpu_options=aws.ec2.LaunchTemplateCpuOptionsArgs(amd_sev_snp="enabled"),
            # IMDSv2 only; hop limit 2 so pods on the node can still reach it (EKS default)
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2
            ),
            tag_specifications=tagged,
            user_data=userdata.node_labels(kubelet_labels),
            update_default_version=True,
            region=region,
            tags=tags,
            opts=here,
        )
        subnets: pulumi.Input[list[str]] = cluster.node_subnet_ids
        if pool.zone and pool.zone in cluster.subnets_by_zone:
            subnets = pulumi.Output.all(cluster.subnets_by_zone[pool.zone])
        count = pool.count if pool.count is not None else 1
        self.node_group = aws.eks.NodeGroup(
            f"{name}-group",
            cluster_name=cluster.cluster_name,
            node_group_name=pool.name,
            node_role_arn=cluster.node_role.arn,
            subnet_ids=subnets,
            instance_types=[pool.instance_type or ""],
            ami_type=AMI_TYPE,
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id,
                version=self.launch_template.latest_version.apply(template_version),
            ),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=count, min_size=count, max_size=max(count, 1)
            ),
            labels=api_labels,
            taints=[
                aws.eks.NodeGroupTaintArgs(
                    key=t.key, value=t.value or None, effect=EFFECTS[t.effect]
                )
                for t in nodes.taints
            ],
            region=region,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*cluster.node_role_policies, *_dependencies(cluster)],
            ),
        )
        self.register_outputs({"nodeGroup": self.node_group.node_group_name})


def _dependencies(cluster: EksCluster) -> list[pulumi.Resource]:
    return [r for r in (cluster.eks, cluster.system_pool) if r is not None]


def node_pool(
    name: str,
    spec: Spec,
    pool: NodePool,
    cluster: Any,
    nodes: PoolNodes,
    opts: pulumi.ResourceOptions,
) -> SnpNodeGroup:
    if not isinstance(cluster, EksCluster):
        raise TypeError("aws node pools need the stack's EKS cluster (coco:cluster.provider eks)")
    return SnpNodeGroup(name, spec, pool, cluster, nodes, opts)
