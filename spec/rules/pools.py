"""Rules for one `coco:nodePools[]` entry: the TEE and mode against the catalogue, the defaults
it resolves to, hosts, instance types and the environment's guards."""

from __future__ import annotations

import re

from spec import catalogue, versions
from spec.model import Cluster, NodePool, Runtime

from .base import Collector, an
from .clouds import check_region
from .cluster import ALLOWED_POOL_PROVIDERS, CLUSTER_LOCATION, CLUSTER_POOL_PROVIDER


def check_pool(
    out: Collector,
    index: int,
    pool: NodePool,
    c: Cluster | None,
    env: str | None,
    secure: frozenset[str],
) -> NodePool:
    p = f"coco:nodePools[{index}]"
    cluster_provider = c.provider if c else None
    provider: str
    if pool.provider is not None:
        provider = pool.provider
    elif c is None:
        return pool  # coco:cluster is invalid (reported there): no default to resolve from
    else:
        if pool.mode == "bare-metal" and cluster_provider in CLUSTER_LOCATION:
            out.error(
                f"{p}.mode",
                f"bare-metal pools run on your own hosts and cannot join {cluster_provider} "
                "clusters",
                f"use mode peer-pods or nodes (provider "
                f"{CLUSTER_POOL_PROVIDER[cluster_provider]}), or coco:cluster.provider existing or "
                "k3s for bare-metal hosts",
            )
            return pool
        if cluster_provider in CLUSTER_POOL_PROVIDER:
            provider = CLUSTER_POOL_PROVIDER[cluster_provider]
        elif pool.mode in (None, "bare-metal"):
            provider = "baremetal"
        else:
            out.error(
                f"{p}.provider",
                f"a {pool.mode} pool on an existing cluster needs a provider",
                "set provider: azure, aws, gcp or ibmcloud",
            )
            return pool
    mode = pool.mode or ("bare-metal" if provider == "baremetal" else "peer-pods")

    if cluster_provider and provider not in ALLOWED_POOL_PROVIDERS[cluster_provider]:
        allowed = [k for k, v in ALLOWED_POOL_PROVIDERS.items() if provider in v]
        out.error(
            f"{p}.provider",
            f"{provider} pools cannot join a {cluster_provider!r} cluster",
            f"use coco:cluster.provider {' or '.join(allowed)}, or a pool provider of "
            f"{', '.join(ALLOWED_POOL_PROVIDERS[cluster_provider])}",
        )
        return pool

    offering = catalogue.find(provider, pool.tee, mode)
    refusal = catalogue.refused(provider, pool.tee, mode)
    if offering is None:
        modes = catalogue.modes_for(provider, pool.tee)
        if refusal is not None:
            out.error(f"{p}.mode", f"{pool.tee} {mode} on {provider}: {refusal.reason}",
                      refusal.hint)
        elif modes:
            out.error(
                f"{p}.mode",
                f"{pool.tee} on {provider} is not offered in mode {mode!r}",
                f"use mode {' or '.join(modes)}",
            )
        else:
            note = catalogue.TEE_NOTES.get(pool.tee, "")
            out.error(
                f"{p}.tee",
                f"{catalogue.TEE_NAMES[pool.tee]} is not offered on {provider}",
                f"{pool.tee} is available on: {catalogue.where_available(pool.tee)}"
                + (f"; {note}" if note else "")
                + f". {provider} offers: {', '.join(catalogue.tees_for(provider))}",
            )
    if pool.tee == "none":
        if env == "production":
            out.error(
                f"{p}.tee",
                "tee 'none' has no hardware protection and is refused in production",
                "use snp, tdx or se, or set coco:environment to dev",
            )
        elif env == "staging":
            out.warn(f"{p}.tee", "tee 'none' has no hardware protection", "use it in dev only")
    if pool.tee == "sev":
        out.warn(
            f"{p}.tee",
            "legacy SEV has no integrity protection and no attestation report the KBS can verify",
            "prefer snp (GCP N2D)",
        )
    if offering and offering.caveat:
        out.warn(f"{p}.mode", offering.caveat)
    if offering and offering.runtime_class is None and offering.tee == "sgx":
        out.warn(f"{p}.tee", offering.note, "run SGX-enabled workloads on these nodes yourself")

    # which keys apply to the mode
    if mode != "bare-metal" and pool.hosts is not None:
        out.error(
            f"{p}.hosts",
            f"hosts only apply to bare-metal pools, not {mode}",
            "remove hosts, or set mode: bare-metal with provider: baremetal",
        )
    if mode != "nodes" and pool.count is not None:
        what = "one confidential VM per pod" if mode == "peer-pods" else "its hosts"
        out.error(
            f"{p}.count",
            f"count only applies to nodes pools; a {mode} pool has {what}",
            "remove count",
        )
    if mode == "bare-metal":
        if pool.hosts is None and pool.node_selector is None:
            out.error(
                p,
                "a bare-metal pool needs hosts or a nodeSelector",
                "list hosts (address, user, sshKey) to check and label over SSH, or set "
                "nodeSelector to use existing nodes",
            )
        elif pool.hosts is not None and pool.node_selector is not None:
            out.error(
                f"{p}.nodeSelector",
                "set either hosts or nodeSelector, not both",
                "hosts are labelled by the stack; nodeSelector reuses labelled nodes",
            )
        if cluster_provider == "k3s" and pool.node_selector is not None:
            out.error(
                f"{p}.nodeSelector",
                "a k3s cluster is built from hosts",
                "list the pool's hosts instead of a nodeSelector",
            )
        if pool.hosts == []:
            out.error(f"{p}.hosts", "hosts is empty", "list at least one host")
        for h, host in enumerate(pool.hosts or ()):
            if env == "production" and host.host_key is None:
                # without it the SSH client accepts any host key (pulumi-command ConnectionArgs
                # host_key: "If not provided, the host key will be ignored"), and the k3s join
                # token would go to whoever answers at that address
                out.error(
                    f"{p}.hosts[{h}].hostKey",
                    "production hosts need a pinned SSH host key",
                    f"set it to the output of: ssh-keyscan -t ed25519 {host.address} | cut -d' ' "
                    "-f2-",
                )
            elif env == "staging" and host.host_key is None:
                # the same exposure, allowed short of production but never silently
                token = ", and sends it the k3s join token" if cluster_provider == "k3s" else ""
                out.warn(
                    f"{p}.hosts[{h}].hostKey",
                    f"no pinned SSH host key: the stack runs its commands as root on whoever "
                    f"answers at {host.address}{token}",
                    f"pin it (required in production): ssh-keyscan -t ed25519 {host.address} | "
                    "cut -d' ' -f2-",
                )
        machine = versions.K3S_MACHINES.get(offering.arch) if offering else None
        if cluster_provider == "k3s" and offering and machine not in versions.K3S_BINARIES:
            why = versions.K3S_NO_BUILD.get(offering.arch)
            out.error(
                f"{p}.tee",
                f"k3s {versions.K3S_VERSION} has no pinned {offering.arch} binary for "
                f"{pool.tee} hosts" + (f": {why}" if why else ""),
                "join these hosts to a cluster you already run (coco:cluster.provider existing, "
                "with hosts)",
            )
    if mode == "nodes":
        if cluster_provider == "existing" and pool.node_selector is None:
            out.error(
                f"{p}.nodeSelector",
                "a nodes pool on an existing cluster must select the confidential nodes it reuses",
                "set nodeSelector to their labels, or let "
                "the stack create the cluster (aks, eks, gke)",
            )
        if cluster_provider in CLUSTER_POOL_PROVIDER and pool.node_selector is not None:
            out.error(
                f"{p}.nodeSelector",
                "the stack creates this pool's nodes",
                "remove nodeSelector; the stack labels the nodes it creates",
            )
    for h in range(len(pool.hosts or ())):
        key_path = f"{p}.hosts[{h}].sshKey"
        if key_path not in secure:
            out.error(
                key_path,
                "an SSH key must be stored as a secret, not in plain text",
                f"run: pulumi config set --secret --path '{key_path}' < id_ed25519",
            )

    # instance type
    instance_type = pool.instance_type
    if offering is not None:
        if not offering.families:
            if instance_type is not None:
                out.error(
                    f"{p}.instanceType",
                    "bare-metal pools run on their own hosts",
                    "remove instanceType",
                )
        elif instance_type is None:
            instance_type = offering.default_size
        else:
            family = catalogue.family_of(provider, instance_type)
            example = catalogue.SIZE_EXAMPLES[provider]
            if family is None:
                out.error(
                    f"{p}.instanceType",
                    f"{instance_type!r} is not {an(provider)} instance type",
                    f"write it like {example!r}",
                )
            elif family.lower() not in {f.lower() for f in offering.families}:
                out.error(
                    f"{p}.instanceType",
                    f"{instance_type!r} ({family}) is not a confidential {pool.tee} size on "
                    f"{provider}",
                    f"use a {', '.join(offering.families)} size, for example "
                    f"{offering.default_size!r}",
                )

    # region and zone
    region, zone = pool.region, pool.zone
    if provider == "baremetal":
        for key in ("region", "zone"):
            if getattr(pool, key) is not None:
                out.error(f"{p}.{key}", f"{key} does not apply to bare-metal hosts", "remove it")
    else:
        shapes_ok = check_region(out, f"{p}.region", provider, region, zone=False)
        shapes_ok &= check_region(out, f"{p}.zone", provider, zone, zone=True)
        explicit = region is not None or zone is not None
        if region is None and zone is not None and provider in ("gcp", "aws") and shapes_ok:
            region = zone[:-1] if provider == "aws" else zone.rsplit("-", 1)[0]
        if c is not None and region is None:
            region = c.location if provider == "azure" else c.region
            if region is None and provider == "gcp" and c.zone:
                region = c.zone.rsplit("-", 1)[0]
        if provider == "gcp" and zone is None and c is not None:
            zone = c.zone
        # a managed cluster without its location is reported once, at coco:cluster
        if mode == "peer-pods" and region is None and cluster_provider == "existing":
            out.error(
                f"{p}.region",
                f"{provider} peer pods need a region",
                f"set it, for example {catalogue.REGION_PATTERNS[provider][1]!r}",
            )
        if (
            provider == "gcp"
            and mode == "peer-pods"
            and zone is None
            and (cluster_provider == "existing" or (c is not None and c.region is not None))
        ):
            out.error(
                f"{p}.zone",
                "gcp peer pods need a zone (GCP_ZONE)",
                f"set it, for example {catalogue.ZONE_PATTERNS['gcp'][1]!r}",
            )
        if (
            explicit
            and shapes_ok
            and region
            and zone
            and pool.zone is not None  # a zone the user wrote, not the cluster's filled in
            and provider in ("gcp", "aws")
            and not zone.startswith(region + "-")
            and not (provider == "aws" and zone[:-1] == region)
        ):
            out.error(
                f"{p}.zone",
                f"zone {zone!r} is not in region {region!r}",
                "pick a zone of the region",
            )
        if offering and offering.regions and region and region not in offering.regions:
            out.warn(
                f"{p}.region",
                f"{pool.tee} {mode} is not known to be offered in {region}",
                f"known regions: {', '.join(offering.regions)}; check the provider's region list",
            )

    # AKS agent pools are named after the pool: lowercase letters and digits, a letter first, at
    # most 12 characters, and the stack's own system pool is "system"
    # (learn.microsoft.com/azure/aks/create-node-pools, "Limitations").
    if cluster_provider == "aks" and mode == "nodes" and (
        not re.match(r"^[a-z][a-z0-9]{0,11}$", pool.name) or pool.name == "system"
    ):
        out.error(
            f"{p}.name",
            f"{pool.name!r} cannot name an AKS node pool",
            "use at most 12 lowercase letters and digits, starting with a letter (not "
            "'system'), for example 'snpnodes'",
        )
    count = pool.count if pool.count is not None or mode != "nodes" else 1
    return pool.model_copy(
        update={
            "provider": provider,
            "mode": mode,
            "instance_type": instance_type,
            "region": region,
            "zone": zone,
            "count": count,
        }
    )


