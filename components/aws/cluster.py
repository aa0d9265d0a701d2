"""The stack's EKS cluster: created (VPC, cluster, OIDC provider for IRSA, system node group,
EBS CSI driver and a default StorageClass) or attached (coco:cluster.attach) by name.

What the rest of the AWS package needs is kept on the component: the cluster name, the OIDC
provider and issuer (IRSA roles for cloud-api-adaptor), the VPC and the node subnets (pools and
pod VMs), the cluster security group (the managed nodes' own: pod VMs' VXLAN must be let in),
and the node role (nodes-mode pools). The kubeconfig authenticates with
`aws eks get-token` (the AWS CLI on the machine running Pulumi, with the credentials Pulumi
uses); it is a Pulumi secret.

Non-goals: Fargate, EKS Auto Mode, private-only API endpoints, Pod Identity (IRSA is used; it
works on attached clusters without an add-on), Karpenter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from spec.labels import PART_OF
from spec.model import Spec

from .. import clouds
from . import _common, iam, userdata
from .network import Network, NetworkArgs

# AL2023 is the EKS-optimized AMI family from Kubernetes 1.30 on
# (docs.aws.amazon.com/eks/latest/userguide/eks-optimized-ami.html); x86_64 for SNP and for the
# system pool alike.
AMI_TYPE = "AL2023_x86_64_STANDARD"
# System pool default: CAA, peerpod-ctrl, cert-manager, the KBS and kata-deploy's remote shim
# fit on two 2-vCPU/8-GiB nodes; m6a is offered wherever SEV-SNP is.
SYSTEM_INSTANCE_TYPE = "m6a.large"
EBS_CSI_SERVICE_ACCOUNT = ("kube-system", "ebs-csi-controller-sa")  # the add-on's own SA


def kubeconfig(name: str, endpoint: str | None, ca_data: str | None, region: str) -> str:
    """A kubeconfig that gets a token from `aws eks get-token` on each use."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": [
                "eks",
                "get-token",
                "--cluster-name",
                name,
                "--region",
                region,
                "--output",
                "json",
            ],
            "interactiveMode": "Never",
        }
    }
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": endpoint or "", "certificate-authority-data": ca_data or ""},
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return yaml.safe_dump(doc, sort_keys=True)


