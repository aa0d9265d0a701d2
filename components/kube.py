"""Kubernetes objects every component needs the same way."""

from __future__ import annotations

from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from spec.labels import PART_OF


def namespace(
    resource_name: str,
    name: str,
    opts: pulumi.ResourceOptions,
    *,
    pod_security: Literal["restricted", "baseline", "privileged"] | None = None,
    labels: dict[str, str] | None = None,
) -> k8s.core.v1.Namespace:
    """A namespace labelled as coco-stack's, with the Pod Security level admission enforces
    there (kubernetes.io/docs/concepts/security/pod-security-admission)."""
    all_labels = {**PART_OF, **(labels or {})}
    if pod_security is not None:
        all_labels["pod-security.kubernetes.io/enforce"] = pod_security
        all_labels["pod-security.kubernetes.io/enforce-version"] = "latest"
    return k8s.core.v1.Namespace(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=all_labels),
        opts=opts,
    )
