"""IBM Cloud peer pods: Secure Execution pod VMs (bz2e profiles) in a VPC the user already has.

Scope: turn the `ibmcloud` keys of the stack's ibmcloud peer-pods pools into the
`CloudPeerPods` that `components.peerpods` renders into peer-pods-cm, with the API key only as a
credential (the stack-owned Secret peer-pods-secret, never a ConfigMap key or a Helm value).

Non-goals: creating the VPC, subnet, security groups or the IKS/ROKS cluster; building,
encrypting or uploading the SE pod-VM image (s390x only: docs/secure-execution.md); IAM trusted
profiles (IBMCLOUD_IAM_PROFILE_ID) instead of an API key. No IBM Cloud Pulumi provider is part of
this project, so nothing here registers a cloud resource.

Facts: cloud-api-adaptor v0.22.0, src/cloud-providers/ibmcloud/manager.go (the environment keys)
and provider.go:
- VPC, subnet, zone and resource group are filled in automatically only on IKS nodes (node label
  ibm-provider.kubernetes.io/subnet-id); the stack always sets them.
- The provider needs the IKS/ROKS cluster id (IBMCLOUD_CLUSTER_ID, else read from ConfigMap
  kube-system/cluster-info) to find the cluster's security group "kube-<id>" and fails to start
  without it: the cluster must be an IBM Cloud Kubernetes Service or Red Hat OpenShift on IBM
  Cloud cluster.
- The VPC endpoint defaults to the node's region label; the stack sets
  IBMCLOUD_VPC_ENDPOINT = https://<region>.iaas.cloud.ibm.com/v1 from the pool's region (the URL
  form of test/provisioner/ibmcloud/provision_initializer.go@v0.22.0).
- Secure Execution comes from the SE-encrypted image on a bz2e profile (test/e2e/README.md: "If
  it's secure execution, the value is started with 'bz2e'"); DISABLECVM=false would instead ask
  the VPC API for confidential_compute_mode tdx with secure boot (provider.go
  getInstancePrototype), an x86 mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pulumi

from spec.model import NodePool

from .peerpods import CloudPeerPods

PROVIDER = "ibmcloud"


def vpc_endpoint(region: str) -> str:
    return f"https://{region}.iaas.cloud.ibm.com/v1"


def _secret(value: Any) -> pulumi.Output[Any]:
    """Output.secret, typed (the SDK's signature defeats mypy)."""
    return cast(pulumi.Output[Any], cast(Any, pulumi.Output).secret(value))


def peer_pods(pools: Sequence[NodePool]) -> CloudPeerPods:
    """The ids and the credential of the stack's ibmcloud peer-pods pools. spec.rules
    guarantees every pool has the same `ibmcloud` keys, a region and a zone; CAA serves one
    VPC configuration per cluster."""
    first = pools[0]
    ibm = first.ibmcloud
    if ibm is None or first.region is None:
        raise ValueError(f"pool {first.name!r} has no ibmcloud keys or region (rules let it pass)")
    ids: dict[str, pulumi.Input[str]] = {
        "IBMCLOUD_PODVM_IMAGE_ID": ibm.image_id,
        "IBMCLOUD_RESOURCE_GROUP_ID": ibm.resource_group_id,
        "IBMCLOUD_VPC_ENDPOINT": vpc_endpoint(first.region),
        "IBMCLOUD_VPC_ID": ibm.vpc_id,
        "IBMCLOUD_VPC_SUBNET_ID": ibm.subnet_id,
    }
    if ibm.security_group_id is not None:
        ids["IBMCLOUD_SECURITY_GROUP_IDS"] = ibm.security_group_id
    if ibm.cluster_id is not None:
        ids["IBMCLOUD_CLUSTER_ID"] = ibm.cluster_id
    return CloudPeerPods(
        provider=PROVIDER,
        ids=dict(sorted(ids.items())),
        credentials={"IBMCLOUD_API_KEY": _secret(ibm.api_key.get_secret_value())},
    )
