"""Dangerous changes in a `coco diff`: the ones that replace or delete an object holding state.

Deleting such an object loses its data (a PersistentVolumeClaim's volume: the KBS keeps its
resources there; a Namespace: everything in it), its keys (a Secret, a TLS private key: the KBS
CA and its admin key) or the workloads on it (a cluster or node pool). A changed identity
(metadata.name or namespace, a cloud resource's name or place) is a replacement: the provider
deletes the old object (pulumi-kubernetes replaces on a changed name or namespace; the cloud
providers on their ForceNew fields such as name and location). Renders are compared, not a
provider's plan: `pulumi preview` is the authority on replacements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cli.diff import MISSING, Change, Diff, ResourceChange

STATEFUL: dict[str, str] = {
    "kubernetes:core/v1:PersistentVolumeClaim": "its volume's data",
    "kubernetes:core/v1:PersistentVolume": "its volume's data",
    "kubernetes:core/v1:Secret": "the keys it holds",
    # deleting a namespace deletes everything in it, the KBS's claim and Secrets included
    "kubernetes:core/v1:Namespace": "every object in it (claims and Secrets included)",
    "tls:index/privateKey:PrivateKey": "the private key (certificates issued with it stop "
    "matching)",
    "azure-native:containerservice:ManagedCluster": "the cluster and every workload on it",
    "azure-native:containerservice:AgentPool": "the pool's nodes and the pods on them",
    # Pulumi type tokens are `package:module/resource:Type` (the module path names the file
    # in the provider's schema), as `coco render STACK --out -` shows; tests/cli check every
    # token here against the real renders of stacks/
    "aws:eks/cluster:Cluster": "the cluster and every workload on it",
    "aws:eks/nodeGroup:NodeGroup": "the pool's nodes and the pods on them",
    "gcp:container/cluster:Cluster": "the cluster and every workload on it",
    "gcp:container/nodePool:NodePool": "the pool's nodes and the pods on them",
}
# input paths whose change replaces the object
_IDENTITY = re.compile(
    r"^(metadata\.(name|namespace)|name|resourceName|resourceGroupName|location|region|zone|"
    r"project|clusterName|nodeGroupName|algorithm|ecdsaCurve|rsaBits)$"
)
# a PersistentVolumeClaim's spec is immutable except for a larger storage request (Kubernetes
# API reference, PersistentVolumeClaimSpec; "spec is immutable after creation except
# resources.requests"): any other spec change makes the provider replace the claim
_PVC_MUTABLE = re.compile(r"^spec\.resources\.requests(\..*)?$")


@dataclass(frozen=True, order=True)
class Danger:
    """One change that replaces or deletes a stateful object."""

    type: str
    name: str
    action: str  # "delete" or "replace"
    reason: str

    def text(self) -> str:
        return f"{self.action} {self.type} {self.name}: {self.reason}"


def _replacing(resource: ResourceChange) -> list[Change]:
    pvc = resource.type == "kubernetes:core/v1:PersistentVolumeClaim"
    return [
        c
        for c in resource.changes
        if _IDENTITY.match(c.path)
        or (pvc and c.path.startswith("spec.") and not _PVC_MUTABLE.match(c.path))
    ]


def dangerous(diff: Diff) -> list[Danger]:
    """Every removed stateful resource, and every stateful resource whose change replaces it,
    sorted. A Secret that loses a data key counts too: that key is deleted."""
    found = [
        Danger(r["type"], r["name"], "delete", f"loses {STATEFUL[r['type']]}")
        for r in diff.removed
        if r["type"] in STATEFUL
    ]
    for rc in diff.changed:
        if rc.type not in STATEFUL:
            continue
        replaced = _replacing(rc)
        if replaced:
            paths = ", ".join(c.path for c in replaced)
            found.append(
                Danger(
                    rc.type,
                    rc.name,
                    "replace",
                    f"{paths} changed: loses {STATEFUL[rc.type]}",
                )
            )
        elif rc.type == "kubernetes:core/v1:Secret":
            gone = [
                c.path
                for c in rc.changes
                if c.new is MISSING and re.match(r"^(data|stringData)[.\[]", c.path)
            ]
            if gone:
                found.append(Danger(rc.type, rc.name, "delete", f"loses key(s) {', '.join(gone)}"))
    return sorted(found)
