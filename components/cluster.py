"""The stack's cluster: an existing one reached through a kube context or kubeconfig, a cloud's
managed cluster (components.clouds: aks, eks, gke), or k3s on the stack's hosts
(components.hosts). Each exposes `provider`, the Kubernetes provider every in-cluster resource
uses, `kubeconfig` (a secret) and `outputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from spec.model import Cluster, Spec

from . import clouds
from .clouds import ManagedCluster
from .hosts import K3sCluster


class ExistingCluster(pulumi.ComponentResource):
    """An existing cluster, reached through a kube context or a kubeconfig held as a secret."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    outputs: Mapping[str, pulumi.Input[Any]]

    def __init__(self, name: str, args: Cluster, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:cluster:ExistingCluster", name, None, opts)
        kubeconfig = (
            pulumi.Output.secret(args.kubeconfig.get_secret_value())
            if args.kubeconfig is not None
            else None
        )
        # the user's own kubeconfig is not re-exported
        self.kubeconfig = pulumi.Output.secret("")
        self.outputs = {"provider": "existing"}
        self.provider = k8s.Provider(
            f"{name}-k8s",
            k8s.ProviderArgs(context=args.context, kubeconfig=kubeconfig),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def build(name: str, spec: Spec, opts: pulumi.ResourceOptions) -> ManagedCluster:
    """The stack's cluster: attached (existing), or a cloud's managed cluster."""
    if spec.cluster.provider == "existing":
        return ExistingCluster(name, spec.cluster, opts)
    if spec.cluster.provider == "k3s":
        return K3sCluster(name, spec, opts)
    if spec.cluster.provider in clouds.CLUSTER_CLOUD:
        cloud = clouds.CLUSTER_CLOUD[spec.cluster.provider]
        return clouds.package(cloud).cluster(name, spec, opts)
    raise ValueError(f"cluster provider {spec.cluster.provider!r} is refused by spec.support")
