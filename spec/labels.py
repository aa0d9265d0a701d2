"""Node labels and taints coco-stack puts on TEE nodes and selects them by.

Mixed-TEE clusters need a RuntimeClass node selector per TEE (../shared/facts/coco-runtime.md:
"Mixed-TEE clusters need per-TEE node selectors on RuntimeClasses"), so every pool's nodes carry
the pool and TEE labels below. The worker label is the one the CoCo operator selected workers
with (`node.kubernetes.io/worker=`; kubelet cannot set node-role labels on itself).
"""

from __future__ import annotations

PREFIX = "coco-stack.io"
# Recommended label on everything the stack creates (kubernetes.io/docs/concepts/overview/
# working-with-objects/common-labels).
PART_OF = {"app.kubernetes.io/part-of": "coco-stack"}
TEE = f"{PREFIX}/tee"
POOL = f"{PREFIX}/pool"
WORKER = "node.kubernetes.io/worker"
# Taint that nodes the stack creates for kata carry from birth; kata-deploy removes it once the
# runtime is installed (values `startupTaints`, "key:effect"; kata-deploy 4.0.0), so ordinary
# pods cannot land on a TEE node before it is ready either.
STARTUP_TAINT_KEY = f"{PREFIX}/runtime-pending"


def pool_labels(pool: str, tee: str) -> dict[str, str]:
    """Labels the stack applies to the nodes of a pool it manages."""
    return {POOL: pool, TEE: tee, WORKER: ""}


def pool_selector(pool: str, tee: str, node_selector: dict[str, str] | None) -> dict[str, str]:
    """The selector that finds a pool's nodes: the user's own for reused nodes, else ours."""
    if node_selector is not None:
        return dict(sorted(node_selector.items()))
    return {POOL: pool, TEE: tee}
