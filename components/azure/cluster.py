"""The AKS cluster: created (resource group, VNet, subnets, AKS with OIDC issuer and workload
identity, a system pool) or attached (`coco:cluster.attach`), and the Kubernetes provider built
from its kubeconfig.

Scope: what every Azure stack needs before pools, runtime and KBS. Non-goals: AAD-integrated
clusters, private clusters, autoscaling and upgrades (AKS does those; the stack pins
`kubernetesVersion` at creation), changing an attached cluster (its add-ons and system pool stay
as they are).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_kubernetes as k8s
from pulumi_azure_native import containerservice as aks
from pulumi_azure_native import network

from spec.model import Spec

from .. import clouds
from . import common


def _kubeconfig(result: aks.ListManagedClusterUserCredentialsResult) -> str:
    # kubeconfigs[0].value is the base64 kubeconfig (AKS REST API CredentialResult); empty under
    # mocks, where no provider answers the call
    configs = result.kubeconfigs or []
    return base64.b64decode(configs[0].value).decode() if configs and configs[0].value else ""


class AksCluster(pulumi.ComponentResource):
    """An AKS cluster the stack created or attached, with what the other Azure modules need."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    outputs: Mapping[str, pulumi.Input[Any]]

    def __init__(self, name: str, args: Spec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:azure:AksCluster", name, None, opts)
        spec = args
        child = pulumi.ResourceOptions(parent=self)
        self.location = common.location(spec)
        self.attached = spec.cluster.attach
        self.subscription_id = common.subscription_id()
        self.vnet_name: pulumi.Output[str] | None = None
        if spec.cluster.attach:
            self._attach(spec)
        else:
            self._create(name, spec, child)
        credentials = aks.list_managed_cluster_user_credentials_output(
            resource_group_name=self.resource_group_name, resource_name=self.cluster_name
        )
        self.kubeconfig = pulumi.Output.secret(credentials.apply(_kubeconfig))
        self.provider = k8s.Provider(
            f"{name}-k8s",
            k8s.ProviderArgs(kubeconfig=self.kubeconfig),
            opts=child,
        )
        self.outputs = {
            "provider": "aks",
            "name": self.cluster_name,
            "resourceGroup": self.resource_group_name,
            "location": self.location,
            "oidcIssuer": self.oidc_issuer,
            "attached": self.attached,
        }
        self.register_outputs({"cluster": self.outputs})

    def _attach(self, spec: Spec) -> None:
        # spec.rules requires name and resourceGroup with attach
        self.resource_group_name = pulumi.Output.from_input(common.resource_group_name(spec))
        self.cluster_name = pulumi.Output.from_input(common.cluster_name(spec))
        found = aks.get_managed_cluster_output(
            resource_group_name=self.resource_group_name, resource_name=self.cluster_name
        )
        self.oidc_issuer: pulumi.Output[str] = found.oidc_issuer_profile.apply(
            lambda p: (p.issuer_url if p else None) or ""
        )
        # the first pool's subnet: pod VMs join the cluster's own VNet (empty when AKS manages
        # the VNet in its node resource group, see docs/azure.md)
        self.node_subnet_id: pulumi.Output[str] = found.agent_pool_profiles.apply(
            lambda pools: (pools[0].vnet_subnet_id if pools else None) or ""
        )

    def _create(self, name: str, spec: Spec, child: pulumi.ResourceOptions) -> None:
        cluster_name = common.cluster_name(spec)
        group = azure.resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=common.resource_group_name(spec),
            location=self.location,
            tags=common.tags(),
            opts=child,
        )
        self.resource_group_name = common.named(group, common.resource_group_name(spec))
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=self.resource_group_name,
            virtual_network_name=f"{cluster_name}-vnet",
            location=self.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[common.VNET_CIDR]),
            tags=common.tags(),
            opts=child,
        )
        self.vnet_name = common.named(vnet, f"{cluster_name}-vnet")
        nodes = network.Subnet(
            f"{name}-nodes-subnet",
            resource_group_name=self.resource_group_name,
            virtual_network_name=self.vnet_name,
            subnet_name="nodes",
            address_prefix=common.NODE_SUBNET_CIDR,
            opts=child,
        )
        self.node_subnet_id = nodes.id
        system = spec.cluster.system_pool
        addons: dict[str, aks.ManagedClusterAddonProfileArgs] = {}
        if any(p.tee == "sgx" for p in spec.node_pools):
            # SGX nodes get their device plugin from this add-on (learn.microsoft.com/azure/
            # confidential-computing/confidential-enclave-nodes-aks-get-started, addon confcom)
            addons["ACCSGXDevicePlugin"] = aks.ManagedClusterAddonProfileArgs(
                enabled=True, config={"ACCSGXQuoteHelperEnabled": "false"}
            )
        cluster = aks.ManagedCluster(
            f"{name}-aks",
            resource_group_name=self.resource_group_name,
            resource_name_=cluster_name,
            location=self.location,
            dns_prefix=cluster_name,
            kubernetes_version=spec.cluster.kubernetes_version,
            enable_rbac=True,
            identity=aks.ManagedClusterIdentityArgs(
                type=aks.ResourceIdentityType.SYSTEM_ASSIGNED
            ),
            agent_pool_profiles=[
                aks.ManagedClusterAgentPoolProfileArgs(
                    name=common.SYSTEM_POOL_NAME,
                    mode="System",
                    type="VirtualMachineScaleSets",
                    vm_size=(system.instance_type if system else None) or common.SYSTEM_POOL_SIZE,
                    count=system.count if system else 2,
                    os_type="Linux",
                    os_sku="Ubuntu",
                    orchestrator_version=spec.cluster.kubernetes_version,
                    vnet_subnet_id=nodes.id,
                    # CAA and the remote shim run on these nodes; AKS accepts this label (the
                    # upstream walkthrough sets it with --nodepool-labels: confidentialcontainers
                    # .org content/en/docs/examples/azure-simple.md). Always, not only with
                    # peer-pods pools: agentPoolProfiles is ignored after creation (below), so a
                    # label added later would never reach the pool
                    node_labels=clouds.system_pool_labels(),
                    tags=common.tags(),
                )
            ],
            network_profile=aks.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                pod_cidr=common.POD_CIDR,
                service_cidr=common.SERVICE_CIDR,
                dns_service_ip=common.DNS_SERVICE_IP,
                load_balancer_sku="standard",
                outbound_type="loadBalancer",
            ),
            oidc_issuer_profile=aks.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=aks.ManagedClusterSecurityProfileArgs(
                workload_identity=aks.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True
                )
            ),
            addon_profiles=addons or None,
            tags=common.tags(),
            # node pools are separate AgentPool resources; AKS lists them in the cluster's
            # agentPoolProfiles too, which would otherwise read as drift
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["agentPoolProfiles"]
            ),
        )
        self.cluster_name = common.named(cluster, cluster_name)
        # The control plane's identity manages load balancers and node NICs in the stack's own
        # VNet: Network Contributor there, which `az aks create` grants by itself and other
        # clients must grant (learn.microsoft.com/azure/aks/use-managed-identity, "bring your
        # own VNet").
        azure.authorization.RoleAssignment(
            f"{name}-vnet-network-contributor",
            principal_id=cluster.identity.apply(lambda i: (i.principal_id if i else None) or ""),
            principal_type="ServicePrincipal",
            role_definition_id=common.role_definition_id(
                self.subscription_id, common.NETWORK_CONTRIBUTOR
            ),
            scope=vnet.id,
            opts=child,
        )
        self.oidc_issuer = cluster.oidc_issuer_profile.apply(
            lambda p: (p.issuer_url if p else None) or ""
        )


def cluster(name: str, spec: Spec, opts: pulumi.ResourceOptions) -> AksCluster:
    return AksCluster(name, spec, opts)
