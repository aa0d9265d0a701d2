"""Cluster components: attach to an existing cluster (managed clusters arrive with the cloud
issues). Each exposes `provider`, the Kubernetes provider every in-cluster resource uses.

Non-goals here: creating clusters (aks, eks, gke, k3s are refused by `components.support`).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from .spec import Cluster


class ExistingCluster(pulumi.ComponentResource):
    """An existing cluster, reached through a kube context or a kubeconfig held as a secret."""

    provider: k8s.Provider

    def __init__(self, name: str, args: Cluster, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:cluster:ExistingCluster", name, None, opts)
        kubeconfig = (
            pulumi.Output.secret(args.kubeconfig.get_secret_value())
            if args.kubeconfig is not None
            else None
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            k8s.ProviderArgs(context=args.context, kubeconfig=kubeconfig),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def build(name: str, args: Cluster, opts: pulumi.ResourceOptions) -> ExistingCluster:
    if args.provider == "existing":
        return ExistingCluster(name, args, opts)
    raise ValueError(f"cluster provider {args.provider!r} is refused by components.support")
