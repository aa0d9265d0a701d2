"""The top-level component: spec -> cluster -> pools -> runtime -> image -> KBS -> outputs.

One `CocoStack` per Pulumi stack. It reads as the recipe of the deployment; each step is one
component with its own module. Steps that later issues fill in are named where they go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from components import clouds, ibmcloud, initdata
from components.kbs.broker import KeyBroker
from images.build import OUTPUT_FILES, stack_out_dir
from spec import rego, runtime_plan
from spec.model import NodePool as PoolSpec
from spec.model import Spec
from spec.rules.image import scratch_space_gib

from . import cluster as cluster_mod
from .hosts import PoolHosts
from .image import GuestImage, GuestImageArgs
from .peerpods import PeerPodPool, PeerPods, Scratch, provider_config
from .pools import NodePool
from .runtime import CocoRuntime


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
            f"{name}-cluster", spec, pulumi.ResourceOptions(parent=self)
        )
        in_cluster = pulumi.ResourceOptions(parent=self, providers=[self.cluster.provider])
        cloud = clouds.CLUSTER_CLOUD.get(spec.cluster.provider)

        # 2. node pools, in the order the stack file lists them; a cloud creates the nodes of
        #    nodes-mode pools as children of the pool
        self.pools = {
            pool.name: NodePool(
                f"{name}-pool-{pool.name}",
                pool,
                in_cluster,
                nfd=spec.runtime.installs_nfd,
            )
            for pool in spec.node_pools
        }
        for pool in spec.node_pools:
            if cloud is not None and pool.mode == "nodes":
                clouds.package(cloud).node_pool(
                    f"{name}-pool-{pool.name}-nodes",
                    spec,
                    pool,
                    self.cluster,
                    clouds.pool_nodes(pool),
                    pulumi.ResourceOptions(parent=self.pools[pool.name]),
                )
        #    bare-metal hosts: checked over SSH, then joined to k3s or labelled; everything in
        #    the cluster waits for them
        hosts = [
            PoolHosts(
                f"{name}-pool-{pool.name}-hosts",
                pool,
                self.cluster,
                pulumi.ResourceOptions(parent=self.pools[pool.name]),
            )
            for pool in spec.node_pools
            if pool.hosts
        ]
        in_cluster = pulumi.ResourceOptions.merge(
            in_cluster, pulumi.ResourceOptions(depends_on=hosts)
        )
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
                    stack_out_dir(base_dir or Path.cwd(), spec.stack),
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
                reference_values=spec.kbs.reference_values,
                image_reference_values=self.image.reference_values if self.image else None,
                # coco-dev guests can only produce sample evidence
                allow_sample=any(p.tee == "none" for p in spec.node_pools),
                tees=rego.stack_tees(spec.node_pools),
            )
            if spec.kbs.enabled
            else None
        )

        # 5b. peer pods: the cloud's pod-VM image and infrastructure, then cloud-api-adaptor
        #     configured with them and with the initdata that points pod VMs at the KBS
        self.peer_pods: PeerPods | None = None
        peer_pools = [p for p in spec.node_pools if p.mode == "peer-pods"]
        # IBM Cloud peer pods join an existing IKS/ROKS cluster (components.ibmcloud)
        peer_cloud = "ibmcloud" if any(p.provider == "ibmcloud" for p in peer_pools) else cloud
        if peer_pools and peer_cloud is not None:
            self.peer_pods = self._peer_pods(name, spec, peer_cloud, peer_pools, in_cluster)

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

    def _peer_pods(
        self,
        name: str,
        spec: Spec,
        cloud: str,
        pools: list[PoolSpec],
        in_cluster: pulumi.ResourceOptions,
    ) -> PeerPods:
        if cloud == "ibmcloud":
            # the VPC and the SE image ids come from the spec: nothing to publish or provision
            provisioned = ibmcloud.peer_pods(pools)
        else:
            package = clouds.package(cloud)
            here = pulumi.ResourceOptions(parent=self)
            image_id: pulumi.Input[str]
            if spec.image.podvm_image is not None:
                image_id = spec.image.podvm_image
            else:
                # spec.rules requires a recipe or podvmImage for cloud peer pods
                assert self.image is not None
                image_id = package.publish_image(
                    f"{name}-podvm-image", spec, self.cluster, self.image, here
                )
            provisioned = package.peer_pods(
                f"{name}-peer-pods-infra", spec, pools, self.cluster, image_id, here
            )
        init: pulumi.Input[str] | None = None
        if self.kbs is not None:
            ca = None if spec.kbs.insecure_http else self.kbs.ca_cert_pem
            init = pulumi.Output.from_input(ca).apply(
                lambda pem: initdata.annotation_value(initdata.document(self.kbs_url, pem))
            )
        config = provider_config(
            provisioned,
            [
                PeerPodPool(p.tee, p.instance_type or "", p.region or "", p.zone, p.disk_type)
                for p in pools
            ],
            initdata=init,
            scratch=self._scratch(spec, pools),
        )
        depends = [self.runtime] if self.runtime is not None else []
        return PeerPods(
            f"{name}-peer-pods",
            provisioned,
            config,
            pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=depends)),
            charts=spec.charts,
        )

    def _scratch(self, spec: Spec, pools: list[PoolSpec]) -> Scratch | None:
        """The pod VMs' scratch space (spec.rules.image decides whether it is on); the disk
        adds the size of the recipe's raw disk, known once the build ran (unknown for a
        podvmImage, and under `coco render`, where nothing is built)."""
        gib = scratch_space_gib(spec.image, pools)
        if gib is None:
            return None
        if spec.image.podvm_image is not None or self.image is None:
            return Scratch(gib)
        raw = OUTPUT_FILES["raw"]
        size = self.image.measurements.apply(
            lambda m: m.get("artifacts", {}).get(raw, {}).get("size")
        )
        return Scratch(gib, size)

    @property
    def kbs_url(self) -> str:
        assert self.kbs is not None
        return self.kbs.url