def nfd_with_peer_pods(out: Collector, runtime: Runtime | None, pools: list[NodePool]) -> None:
    """Node Feature Discovery cannot run next to peer pods: with the chart's NFD on, kata-deploy
    4.0.0 runs only on nodes NFD labels with the VMX or SVM CPU feature (templates/_helpers.tpl
    `kata-deploy.nfdVirtualizationNodeAffinity`, applied when node-feature-discovery.enabled;
    its own note defers the peer-pods exception to a future release). Cloud worker VMs expose
    no nested virtualisation, so kata-deploy never starts there and the remote shim the peer
    pods need is never installed.

    Only when the stack installs NFD: that nodeAffinity is keyed on the chart value, not on the
    NodeFeatureRule CRD kata-deploy's binary looks for, so an external NFD
    (nodeFeatureDiscovery: external, chart value false) leaves kata-deploy on the cloud workers
    (`kata-deploy.daemonsetAffinity`@4.0.0)."""
    if runtime is None or not runtime.installs_nfd:
        return
    peer = [i for i, p in enumerate(pools) if p.mode == "peer-pods"]
    if peer:
        names = ", ".join(f"coco:nodePools[{i}]" for i in peer)
        out.error(
            "coco:runtime.nodeFeatureDiscovery",
            f"Node Feature Discovery cannot be used with peer-pods pools ({names}): kata-deploy "
            "4.0.0 then installs only on nodes with VMX or SVM CPU features, which cloud worker "
            "VMs lack, so the remote shim is never installed",
            "remove nodeFeatureDiscovery (peer pods do not need it: the pod VMs are the TEEs, "
            "the stack labels the worker nodes), or keep the peer-pods pools in another stack",
        )
