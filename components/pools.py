"""Node pools: one component per `coco:nodePools[]` entry.

The pool resolves its catalogue offering and publishes what the runtime and KBS need: the
RuntimeClass, the node selector that pins pods to the pool's nodes, the labels its nodes carry,
and the attestation facts. What creates the nodes hangs below it: a cloud's nodes-mode pool
(components.clouds), or the SSH-managed hosts (components.hosts); pools on existing nodes
(nodeSelector) and peer-pods pools create no nodes.
"""

from __future__ import annotations

from typing import Any

import pulumi

from spec import catalogue, labels, runtime_plan
from spec.model import NodePool as PoolSpec


class NodePool(pulumi.ComponentResource):
    """A TEE node pool and the facts other components need about it."""

    def __init__(
        self,
        name: str,
        args: PoolSpec,
        opts: pulumi.ResourceOptions | None = None,
        *,
        nfd: bool = False,
    ):
        super().__init__("coco:pools:NodePool", name, None, opts)
        offering = catalogue.find(args.provider or "", args.tee, args.mode or "")
        if offering is None:  # spec.rules resolves and refuses these; guard direct use
            raise ValueError(f"no catalogue offering for {args.provider}/{args.tee}/{args.mode}")
        self.spec = args
        self.offering = offering
        self.runtime_class = offering.runtime_class
        # nodes the stack manages get these labels (and, until their runtime is ready, the
        # startup taint); reused nodes (nodeSelector) are found by the user's labels instead
        self.labels = labels.pool_labels(args.name, args.tee) if args.node_selector is None else {}
        self.node_selector = runtime_plan.pool_node_selector(args, nfd)
        self.summary: dict[str, Any] = {
            "tee": args.tee,
            "mode": args.mode,
            "provider": args.provider,
            "instanceType": args.instance_type,
            "runtimeClass": offering.runtime_class,
            "shim": offering.shim,
            "arch": offering.arch,
            "evidence": offering.evidence,
            "initdataBinding": offering.initdata_binding,
            "nodeSelector": self.node_selector,
            "nodeLabels": self.labels,
        }
        self.register_outputs({"summary": self.summary})
