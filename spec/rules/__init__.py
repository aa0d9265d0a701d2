"""Rules across fields and against the TEE catalogue; resolves the defaults of each pool.

Called by `spec.validate` with the sections that passed type checking (None for those that
did not). Appends a `ConfigIssue` per problem and returns the resolved `Spec`, or None when a
section is missing. Every message says what is wrong and what to do instead.
"""

from __future__ import annotations

from typing import Any

from spec import files as userfiles
from spec.errors import ConfigIssue
from spec.model import Cluster, Kbs, NodePool, Spec, host_address

from .base import Collector
from .charts import check_charts
from .clouds import (
    aks_pools_in_cluster_location,
    attached_peer_pod_workers,
    aws_pools_in_cluster_region,
    gcp_disk_types,
    gke_pools_in_cluster_region,
    ibmcloud_pools,
    one_aws_podvm_size,
    one_peer_pods_cloud,
    pod_vm_subnets,
)
from .cluster import check_cluster
from .image import (
    gcp_image_format,
    podvm_attestation,
    podvm_image,
    recipe_lock,
    recipe_payload_pinned,
    scratch_space,
)
from .kbs import check_kbs, reference_value_coverage, se_verifier_and_kata_guest
from .pools import check_pool, nfd_with_peer_pods


def apply(
    values: dict[str, Any],
    *,
    stack: str,
    secure_paths: frozenset[str],
    base_dir: str | None,
    issues: list[ConfigIssue],
) -> Spec | None:
    out = Collector(issues)
    env = values["environment"]
    cluster: Cluster | None = values["cluster"]
    raw_pools = values["nodePools"]
    if cluster is not None:
        check_cluster(out, cluster, secure_paths)

    pools: list[NodePool] = []
    names: dict[str, int] = {}
    addresses: dict[str, str] = {}
    spelled: dict[str, str] = {}  # canonical address -> as its host entry writes it
    for index, pool in enumerate(raw_pools or ()):
        if pool is None:
            continue
        if pool.name in names:
            out.error(
                f"coco:nodePools[{index}].name",
                f"pool name {pool.name!r} is already used by coco:nodePools[{names[pool.name]}]",
                "give every pool its own name",
            )
        names.setdefault(pool.name, index)
        for h, host in enumerate(pool.hosts or ()):
            here = f"coco:nodePools[{index}].hosts[{h}].address"
            same = host_address(host.address)  # `Node1.example.` is `node1.example`
            if same in addresses:
                out.error(
                    here,
                    f"host {host.address!r} is already listed at {addresses[same]}",
                    "a host belongs to one pool (names are compared without case or a trailing "
                    "dot, IP addresses by value)",
                )
            addresses.setdefault(same, here)
            spelled.setdefault(same, host.address)
        pools.append(check_pool(out, index, pool, cluster, env, secure_paths))
    server = cluster.server if cluster is not None and cluster.provider == "k3s" else None
    # a pool refused by its own errors (a host address typo) may hold the server: its error
    # is the one mistake, so the server is not also "not one of the pools' hosts"
    broken = any(pool is None for pool in raw_pools or ())
    if server is not None and host_address(server) not in addresses and not broken:
        out.error(
            "coco:cluster.server",
            f"{server!r} is not one of the pools' hosts",
            "set it to the address of a host listed in coco:nodePools[].hosts",
        )
    elif server is not None and cluster is not None and host_address(server) in addresses:
        # the components find the server's host by its address: use the host's spelling
        cluster = cluster.model_copy(update={"server": spelled[host_address(server)]})
    one_peer_pods_cloud(out, pools)
    nfd_with_peer_pods(out, values["runtime"], pools)
    written = [(i, pool) for i, pool in enumerate(raw_pools or ()) if pool is not None]
    aws_pools = [(i, p, raw) for (i, raw), p in zip(written, pools, strict=True)]
    one_aws_podvm_size(out, aws_pools)
    aws_pools_in_cluster_region(out, aws_pools, cluster)
    pod_vm_subnets(out, aws_pools, cluster)
    aks_pools_in_cluster_location(out, aws_pools, cluster)
    gke_pools_in_cluster_region(out, aws_pools, cluster)
    gcp_disk_types(out, aws_pools)
    valid = [i for i, pool in enumerate(raw_pools or ()) if pool is not None]
    ibmcloud_pools(out, list(zip(valid, pools, strict=True)), secure_paths)
    attached_peer_pod_workers(out, list(zip(valid, pools, strict=True)), cluster)
    if raw_pools == []:
        out.warn(
            "coco:nodePools",
            "no node pools: only the KBS is deployed",
            "add a pool to run confidential pods",
        )

    image = values["image"]
    if image is not None and image.recipe is not None:
        from images import recipe as recipes
        from images.errors import RecipeError

        # the recipe is read and parsed here as `coco render` and the build read it (a file
        # that is not a recipe is an error, not a warning about the build); a directory, FIFO
        # or device is refused unread (spec.files)
        kind = None
        if image.recipe.endswith(".toml") or "/" in image.recipe:
            kind = userfiles.problem(image.recipe)
        try:
            if kind is not None:
                raise RecipeError(
                    f"recipe file {image.recipe} {kind}", hint="name a recipe's .toml file"
                )
            recipes.load(image.recipe)
        except RecipeError as exc:
            out.error("coco:image.recipe", str(exc), exc.hint or "name a recipe in images/recipes/")
            image = None  # every later image rule would read the same broken recipe
        else:
            recipe_payload_pinned(out, image.recipe)
    if image is not None:
        podvm_image(out, image, pools)
        gcp_image_format(out, image, pools)
        recipe_lock(out, image)
        podvm_attestation(out, image, pools)
        scratch_space(out, image, pools)
    kbs: Kbs | None = values["kbs"]
    if kbs is not None:
        items = values.get("kbs.resources", list(kbs.resources))
        check_kbs(out, kbs, env, secure_paths, base_dir, pools, items)
        reference_value_coverage(out, kbs, env, list(zip(valid, pools, strict=True)))
        se_verifier_and_kata_guest(out, kbs, env, pools, secure_paths, base_dir)
        peer = [i for i, p in zip(valid, pools, strict=True) if p.mode == "peer-pods"]
        if kbs.enabled and peer and kbs.hostname is None:
            # pod VMs are cloud VMs on the cluster's network, not pods: the attestation agent
            # in them dials the KBS URL from its initdata (cloud-api-adaptor docs, "Deploy
            # Trustee": the KBS must be reachable from the pod VM)
            out.warn(
                "coco:kbs.hostname",
                f"peer-pod VMs (coco:nodePools[{peer[0]}]) run outside the cluster and cannot "
                "resolve the KBS's in-cluster name",
                "set hostname (with expose: loadbalancer or ingress) to a name the pod VMs' "
                "network resolves",
            )

    charts = check_charts(out, values["charts"], env, base_dir)

    if None in (env, cluster, raw_pools, kbs, values["runtime"], values["image"]) or (
        None in raw_pools
    ):
        return None
    return Spec(
        stack=stack,
        environment=env,
        cluster=cluster,
        node_pools=tuple(pools),
        kbs=kbs,
        runtime=values["runtime"],
        image=values["image"],
        charts=charts,
    )
