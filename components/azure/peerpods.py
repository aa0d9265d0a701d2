"""Peer-pod infrastructure on Azure: the pod-VM subnet, its network security group and NAT
gateway, and the workload identity cloud-api-adaptor (CAA) uses to create pod VMs.

CAA authenticates with Azure Workload Identity when no client secret is configured
(cloud-api-adaptor src/cloud-providers/azure/client.go@v0.22.0), so no credential exists
anywhere: a user-assigned managed identity trusts the cluster's OIDC issuer for exactly the two
service accounts that call Azure (federated credentials), and the chart labels their pods and
annotates their service accounts (components.peerpods.chart_values). The webhook then injects
AZURE_CLIENT_ID and AZURE_TENANT_ID, which CAA's entrypoint.sh requires; neither is a
peer-pods-cm key.

Roles, each for one thing CAA v0.22.0 does (src/cloud-providers/azure/provider.go):
- Virtual Machine Contributor on the resource group: create and delete pod VMs with their NICs
  and OS disks, join the pod-VM subnet and NSG (both in that group when the stack made the
  VNet), list VM sizes, poll operations;
- Reader on the pod-VM image version: boot VMs from it (not needed for community gallery ids);
- Network Contributor on the attached cluster's node subnet (attach only): pod VM NICs join a
  subnet that may live outside the resource group.
The upstream walkthrough grants Virtual Machine Contributor and Reader on the whole group and
Network Contributor on the node resource group (confidentialcontainers.org
content/en/docs/examples/azure-simple.md); the scopes here are narrower.

Non-goals: public IPs on pod VMs (USE_PUBLIC_IP), custom DNS, private endpoints, credentials
(AZURE_CLIENT_SECRET) instead of workload identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_azure_native as azure
from pulumi_azure_native import network

from spec import versions
from spec.errors import ConfigIssue, SpecError
from spec.model import NodePool, Spec

from ..clouds import ManagedCluster
from ..peerpods import CloudPeerPods
from . import common
from .cluster import AksCluster

# The service accounts that call Azure, in the chart's release namespace: the CAA daemonset
# (peerpods chart templates/rbac.yaml@v0.22.0) and peerpod-ctrl, which deletes leftover pod VMs
# (src/peerpod-ctrl/chart values.yaml namePrefix + templates/permissions.yaml@v0.22.0).
SERVICE_ACCOUNTS = ("cloud-api-adaptor", "peerpodctrl-controller-manager")


def federated_subject(service_account: str) -> str:
    """The token subject Kubernetes issues for a service account (system:serviceaccount:ns:sa)."""
    return f"system:serviceaccount:{versions.PEERPODS_NAMESPACE}:{service_account}"


def _is_community_image(image_id: str) -> bool:
    # CAA boots /CommunityGalleries/... ids without RBAC (provider.go getVMParameters)
    return image_id.startswith("/CommunityGalleries/")


def _attached_subnet(subnet_id: str, spec: Spec, pools: Sequence[int]) -> str:
    """The attached cluster's node subnet, which pod VMs join. Empty when AKS made the VNet
    itself (agentPoolProfiles[].vnetSubnetID: "If this is not specified, a VNET and subnet will
    be generated and used", pulumi_azure_native 3.29.0): that VNet lives in the node resource
    group under a generated name, and only the cloud knows, so this is checked once the cluster
    has been read, not by spec.rules."""
    if subnet_id:
        return subnet_id
    keys = ", ".join(f"coco:nodePools[{i}]" for i in pools)
    raise SpecError([ConfigIssue(
        "coco:cluster.attach",
        f"the attached AKS cluster {common.cluster_name(spec)} (resource group "
        f"{common.resource_group_name(spec)}) runs its first agent pool in a VNet AKS manages "
        f"(no vnetSubnetID), so there is no subnet for the pod VMs of {keys}",
        "name a subnet the pod VMs can use with podVmSubnet on those pools, attach a cluster "
        "whose agent pools use a subnet of a VNet you own (az aks create --vnet-subnet-id), or "
        "let the stack create the cluster and its VNet (remove attach)",
    )])


class AzurePeerPodInfra(pulumi.ComponentResource):
    """Pod-VM network and CAA identity; `cloud` is what components.peerpods needs."""

    cloud: CloudPeerPods

    def __init__(
        self,
        name: str,
        args: tuple[Spec, AksCluster, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:azure:PeerPodInfra", name, None, opts)
        spec, cluster, image_id = args
        pools = [i for i, p in enumerate(spec.node_pools) if p.mode == "peer-pods"]
        child = pulumi.ResourceOptions(parent=self)
        group = cluster.resource_group_name
        cluster_name = common.cluster_name(spec)
        subscription = cluster.subscription_id
        group_id = pulumi.Output.concat("/subscriptions/", subscription, "/resourceGroups/", group)

        # Default NSG rules are what pod VMs need: inbound from the VNet (CAA's agent protocol
        # forwarder connection and VXLAN from the nodes), nothing from the internet.
        nsg = network.NetworkSecurityGroup(
            f"{name}-nsg",
            resource_group_name=group,
            network_security_group_name=f"{cluster_name}-podvm-nsg",
            location=cluster.location,
            tags=common.tags(),
            opts=child,
        )
        subnet_id: pulumi.Output[str]
        if cluster.vnet_name is not None:
            subnet_id = self._subnet(name, cluster, cluster.vnet_name, nsg, child)
        else:
            # attached cluster: pod VMs join coco:nodePools[].podVmSubnet (one per stack: rules),
            # else its node subnet, which already has outbound access
            named = [spec.node_pools[i].pod_vm_subnet for i in pools]
            given = next((subnet for subnet in named if subnet), None)
            subnet_id = (
                pulumi.Output.from_input(given)
                if given is not None
                else cluster.node_subnet_id.apply(
                    lambda found: _attached_subnet(found, spec, pools)
                )
            )

        identity = azure.managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=group,
            resource_name_=f"{cluster_name}-caa",
            location=cluster.location,
            tags=common.tags(),
            opts=child,
        )
        self.identity = identity
        # one after the other: Azure refuses concurrent writes of federated credentials on one
        # identity (ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity;
        # Azure/bicep#10928, hashicorp/terraform-provider-azurerm#19968)
        self.federated: list[azure.managedidentity.FederatedIdentityCredential] = []
        for account in SERVICE_ACCOUNTS:
            self.federated.append(
                azure.managedidentity.FederatedIdentityCredential(
                    f"{name}-federated-{account}",
                    resource_group_name=group,
                    resource_name_=common.named(identity, f"{cluster_name}-caa"),
                    federated_identity_credential_resource_name=account,
                    issuer=cluster.oidc_issuer,
                    subject=federated_subject(account),
                    audiences=[common.TOKEN_AUDIENCE],
                    opts=pulumi.ResourceOptions.merge(
                        child, pulumi.ResourceOptions(depends_on=self.federated[-1:])
                    ),
                )
            )

        def grant(suffix: str, role: str, scope: pulumi.Input[str]) -> None:
            azure.authorization.RoleAssignment(
                f"{name}-{suffix}",
                principal_id=identity.principal_id,
                principal_type="ServicePrincipal",
                role_definition_id=common.role_definition_id(subscription, role),
                scope=scope,
                opts=child,
            )

        grant("vm-contributor", common.VIRTUAL_MACHINE_CONTRIBUTOR, group_id)
        if not (isinstance(image_id, str) and _is_community_image(image_id)):
            grant("image-reader", common.READER, image_id)
        if cluster.vnet_name is None:
            grant("subnet-network-contributor", common.NETWORK_CONTRIBUTOR, subnet_id)

        self.cloud = CloudPeerPods(
            "azure",
            ids={
                "AZURE_IMAGE_ID": image_id,
                "AZURE_NSG_ID": nsg.id,
                "AZURE_RESOURCE_GROUP": group,
                "AZURE_SUBNET_ID": subnet_id,
                "AZURE_SUBSCRIPTION_ID": subscription,
            },
            pod_labels={common.WORKLOAD_IDENTITY_LABEL: "true"},
            service_account_annotations={common.CLIENT_ID_ANNOTATION: identity.client_id},
        )
        self.register_outputs({"identityClientId": identity.client_id, "subnetId": subnet_id})

    def _subnet(
        self,
        name: str,
        cluster: AksCluster,
        vnet_name: pulumi.Output[str],
        nsg: network.NetworkSecurityGroup,
        child: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """The pod-VM subnet next to the node subnet, with outbound access through a NAT
        gateway: pod VMs pull container images and reach the KBS (the upstream walkthrough's
        layout, confidentialcontainers.org content/en/docs/examples/azure-simple.md)."""
        group = cluster.resource_group_name
        ip = network.PublicIPAddress(
            f"{name}-nat-ip",
            resource_group_name=group,
            location=cluster.location,
            sku=network.PublicIPAddressSkuArgs(name="Standard"),
            public_ip_allocation_method="Static",
            tags=common.tags(),
            opts=child,
        )
        nat = network.NatGateway(
            f"{name}-nat",
            resource_group_name=group,
            location=cluster.location,
            sku=network.NatGatewaySkuArgs(name="Standard"),
            public_ip_addresses=[network.SubResourceArgs(id=ip.id)],
            tags=common.tags(),
            opts=child,
        )
        subnet = network.Subnet(
            f"{name}-subnet",
            resource_group_name=group,
            virtual_network_name=vnet_name,
            subnet_name="podvms",
            address_prefix=common.PODVM_SUBNET_CIDR,
            nat_gateway=network.SubResourceArgs(id=nat.id),
            network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
            opts=child,
        )
        subnet_id: pulumi.Output[str] = subnet.id
        return subnet_id


def peer_pods(
    name: str,
    spec: Spec,
    pools: Sequence[NodePool],
    cluster: ManagedCluster,
    image_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> CloudPeerPods:
    """`pools` share one subnet, identity and image: their sizes and TEEs reach CAA through
    components.peerpods.provider_config (AZURE_INSTANCE_SIZE(S))."""
    if not isinstance(cluster, AksCluster):
        raise TypeError("Azure peer pods run from an AKS cluster (coco:cluster.provider: aks)")
    return AzurePeerPodInfra(name, (spec, cluster, image_id), opts).cloud
