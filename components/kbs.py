"""The Trustee key broker (KBS).

Today: the KBS namespace (Pod Security "restricted" enforced) and the Secret holding the
resources it releases, every value a Pulumi secret. The Deployment, configuration, keys, TLS and
policies arrive with the KBS issue and become children here.
"""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_kubernetes as k8s

from .labels import PREFIX
from .spec import Kbs


def resource_key(path: str) -> str:
    """A stable Secret key for a resource path (Secret keys cannot hold '/')."""
    return "res-" + hashlib.sha256(path.encode()).hexdigest()[:20]


class KeyBroker(pulumi.ComponentResource):
    """The KBS and everything it needs inside the cluster."""

    def __init__(self, name: str, args: Kbs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:kbs:KeyBroker", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = args.namespace
        common = {"app.kubernetes.io/name": "kbs", "app.kubernetes.io/part-of": "coco-stack"}
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={
                    **common,
                    # Pod Security admission (kubernetes.io/docs/concepts/security/
                    # pod-security-admission): reject pods that are not "restricted".
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            ),
            opts=child,
        )
        resources = sorted(args.resources, key=lambda r: r.path)
        keys = {resource_key(r.path): r.path for r in resources}
        self.resources_secret = k8s.core.v1.Secret(
            f"{name}-resources",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="kbs-resources",
                namespace=args.namespace,
                labels=common,
                annotations={f"{PREFIX}/resource-paths": json.dumps(keys, sort_keys=True)},
            ),
            type="Opaque",
            string_data={
                resource_key(r.path): pulumi.Output.secret(r.value.get_secret_value())
                for r in resources
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        self.register_outputs({"namespace": self.namespace})
