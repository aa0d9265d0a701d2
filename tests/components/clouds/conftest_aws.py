"""Shared AWS test fixtures: the state a real AWS provider would compute for the resources and
data sources components.aws reads (ids, ARNs, the EKS endpoint and OIDC issuer), so the
stack's real program runs under mocks with provider-computed values.

Shapes follow pulumi_aws 7.51 output property names (camelCase on the wire): eks Cluster
`endpoint`, `certificateAuthority.data`, `identities[].oidcs[].issuer`; every resource's `arn`;
LaunchTemplate `latestVersion`; s3 Bucket `bucket`. The invoke results follow
pulumi_aws.eks.get_cluster / iam.get_open_id_connect_provider / ec2.get_vpc result fields.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

ACCOUNT = "111122223333"
REGION = "eu-west-1"
ENDPOINT = "https://0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com"
CA_DATA = "Q0EtREFUQS1TSE9VTEQtU1RBWS1JTlNJREUtVEhFLUtVQkVDT05GSUc="
ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER.removeprefix('https://')}"
BUCKET = "aws-snp-podvm-20261127"
MEASURED = {
    "artifacts": {"disk.raw": {"sha256": "d" * 64, "size": 1}},
    "dm_verity": {"root_hash": "r" * 64},
    "reference_values": {"snp_launch_measurement": ["m" * 96]},
}
ATTACHED = {
    "name": "prod",
    "endpoint": ENDPOINT,
    "certificateAuthorities": [{"data": CA_DATA}],
    "identities": [{"oidcs": [{"issuer": ISSUER}]}],
    "vpcConfig": {
        "vpcId": "vpc-0attached",
        "subnetIds": ["subnet-0b", "subnet-0a"],
        "clusterSecurityGroupId": "sg-0cluster",
        "securityGroupIds": [],
        "endpointPrivateAccess": True,
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["0.0.0.0/0"],
    },
}


def arn(kind: str, inputs: dict[str, Any]) -> str:
    return f"arn:aws:ec2:{inputs.get('region', REGION)}:{ACCOUNT}:{kind}/{kind}-0example"


def aws_outputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """Provider-computed state per resource type; None: inputs echoed back."""
    if typ == "aws:eks/cluster:Cluster":
        return {
            **inputs,
            "endpoint": ENDPOINT,
            "certificateAuthority": {"data": CA_DATA},
            "identities": [{"oidcs": [{"issuer": ISSUER}]}],
        }
    if typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        return {**inputs, "arn": OIDC_ARN}
    if typ == "aws:iam/role:Role":
        digest = hashlib.sha256(str(inputs.get("assumeRolePolicy", "")).encode()).hexdigest()
        return {
            **inputs,
            "arn": f"arn:aws:iam::{ACCOUNT}:role/role-{digest[:8]}",
            "name": f"role-{digest[:8]}",
        }
    if typ == "aws:ec2/subnet:Subnet":
        return {**inputs, "arn": arn("subnet", inputs)}
    if typ == "aws:ec2/securityGroup:SecurityGroup":
        return {**inputs, "arn": arn("security-group", inputs)}
    if typ == "aws:ec2/launchTemplate:LaunchTemplate":
        return {**inputs, "arn": arn("launch-template", inputs), "latestVersion": 3}
    if typ == "aws:s3/bucket:Bucket":
        return {**inputs, "bucket": BUCKET}
    if typ == "command:local:Command":
        return {**inputs, "stdout": json.dumps(MEASURED)}
    return None


def aws_calls(token: str, args: dict[str, Any]) -> dict[str, Any]:
    """Data-source results (invokes) for an attached cluster."""
    if token == "aws:eks/getCluster:getCluster":
        return {**ATTACHED, "name": args.get("name")}
    if token == "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider":
        return {
            "arn": OIDC_ARN,
            "url": args.get("url"),
            "clientIdLists": ["sts.amazonaws.com"],
            "thumbprintLists": [],
            "tags": {},
        }
    if token == "aws:ec2/getVpc:getVpc":
        return {"id": args.get("id"), "cidrBlock": "172.31.0.0/16"}
    return {}


class _AwsMocks:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        state = aws_outputs(args.typ, dict(args.inputs))
        if state is None:
            return self.inner.new_resource(args)  # type: ignore[no-any-return]
        return f"{args.name}-id", state

    def call(self, args: Any) -> dict[str, Any]:
        self.calls.append(args.token)
        return aws_calls(args.token, dict(args.args))


def install_aws_mocks(monkeypatch: pytest.MonkeyPatch) -> list[_AwsMocks]:
    """Every later render gets AWS provider outputs and data-source results; returns the mocks
    (their `calls` record the invoke tokens)."""
    import pulumi.runtime.mocks as mocks

    original = mocks.set_mocks
    made: list[_AwsMocks] = []

    def set_mocks(the_mocks: Any, *a: Any, **kw: Any) -> None:
        wrapped = _AwsMocks(the_mocks)
        made.append(wrapped)
        if kw.get("monitor") is not None:
            kw["monitor"].mocks = wrapped
        original(wrapped, *a, **kw)

    monkeypatch.setattr(mocks, "set_mocks", set_mocks)
    return made
