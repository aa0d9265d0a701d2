"""The top-level component: spec -> cluster -> pools -> runtime -> image -> KBS -> outputs.

One `CocoStack` per Pulumi stack. It reads as the recipe of the deployment; each step is one
component with its own module. Steps that later issues fill in are named where they go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from . import cluster as cluster_mod
from . import runtime_plan
from .image import GuestImage, GuestImageArgs
from .kbs import KeyBroker
from .pools import NodePool
from .runtime import CocoRuntime
from .spec import Spec


class CocoStack(pulumi.ComponentResource):
    """A whole Confidential Containers deployment built from one validated `Spec`."""

    def __init__(
        self,
        name: str,
        args: Spec,
        opts: pulumi.ResourceOptions | None = None,
        *,
        base_dir: Path | None = None,
    ):
        """`base_dir`: where relative paths in the spec (policy files) are read from."""
        super().__init__("coco:index:CocoStack", name, None, opts)
        spec = args

        # 1. the cluster and the Kubernetes provider everything in it uses
        self.cluster = cluster_mod.build(
            f"{name}-cluster", spec.cluster, pulumi.ResourceOptions(parent=self)
        )
        in_cluster = pulumi.ResourceOptions(parent=self, providers=[self.cluster.provider])

        # 2. node pools, in the order the stack file lists them
        self.pools = {
            pool.name: NodePool(
                f"{name}-pool-{pool.name}",
                pool,
                in_cluster,
                nfd=spec.runtime.node_feature_discovery,
            )
            for pool in spec.node_pools
        }
        # 3. runtime: kata-deploy with the shims the pools use, RuntimeClasses per TEE
        self.runtime = (
            CocoRuntime(f"{name}-runtime", spec, in_cluster)
            if runtime_plan.runtime_classes(spec)
            else None
        )
        # 4. guest image: built during `pulumi up` on this machine; its measurements become
        #    reference values the KBS trusts
        self.image = (
            GuestImage(
                f"{name}-image",
                GuestImageArgs(
                    spec.image.recipe,
                    (base_dir or Path.cwd()) / "build" / "images" / spec.stack,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            if spec.image.recipe
            else None
        )

        # 5. key broker
        self.kbs = (
            KeyBroker(
                f"{name}-kbs",
                spec.kbs,
                in_cluster,
                base_dir=base_dir,
                # the guest-image measurements join these once the image builder lands
                reference_values=spec.kbs.reference_values,
                image_reference_values=self.image.reference_values if self.image else None,
                # coco-dev guests can only produce sample evidence
                allow_sample=any(p.tee == "none" for p in spec.node_pools),
            )
            if spec.kbs.enabled
            else None
        )

        # 6. outputs
        self.runtime_classes: dict[str, str | None] = {
            pool_name: pool.runtime_class for pool_name, pool in sorted(self.pools.items())
        }
        self.pool_summaries: dict[str, dict[str, Any]] = {
            pool_name: pool.summary for pool_name, pool in sorted(self.pools.items())
        }
        self.register_outputs(
            {"runtimeClasses": self.runtime_classes, "pools": self.pool_summaries}
        )
