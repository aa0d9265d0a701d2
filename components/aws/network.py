"""The VPC of an EKS cluster the stack creates: public and private subnets across zones.

Scope: one VPC (10.0.0.0/16), per zone a public subnet (load balancers, the NAT gateway) and a
private subnet (nodes), an internet gateway, one NAT gateway (in the first public subnet) and the
route tables. Peer-pod VMs get their own private subnet from components.aws.peerpods, routed
through the same NAT gateway so they can pull images.

Non-goals: one NAT gateway per zone (cheaper, but egress of the private subnets stops when the
first zone is down), IPv6, VPC endpoints, attaching to a VPC the user already has (an attached
cluster brings its own, see components.aws.cluster).

Zones: the zones the stack's AWS pools name, then `<region>a`, `<region>b` until there are two.
EKS needs subnets in at least two zones (docs.aws.amazon.com/eks/latest/userguide/
network-reqs.html). Zone letters a and b exist in every commercial region as far as we know
(unverified for opt-in regions; `coco check --live` reports zones that lack the instance type).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from spec.model import Spec

from . import _common

VPC_CIDR = "10.0.0.0/16"
MAX_ZONES = 4
# Fixed, non-overlapping blocks: public /20s from 10.0.0.0, private /19s from 10.0.64.0, and one
# /19 for pod VMs at 10.0.224.0 (8k addresses: one per peer-pod VM).
PODVM_CIDR = "10.0.224.0/19"


def public_cidr(index: int) -> str:
    return f"10.0.{16 * index}.0/20"


def private_cidr(index: int) -> str:
    return f"10.0.{64 + 32 * index}.0/19"


def zones(spec: Spec) -> list[str]:
    """The cluster's zones, in a stable order (pool zones first, then a, b)."""
    region = _common.region(spec)
    found: list[str] = []
    for pool in spec.node_pools:
        if pool.provider == "aws" and pool.zone and pool.zone not in found:
            found.append(pool.zone)
    for letter in "ab":
        if len(found) >= 2:
            break
        if f"{region}{letter}" not in found:
            found.append(f"{region}{letter}")
    return found[:MAX_ZONES]


@dataclass(frozen=True)
class NetworkArgs:
    spec: Spec
    cluster_name: str


class Network(pulumi.ComponentResource):
    """VPC, subnets, gateways and routes for one EKS cluster."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:aws:Network", name, None, opts)
        spec = args.spec
        region = _common.region(spec)
        here = _common.child(self)
        tags = _common.tags(spec)
        # EKS and its load balancer controller find subnets by these tags
        # (docs.aws.amazon.com/eks/latest/userguide/network-load-balancing.html)
        owned = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        self.zones = zones(spec)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=VPC_CIDR,
            enable_dns_hostnames=True,  # EKS nodes need DNS host names
            enable_dns_support=True,
            region=region,
            tags={**tags, "Name": f"{args.cluster_name}-vpc"},
            opts=here,
        )
        self.vpc_cidr = VPC_CIDR
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, region=region, tags=tags, opts=here
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            region=region,
            tags=tags,
            opts=here,
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for i, zone in enumerate(self.zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=public_cidr(i),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                region=region,
                tags={**tags, **owned, "kubernetes.io/role/elb": "1", "Name": f"public-{zone}"},
                opts=here,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                region=region,
                opts=here,
            )
            self.public_subnets.append(public)
        nat_ip = aws.ec2.Eip(f"{name}-nat", domain="vpc", region=region, tags=tags, opts=here)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=nat_ip.id,
            subnet_id=self.public_subnets[0].id,
            region=region,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
        )
        self.private_routes = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            region=region,
            tags=tags,
            opts=here,
        )
        for i, zone in enumerate(self.zones):
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=private_cidr(i),
                availability_zone=zone,
                region=region,
                tags={
                    **tags,
                    **owned,
                    "kubernetes.io/role/internal-elb": "1",
                    "Name": f"private-{zone}",
                },
                opts=here,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}",
                subnet_id=private.id,
                route_table_id=self.private_routes.id,
                region=region,
                opts=here,
            )
            self.private_subnets.append(private)
        self.register_outputs({"vpcId": self.vpc.id})
