"""Node pools: one component per `coco:nodePools[]` entry.

Today: bare-metal pools on existing nodes (nodeSelector). The pool resolves its catalogue
offering and publishes what the runtime and KBS need: the RuntimeClass, the node selector that
pins pods to the pool's nodes, the labels its nodes carry, and the attestation facts. Cloud pools
(azure, aws, gcp, ibmcloud) and SSH-managed hosts arrive with their issues and add children here.
"""

from __future__ import annotations

from typing import Any

import pulumi

from . import catalogue, labels
from .spec import NodePool as PoolSpec


class NodePool(pulumi.ComponentResource):
    """A TEE node pool and the facts other components need about it."""

    def __init__(self, name: str, args: PoolSpec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:pools:NodePool", name, None, opts)
        offering = catalogue.find(args.provider or "", args.tee, args.mode or "")
        if offering is None:  # components.rules resolves and refuses these; guard direct use
            raise ValueError(f"no catalogue offering for {args.provider}/{args.tee}/{args.mode}")
        self.spec = args
        self.offering = offering
        self.runtime_class = offering.runtime_class
        self.node_selector = labels.pool_selector(args.name, args.tee, args.node_selector)
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
        }
        self.register_outputs({"summary": self.summary})
