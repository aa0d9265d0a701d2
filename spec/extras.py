"""Which optional installs (pip extras) a stack needs, and a clear error when one is missing.

The base install of coco-stack carries Kubernetes, the KBS, bare-metal hosts and IBM Cloud peer
pods. Each cloud's Pulumi provider and preflight SDKs come with an extra of their own
(pyproject.toml [project.optional-dependencies]), so a user pays only for the clouds their stacks
use. This module must stay free of imports of those packages: it asks importlib whether they are
installed, without loading them.
"""

from __future__ import annotations

import importlib.util

from .errors import CocoError
from .model import Spec

# cloud -> the top-level modules its extra installs (pyproject.toml keeps the same lists)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "aws": ("pulumi_aws", "boto3"),
    "azure": ("pulumi_azure_native", "azure.identity", "azure.mgmt.compute", "azure.storage.blob"),
    "gcp": ("pulumi_gcp", "google.cloud.compute_v1"),
}
CLOUDS = tuple(sorted(EXTRA_MODULES))
# coco:cluster.provider values that are a cloud's managed cluster
CLUSTER_CLOUD = {"aks": "azure", "eks": "aws", "gke": "gcp"}


class MissingExtra(CocoError):
    """The stack uses a cloud whose extra is not installed."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        clouds = sorted(missing)
        detail = "; ".join(f"{c} (no {', '.join(missing[c])})" for c in clouds)
        super().__init__(
            f"this stack uses {', '.join(clouds)}, whose Python packages are not installed: "
            f"{detail}"
        )
        self.missing = missing
        self.hint = f"pip install 'coco-stack[{','.join(clouds)}]'"


def clouds_of(spec: Spec) -> list[str]:
    """The clouds a stack provisions in (its managed cluster and its cloud pools), sorted."""
    found: set[str] = {str(p.provider) for p in spec.node_pools if p.provider in EXTRA_MODULES}
    if spec.cluster.provider in CLUSTER_CLOUD:
        found.add(CLUSTER_CLOUD[spec.cluster.provider])
    return sorted(found)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def missing(spec: Spec) -> dict[str, list[str]]:
    """cloud -> its modules that are not installed, for each cloud the stack uses."""
    out: dict[str, list[str]] = {}
    for cloud in clouds_of(spec):
        absent = [m for m in EXTRA_MODULES[cloud] if not _installed(m)]
        if absent:
            out[cloud] = absent
    return out


def check(spec: Spec) -> None:
    """Raise MissingExtra naming the exact `pip install` when a cloud's extra is absent."""
    found = missing(spec)
    if found:
        raise MissingExtra(found)