class EksCluster(pulumi.ComponentResource):
    """An EKS cluster, created or attached, and what the stack needs to build on it."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    outputs: Mapping[str, pulumi.Input[Any]]
    eks: aws.eks.Cluster | None  # None when attached
    system_pool: aws.eks.NodeGroup | None

    def __init__(self, name: str, args: Spec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:aws:EksCluster", name, None, opts)
        spec = args
        self.spec = spec
        self.region = _common.region(spec)
        self.cluster_name = _common.cluster_name(spec)
        self.network: Network | None = None
        if spec.cluster.attach:
            self._attach()
        else:
            self._create(name)
        here = _common.child(self)
        # the node role of nodes-mode pools (managed node groups add it to the cluster's access
        # entries themselves: docs.aws.amazon.com/eks/latest/userguide/create-node-role.html)
        self.node_role, self.node_role_policies = _role(
            f"{name}-nodes", spec, "ec2.amazonaws.com", iam.NODE_POLICIES, here
        )
        # in-cluster resources wait for the system nodes too (charts need somewhere to run)
        nodes_ready = self.system_pool.id if self.system_pool is not None else ""
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.endpoint, self.ca_data, nodes_ready).apply(
                lambda v: kubeconfig(self.cluster_name, v[0], v[1], self.region)
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )
        if not spec.cluster.attach:
            self._storage(name)
        self.outputs = {
            "provider": "eks",
            "name": self.cluster_name,
            "region": self.region,
            "endpoint": self.endpoint,
            "oidcIssuer": self.oidc_issuer,
            "vpcId": self.vpc_id,
        }
        self.register_outputs({"outputs": self.outputs})

    def _create(self, name: str) -> None:
        spec = self.spec
        here = _common.child(self)
        self.network = Network(f"{name}-network", NetworkArgs(spec, self.cluster_name), here)
        role, attached = _role(
            f"{name}-cluster", spec, "eks.amazonaws.com", iam.CLUSTER_POLICIES, here
        )
        subnets = [s.id for s in self.network.private_subnets + self.network.public_subnets]
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=self.cluster_name,
            role_arn=role.arn,
            version=spec.cluster.kubernetes_version,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=subnets, endpoint_private_access=True, endpoint_public_access=True
            ),
            # access entries; whoever runs `pulumi up` becomes cluster admin
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True
            ),
            region=self.region,
            tags=_common.tags(spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=attached),
        )
        self.eks = cluster
        self.endpoint: pulumi.Output[str] = cluster.endpoint
        self.ca_data: pulumi.Output[str] = cluster.certificate_authority.apply(_ca_data)
        issuer = cluster.identities.apply(_issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=[iam.IRSA_AUDIENCE],
            tags=_common.tags(spec),
            opts=here,
        )
        self.oidc_issuer: pulumi.Output[str] = issuer
        self.oidc_provider_arn: pulumi.Output[str] = oidc.arn
        self.vpc_id: pulumi.Output[str] = self.network.vpc.id
        self.cluster_security_group_id: pulumi.Output[str] = cluster.vpc_config.apply(
            _cluster_security_group
        )
        self.vpc_cidr: pulumi.Input[str] = self.network.vpc_cidr
        self.node_subnet_ids: pulumi.Output[list[str]] = pulumi.Output.all(
            *[s.id for s in self.network.private_subnets]
        )
        self.subnets_by_zone = {
            zone: subnet.id
            for zone, subnet in zip(self.network.zones, self.network.private_subnets, strict=True)
        }
        node_role, attached = _role(
            f"{name}-system", spec, "ec2.amazonaws.com", iam.NODE_POLICIES, here
        )
        system = spec.cluster.system_pool
        count = system.count if system else 2
        # always, not only with peer-pods pools: the empty worker label needs a launch
        # template, and EKS updates a node group's launch template only if the group was
        # created with one (docs.aws.amazon.com/eks/latest/APIReference/
        # API_UpdateNodegroupVersion.html, launchTemplate), so adding it later would replace the
        # fixed-name "system" group, which fails on the name
        api_labels, kubelet_labels = userdata.split(clouds.system_pool_labels())
        template = None
        if kubelet_labels:
            template = aws.ec2.LaunchTemplate(
                f"{name}-system",
                description=f"coco-stack {spec.stack}: system nodes (kubelet labels, IMDSv2)",
                user_data=userdata.node_labels(kubelet_labels),
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2
                ),
                update_default_version=True,
                region=self.region,
                tags=_common.tags(spec),
                opts=here,
            )
        self.system_pool = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster.name,
            node_group_name="system",
            node_role_arn=node_role.arn,
            subnet_ids=self.node_subnet_ids,
            instance_types=[(system.instance_type if system else None) or SYSTEM_INSTANCE_TYPE],
            ami_type=AMI_TYPE,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=count, min_size=count, max_size=count
            ),
            labels=api_labels,
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(template_version)
            )
            if template is not None
            else None,
            region=self.region,
            tags=_common.tags(spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=attached),
        )

    def _attach(self) -> None:
        found = aws.eks.get_cluster_output(name=self.cluster_name, region=self.region)
        self.eks = None
        self.system_pool = None
        # read field by field, None-safe: a data source without a value must not crash
        self.endpoint = found.apply(lambda c: c.endpoint or "")
        self.ca_data = found.apply(
            lambda c: _ca_data(c.certificate_authorities[0] if c.certificate_authorities else None)
        )
        self.oidc_issuer = found.apply(lambda c: _issuer(c.identities))
        # an attached cluster must already have its IAM OIDC provider (one per issuer per
        # account): eksctl utils associate-iam-oidc-provider --cluster NAME --approve
        self.oidc_provider_arn = aws.iam.get_open_id_connect_provider_output(
            url=self.oidc_issuer
        ).apply(lambda p: p.arn or "")
        self.vpc_id = found.apply(lambda c: c.vpc_config.vpc_id if c.vpc_config else "")
        self.cluster_security_group_id = found.apply(
            lambda c: _cluster_security_group(c.vpc_config)
        )
        self.vpc_cidr = aws.ec2.get_vpc_output(id=self.vpc_id, region=self.region).apply(
            lambda v: v.cidr_block or ""
        )
        self.node_subnet_ids = found.apply(
            lambda c: sorted(c.vpc_config.subnet_ids or []) if c.vpc_config else []
        )
        self.subnets_by_zone = {}

    def _storage(self, name: str) -> None:
        """The KBS keeps its state on a PersistentVolumeClaim: EKS needs the EBS CSI driver
        for that, and has no default StorageClass from Kubernetes 1.30 on
        (docs.aws.amazon.com/eks/latest/userguide/ebs-csi.html; the gp2 class is no longer
        annotated as default, unverified for every platform version)."""
        assert self.eks is not None and self.system_pool is not None
        here = _common.child(self)
        subject = iam.service_account(*EBS_CSI_SERVICE_ACCOUNT)
        role, attached = _role(
            f"{name}-ebs-csi",
            self.spec,
            pulumi.Output.all(self.oidc_provider_arn, self.oidc_issuer).apply(
                lambda v: iam.irsa_trust(v[0], v[1], [subject])
            ),
            (iam.EBS_CSI_POLICY,),
            here,
        )
        addon = aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=self.eks.name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=role.arn,
            region=self.region,
            tags=_common.tags(self.spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_pool, *attached]),
        )
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="gp3",
                labels=PART_OF,
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            reclaim_policy="Retain",  # KBS state outlives a mistaken delete
            allow_volume_expansion=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[addon]),
        )


def _issuer(identities: Any) -> str:
    """identities[0].oidcs[0].issuer of an EKS cluster (resource output or data source)."""
    try:
        first = identities[0]
        oidcs = first["oidcs"] if isinstance(first, dict) else first.oidcs
        issuer = oidcs[0]["issuer"] if isinstance(oidcs[0], dict) else oidcs[0].issuer
    except (IndexError, KeyError, TypeError, AttributeError):
        return ""  # not known (yet): only under mocks
    return str(issuer or "")


def _cluster_security_group(vpc_config: Any) -> str:
    """vpc_config.cluster_security_group_id, the group EKS creates and puts on the managed
    nodes (docs.aws.amazon.com/eks/latest/userguide/sec-group-reqs.html); resource output
    (dict) or data source."""
    found = getattr(vpc_config, "cluster_security_group_id", None)
    if found is None and isinstance(vpc_config, dict):
        found = vpc_config.get("cluster_security_group_id")
    return str(found or "")


def template_version(value: Any) -> str:
    """A launch template's latest_version as a node group wants it (absent under mocks)."""
    return str(int(value)) if isinstance(value, int | float) else "$Latest"


def _ca_data(ca: Any) -> str:
    """certificate_authority(.ies[0]).data, as a resource output (dict) or data source."""
    if isinstance(ca, dict):
        return str(ca.get("data") or "")
    return str(getattr(ca, "data", None) or "")


def _role(
    name: str,
    spec: Spec,
    trust: str | pulumi.Output[str],
    policies: tuple[str, ...],
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """A role trusted by an AWS service (a service name) or by a trust policy document, with
    AWS managed policies attached; returns the attachments for depends_on."""
    document = _common.assume_role(trust) if isinstance(trust, str) and "{" not in trust else trust
    role = aws.iam.Role(name, assume_role_policy=document, tags=_common.tags(spec), opts=opts)
    attached: list[pulumi.Resource] = [
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy.rsplit('/', 1)[-1]}",
            role=role.name,
            policy_arn=iam.managed_policy_arn(policy),
            opts=opts,
        )
        for policy in policies
    ]
    return role, attached


def cluster(name: str, spec: Spec, opts: pulumi.ResourceOptions) -> EksCluster:
    return EksCluster(name, spec, opts)
