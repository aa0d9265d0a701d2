"""Peer-pod infrastructure on AWS: where cloud-api-adaptor (CAA) starts SEV-SNP pod VMs.

Creates a private subnet for pod VMs (in the stack's VPC, routed through its NAT gateway so
pods can pull images), a security group that lets the worker nodes reach the pod VMs, a rule on
the EKS cluster security group that lets the pod VMs' VXLAN reach the nodes, the pod-VM launch
template with SEV-SNP enabled, and the IAM role CAA and peerpod-ctrl assume through IRSA: no
access keys.

On an attached cluster, pod VMs go into `coco:nodePools[].podVmSubnet`; without it, into the first
of the cluster's subnets sorted by id, with no public IP, and the stack warns: that subnet must be
private with a route to a NAT gateway (docs/aws.md, "Attached clusters").

Facts, cloud-api-adaptor v0.22.0:
- src/cloud-providers/aws/manager.go: the keys (PODVM_AMI_ID required; AWS_REGION,
  AWS_SUBNET_ID, AWS_SG_IDS, PODVM_INSTANCE_TYPE(S), PODVM_LAUNCHTEMPLATE_NAME,
  USE_PODVM_LAUNCHTEMPLATE, USE_PUBLIC_IP, DISABLECVM, TAGS).
- src/cloud-providers/aws/provider.go CreateInstance: with USE_PODVM_LAUNCHTEMPLATE=true,
  RunInstances names only the template (plus user data and tags), so SEV-SNP, AMI, instance type,
  subnet and security group all come from the template; without it CAA itself adds
  CpuOptions.AmdSevSnp=enabled unless DISABLECVM. The template makes SNP a property of a
  resource the policy pack can check. Its price: one instance type for every pod VM (the
  template's), so spec.rules allows one instanceType across AWS peer-pods pools.
- src/cloud-providers/aws/ec2.go: without access keys CAA uses the default credential chain,
  which supports IRSA.
- pkg/forwarder/forwarder.go (agent-protocol-forwarder, TCP 15150) and
  pkg/podnetwork/tunneler/vxlan/workernode.go (VXLAN, UDP 4789): what the worker nodes reach on
  pod VMs; pkg/podnetwork/tunneler/vxlan/podnode.go: the pod VM's VXLAN device has the worker
  node as its remote, so pod VMs send UDP 4789 to the node too (these three under
  src/cloud-api-adaptor/).
- EKS managed nodes carry the cluster security group, whose default inbound rule admits only
  its own members (docs.aws.amazon.com/eks/latest/userguide/sec-group-reqs.html).
- Service accounts: cloud-api-adaptor (install/charts/peerpods/templates/rbac.yaml) and
  peerpodctrl-controller-manager (src/peerpod-ctrl/chart values.yaml namePrefix +
  templates/permissions.yaml), both in confidential-containers-system; components.peerpods puts
  the same role annotation on both (it deletes leftover pod VMs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from spec import versions
from spec.model import NodePool, Spec

from ..peerpods import CloudPeerPods
from . import _common, iam, network
from .cluster import EksCluster

FORWARDER_PORT = 15150
VXLAN_PORT = 4789
SERVICE_ACCOUNTS = (
    (versions.PEERPODS_NAMESPACE, "cloud-api-adaptor"),
    (versions.PEERPODS_NAMESPACE, "peerpodctrl-controller-manager"),
)
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# resource types the pod-VM launch template tags; the IAM policy lets CAA tag exactly these
TAGGED_AT_LAUNCH = ("instance", "volume")
ATTACHED_SUBNET_WARNING = (
    "coco:cluster.attach: pod VMs go into the first of the cluster's subnets sorted by id, "
    "without a public IP; that subnet must be private with a route to a NAT gateway, or pod VMs "
    "cannot pull images or reach the KBS (docs/aws.md, Attached clusters); name one with "
    "coco:nodePools[].podVmSubnet"
)


class AwsPeerPods(pulumi.ComponentResource):
    """Subnet, security group, launch template and IRSA role for SEV-SNP pod VMs."""

    def __init__(
        self,
        name: str,
        spec: Spec,
        pools: Sequence[NodePool],
        cluster: EksCluster,
        image_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:aws:PeerPods", name, None, opts)
        here = _common.child(self)
        first = pools[0]
        tee = first.tee
        region = first.region or cluster.region
        tags = _common.tags(spec)
        # 1. network: the pod-VM subnet and who may reach the pod VMs
        if cluster.network is not None:
            zone = first.zone or cluster.network.zones[0]
            subnet = aws.ec2.Subnet(
                f"{name}-subnet",
                vpc_id=cluster.vpc_id,
                cidr_block=network.PODVM_CIDR,
                availability_zone=zone,
                region=region,
                tags={**tags, "Name": f"{cluster.cluster_name}-podvms"},
                opts=here,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-subnet",
                subnet_id=subnet.id,
                route_table_id=cluster.network.private_routes.id,
                region=region,
                opts=here,
            )
            subnet_id: pulumi.Output[str] = subnet.id
            subnet_arn: pulumi.Output[str] = subnet.arn
        else:
            given = next((p.pod_vm_subnet for p in pools if p.pod_vm_subnet), None)
            if given is not None:  # coco:nodePools[].podVmSubnet (one per stack: rules)
                subnet_id = pulumi.Output.from_input(given)
            else:
                pulumi.log.warn(ATTACHED_SUBNET_WARNING)
                subnet_id = cluster.node_subnet_ids.apply(lambda ids: ids[0] if ids else "")
            subnet_arn = subnet_id.apply(
                lambda sid: f"arn:{_common.PARTITION}:ec2:{region}:*:subnet/{sid}"
            )
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description="coco-stack pod VMs: reached by the cluster's nodes only",
            vpc_id=cluster.vpc_id,
            region=region,
            tags={**tags, "Name": f"{cluster.cluster_name}-podvms"},
            opts=here,
        )
        for proto, port, what in (
            ("tcp", FORWARDER_PORT, "agent-protocol-forwarder"),
            ("udp", VXLAN_PORT, "VXLAN pod network"),
        ):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-sg-{proto}-{port}",
                security_group_id=group.id,
                ip_protocol=proto,
                from_port=port,
                to_port=port,
                cidr_ipv4=cluster.vpc_cidr,
                description=f"{what} from the cluster's VPC",
                region=region,
                opts=here,
            )
        # the pod VMs' VXLAN to the nodes: EKS managed nodes carry the cluster security group
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nodes-udp-{VXLAN_PORT}",
            security_group_id=cluster.cluster_security_group_id,
            ip_protocol="udp",
            from_port=VXLAN_PORT,
            to_port=VXLAN_PORT,
            referenced_security_group_id=group.id,
            description="VXLAN pod network from coco-stack pod VMs",
            region=region,
            opts=here,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-sg-egress",
            security_group_id=group.id,
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            description="image pulls, the KBS and the worker nodes",
            region=region,
            opts=here,
        )
        # 2. the pod-VM launch template: SEV-SNP, the published AMI, IMDSv2, tagged volumes
        vm_tags = _common.tags(spec, tee)
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-template",
            name=f"{cluster.cluster_name}-podvm",
            description=f"coco-stack {spec.stack}: SEV-SNP pod VMs",
            image_id=image_id,
            instance_type=first.instance_type,
            cpu_options=aws.ec2.LaunchTemplateCpuOptionsArgs(amd_sev_snp="enabled"),
            network_interfaces=[
                aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                    device_index=0,
                    subnet_id=subnet_id,
                    security_groups=[group.id],
                    associate_public_ip_address="false",
                    delete_on_termination="true",
                )
            ],
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required"
            ),
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=vm_tags)
                for kind in TAGGED_AT_LAUNCH
            ],
            update_default_version=True,
            region=region,
            tags=vm_tags,
            opts=here,
        )
        # 3. identity: IRSA for exactly the two service accounts, least-privilege EC2
        subjects = [iam.service_account(ns, sa) for ns, sa in SERVICE_ACCOUNTS]
        self.role = aws.iam.Role(
            f"{name}-caa",
            description="cloud-api-adaptor and peerpod-ctrl: start and stop SEV-SNP pod VMs",
            assume_role_policy=pulumi.Output.all(
                cluster.oidc_provider_arn, cluster.oidc_issuer
            ).apply(lambda v: iam.irsa_trust(v[0], v[1], subjects)),
            tags=tags,
            opts=here,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-caa",
            role=self.role.name,
            policy=pulumi.Output.all(
                image_id, subnet_arn, group.arn, self.launch_template.arn
            ).apply(
                lambda v: iam.peer_pods_policy(
                    region=region,
                    stack=spec.stack,
                    image_id=v[0] or "",
                    subnet_arn=v[1] or "",
                    security_group_arn=v[2] or "",
                    launch_template_arn=v[3] or "",
                    tagged_at_launch=TAGGED_AT_LAUNCH,
                )
            ),
            opts=here,
        )
        # 4. what CAA is told (components.peerpods.provider_config adds AWS_REGION and the
        #    instance types from the spec)
        ids: dict[str, pulumi.Input[str]] = {
            "PODVM_AMI_ID": image_id,
            "AWS_SUBNET_ID": subnet_id,
            "AWS_SG_IDS": group.id,
            "PODVM_LAUNCHTEMPLATE_NAME": self.launch_template.name,
            "USE_PODVM_LAUNCHTEMPLATE": "true",
            "DISABLECVM": "false",
            "USE_PUBLIC_IP": "false",
            # instance tags CAA adds at RunInstances: the IAM policy only lets it launch and
            # terminate instances tagged with the stack
            "TAGS": ",".join(f"{k}={v}" for k, v in vm_tags.items()),
        }
        self.cloud = CloudPeerPods(
            "aws",
            dict(sorted(ids.items())),
            service_account_annotations={ROLE_ANNOTATION: self.role.arn},
        )
        self.register_outputs({"launchTemplate": self.launch_template.name})


def peer_pods(
    name: str,
    spec: Spec,
    pools: Sequence[NodePool],
    cluster: Any,
    image_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> CloudPeerPods:
    if not isinstance(cluster, EksCluster):
        raise TypeError("aws peer pods need the stack's EKS cluster (coco:cluster.provider eks)")
    return AwsPeerPods(name, spec, pools, cluster, image_id, opts).cloud
