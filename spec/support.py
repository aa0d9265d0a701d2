"""What the components can build today, checked before anything is registered.

The spec accepts every configuration the product will support; this module refuses, with the
key path, what no component provisions yet, so `pulumi up` and `coco render` stop cleanly
instead of half-creating a stack. `coco check` reports the same as warnings.
"""

from __future__ import annotations

import importlib.util

from spec.errors import ConfigIssue, NotYetSupported
from spec.model import Spec

_LATER: dict[str, str] = {}  # cluster providers validated but not provisioned yet
_MANAGED = {"azure": "aks", "aws": "eks", "gcp": "gke"}
_CLUSTER_CLOUD = {cluster: cloud for cloud, cluster in _MANAGED.items()}


def _cloud_ready(cloud: str) -> bool:
    # the package components.clouds.PACKAGES names (not imported: it imports Pulumi)
    return importlib.util.find_spec(f"components.{cloud}") is not None


def gaps(spec: Spec) -> list[ConfigIssue]:
    """Every part of the spec that no component provisions yet, as warnings."""
    found: list[ConfigIssue] = []
    cloud = _CLUSTER_CLOUD.get(spec.cluster.provider)
    if cloud is not None and not _cloud_ready(cloud):
        found.append(
            ConfigIssue(
                "coco:cluster.provider",
                f"{spec.cluster.provider} clusters are validated but not provisioned yet",
                "use provider: existing for now",
                "warning",
            )
        )
    if spec.cluster.provider in _LATER:
        found.append(
            ConfigIssue(
                "coco:cluster.provider",
                f"{_LATER[spec.cluster.provider]} are validated but not provisioned yet",
                "use provider: existing for now",
                "warning",
            )
        )
    for i, pool in enumerate(spec.node_pools):
        p = f"coco:nodePools[{i}]"
        if pool.provider in _MANAGED and spec.cluster.provider == "existing":
            found.append(
                ConfigIssue(
                    f"{p}.provider",
                    f"{pool.provider} {pool.mode} pools need the stack to know the cloud cluster",
                    f"set coco:cluster.provider: {_MANAGED[pool.provider]} (with attach: true and "
                    "the cluster's name to use a cluster you already have)",
                    "warning",
                )
            )
    return found


def check(spec: Spec) -> None:
    problems = gaps(spec)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise NotYetSupported(first.path, first.message + more, first.hint)
