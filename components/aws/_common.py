"""Shared pieces of the AWS package: tags, names and IAM policy documents.

Every TEE resource carries the `coco-stack-tee` tag (the CrossGuard pack, policy/coco_policies.py
MARKER_TAG, finds confidential resources by it); every resource carries `coco-stack: <stack>` so
an account's resources can be traced to the stack, and the peer-pod IAM policy can scope
TerminateInstances to pod VMs of this stack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from spec.model import Spec

TEE_TAG = "coco-stack-tee"  # policy/coco_policies.py MARKER_TAG
STACK_TAG = "coco-stack"
# Only the commercial partition: GovCloud (aws-us-gov) and China (aws-cn) ARNs are a non-goal.
PARTITION = "aws"


def tags(spec: Spec, tee: str | None = None, **extra: str) -> dict[str, str]:
    found = {STACK_TAG: spec.stack, **extra}
    if tee is not None:
        found[TEE_TAG] = tee
    return dict(sorted(found.items()))


def cluster_name(spec: Spec) -> str:
    return spec.cluster.name or spec.stack


def region(spec: Spec) -> str:
    """The stack's AWS region: the EKS cluster's (spec.rules requires it for eks)."""
    if spec.cluster.region is None:  # spec.rules refuses eks without a region
        raise ValueError("coco:cluster.region is required for eks")
    return spec.cluster.region


def document(statements: Sequence[Mapping[str, Any]]) -> str:
    """An IAM policy document, key-sorted so the same statements give the same bytes."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def assume_role(service: str) -> str:
    """Trust policy letting one AWS service assume a role."""
    return document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    )


def child(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent)
