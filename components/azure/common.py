"""Names, tags and Azure facts shared by the Azure modules (no resources are created here).

Scope: the resource group and cluster names the spec implies, the `coco-stack-tee` tag the policy
pack recognises, built-in role ids, the subscription the Azure provider deploys into, and the
network plan of clusters the stack creates. Non-goals: anything that registers a resource.
"""

from __future__ import annotations

import re

import pulumi
import pulumi_azure_native as azure

from spec.model import Spec

# The tag the CrossGuard pack recognises TEE resources by (policy/coco_policies.py MARKER_TAG);
# Azure tag names refuse "/", so it is not the Kubernetes label key.
TEE_TAG = "coco-stack-tee"
COMMON_TAGS = {"managed-by": "coco-stack"}

# Built-in role definition ids. Source: learn.microsoft.com/azure/role-based-access-control/
# built-in-roles (Compute: Virtual Machine Contributor; General: Reader; Networking: Network
# Contributor).
VIRTUAL_MACHINE_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"

# Azure Workload Identity: the webhook injects AZURE_CLIENT_ID, AZURE_TENANT_ID and
# AZURE_FEDERATED_TOKEN_FILE into pods carrying this label whose service account carries the
# client-id annotation (azure.github.io/azure-workload-identity/docs/topics/
# service-account-labels-and-annotations.html); the audience is the one AKS documents for
# federated credentials (learn.microsoft.com/azure/aks/workload-identity-deploy-cluster).
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"

# Network plan of clusters the stack creates: one VNet, the AKS nodes in one subnet, pod VMs in
# another (same VNet, so CAA on the nodes reaches the pod VMs' agent-protocol-forwarder and VXLAN
# endpoints directly); pod IPs come from the overlay CIDR and services from the service CIDR,
# neither of which may overlap the VNet (learn.microsoft.com/azure/aks/azure-cni-overlay).
VNET_CIDR = "10.224.0.0/12"
NODE_SUBNET_CIDR = "10.224.0.0/16"
PODVM_SUBNET_CIDR = "10.225.0.0/16"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.0.0.0/16"
DNS_SERVICE_IP = "10.0.0.10"

# AKS agent pool names: lowercase letters and digits, a letter first, at most 12 characters for
# Linux pools (learn.microsoft.com/azure/aks/create-node-pools, "Limitations").
AKS_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
SYSTEM_POOL_NAME = "system"
# A general-purpose size with 4 vCPUs for the system pool (CAA and kata-deploy run there); the
# upstream peer-pods walkthrough uses Standard_F4s_v2 (confidentialcontainers.org
# content/en/docs/examples/azure-simple.md).
SYSTEM_POOL_SIZE = "Standard_D4s_v5"


def cluster_name(spec: Spec) -> str:
    return spec.cluster.name or spec.stack


def resource_group_name(spec: Spec) -> str:
    """The resource group of the cluster and of everything the stack creates for it."""
    return spec.cluster.resource_group or f"{cluster_name(spec)}-rg"


def location(spec: Spec) -> str:
    # spec.rules requires coco:cluster.location for aks
    return spec.cluster.location or ""


def tags(tee: str | None = None) -> dict[str, str]:
    """Tags of a resource; TEE resources carry the marker the policy pack checks."""
    found = dict(COMMON_TAGS)
    if tee is not None:
        found[TEE_TAG] = tee
    return dict(sorted(found.items()))


def subscription_id() -> pulumi.Output[str]:
    """The subscription the azure-native provider deploys into (its own credentials)."""
    config = azure.authorization.get_client_config_output()
    subscription: pulumi.Output[str] = config.subscription_id.apply(lambda s: s or "")
    return subscription


def role_definition_id(subscription: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/", subscription, "/providers/Microsoft.Authorization/roleDefinitions/", role
    )


def named(resource: pulumi.CustomResource, name: pulumi.Input[str]) -> pulumi.Output[str]:
    """The name the stack gave `resource`, as an Output that waits for the resource: dependants
    then need no `.name` output (which only a real provider fills in)."""
    return pulumi.Output.all(resource.id, name).apply(lambda a: str(a[1]))


def alnum(name: str, limit: int) -> str:
    """`name` reduced to lowercase letters and digits (storage account and gallery names)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())[:limit] or "coco"
