"""Rules for where pools run: region and zone names, one peer-pods cloud per stack, pools in
their managed cluster's region, pod-VM subnets and sizes, IBM Cloud pool settings."""

from __future__ import annotations

import re

from spec import catalogue, labels
from spec.model import Cluster, NodePool

from .base import Collector, an


def check_region(out: Collector, path: str, provider: str, value: str | None, zone: bool) -> bool:
    """Check a region or zone name's shape; True when it is absent or well formed."""
    if value is None:
        return True
    table = catalogue.ZONE_PATTERNS if zone else catalogue.REGION_PATTERNS
    key = "zone" if zone else "region"
    if provider not in table:
        out.error(path, f"{key} does not apply to {provider} pools", "remove this key")
        return False
    pattern, example = table[provider]
    if not pattern.match(value):
        kind = "zone" if zone else ("location" if provider == "azure" else "region")
        out.error(
            path, f"{value!r} is not {an(provider)} {kind} name", f"write it like {example!r}"
        )
        return False
    return True


def ibmcloud_pools(
    out: Collector, indexed: list[tuple[int, NodePool]], secure: frozenset[str]
) -> None:
    """IBM Cloud peer pods (components.ibmcloud): the ids of an existing VPC, a zone, the API
    key as a secret, and one VPC configuration for all pools (cloud-api-adaptor reads one
    IBMCLOUD_* set per cluster, src/cloud-providers/ibmcloud/manager.go@v0.22.0)."""
    first: tuple[int, NodePool] | None = None
    for index, pool in indexed:
        p = f"coco:nodePools[{index}]"
        if pool.provider != "ibmcloud":
            if pool.ibmcloud is not None:
                out.error(
                    f"{p}.ibmcloud",
                    f"ibmcloud keys do not apply to {pool.provider} pools",
                    "remove ibmcloud, or set provider: ibmcloud",
                )
            continue
        if pool.mode != "peer-pods":
            continue  # the catalogue offers ibmcloud se peer-pods only (reported at mode)
        if pool.ibmcloud is None:
            out.error(
                f"{p}.ibmcloud",
                "ibmcloud peer pods need the ids of an existing VPC, its subnet, the Secure "
                "Execution pod-VM image and the resource group",
                "add ibmcloud: {vpcId, subnetId, imageId, resourceGroupId, apiKey}, the API key "
                f"with: pulumi config set --secret --path '{p}.ibmcloud.apiKey' API_KEY",
            )
            continue
        if pool.zone is None:
            out.error(
                f"{p}.zone",
                "ibmcloud peer pods need a zone (IBMCLOUD_ZONE)",
                f"set it, for example {catalogue.ZONE_PATTERNS['ibmcloud'][1]!r}",
            )
        elif pool.region is not None and not pool.zone.startswith(pool.region + "-"):
            out.error(
                f"{p}.zone",
                f"zone {pool.zone!r} is not in region {pool.region!r}",
                "pick a zone of the region",
            )
        key = f"{p}.ibmcloud.apiKey"
        if key not in secure:
            out.error(
                key,
                "an API key must be stored as a secret, not in plain text",
                f"run: pulumi config set --secret --path '{key}' API_KEY",
            )
        if first is None:
            first = (index, pool)
        elif (pool.ibmcloud, pool.region, pool.zone) != (
            first[1].ibmcloud,
            first[1].region,
            first[1].zone,
        ):
            out.error(
                f"{p}.ibmcloud",
                f"differs from coco:nodePools[{first[0]}]: cloud-api-adaptor creates every pod "
                "VM with one VPC configuration",
                "give every ibmcloud pool the same ibmcloud keys, region and zone",
            )


def one_peer_pods_cloud(out: Collector, pools: list[NodePool]) -> None:
    """cloud-api-adaptor serves one provider per cluster (the peerpods chart's single
    `provider` value, values.yaml@v0.22.0), so peer pods of two clouds cannot share a stack."""
    peer_providers = {p.provider or "" for p in pools if p.mode == "peer-pods"}
    if len(peer_providers) > 1:
        index = max(i for i, p in enumerate(pools) if p.mode == "peer-pods")
        out.error(
            f"coco:nodePools[{index}].provider",
            f"peer pods of several clouds in one cluster ({', '.join(sorted(peer_providers))})",
            "cloud-api-adaptor serves one provider per cluster: keep one cloud's peer pods per "
            "stack",
        )


def _cluster_key_is_wrong(
    out: Collector, cloud: str, key: str, value: str, pool_regions: list[str], what: str
) -> bool:
    """Whether a cluster/pool region mismatch is a mistake in the cluster's key, reported there
    once (one mistake, one error) instead of at every pool: when the cluster's value is
    malformed (check_cluster reported it already), or when it names no region the catalogue
    knows for the cloud while every mismatching pool names a known one, or when two or more
    pools agree on one region the cluster does not name."""
    if not pool_regions:
        return False
    if not catalogue.REGION_PATTERNS[cloud][0].match(value):
        return True  # malformed: already an error at the cluster's key
    known = {r for o in catalogue.OFFERINGS if o.provider == cloud for r in o.regions}
    agreed = sorted(set(pool_regions))
    if value in known or len(agreed) != 1:
        return False
    if not (agreed[0] in known or len(pool_regions) >= 2):
        return False
    out.error(
        f"coco:cluster.{key}",
        f"{key} {value!r} is not a {what} this stack's pools run in: they are in {agreed[0]!r}",
        f"did you mean {agreed[0]!r}? the pools of a managed cluster run in its {key}",
    )
    return True


def aws_pools_in_cluster_region(
    out: Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
) -> None:
    """An EKS cluster's node groups and pod VMs live in its VPC, so in its region. `pools`:
    (index as written, resolved pool, pool as written: which of region and zone was set)."""
    if c is None or c.provider != "eks" or c.region is None:
        return
    elsewhere = [p.region for _, p, _ in pools
                 if p.provider == "aws" and p.region and p.region != c.region]
    if _cluster_key_is_wrong(out, "aws", "region", c.region, elsewhere, "region"):
        return
    for i, p, written in pools:
        if p.provider == "aws" and p.region and p.region != c.region:
            key = "region" if written.region is not None else "zone"
            out.error(
                f"coco:nodePools[{i}].{key}",
                f"{key} {getattr(written, key)!r} is not in the EKS cluster's region {c.region!r}",
                f"use a zone of {c.region} (for example {c.region}a), or remove {key}",
            )


# The subnet ids CAA takes as AWS_SUBNET_ID and AZURE_SUBNET_ID (src/cloud-providers/aws and
# azure manager.go@v0.22.0): an EC2 subnet id (8 or 17 hex digits), and an Azure subnet resource id.
_POD_VM_SUBNET = {
    "aws": (re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$"), "subnet-0123456789abcdef0"),
    "azure": (
        re.compile(
            r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/"
            r"virtualNetworks/[^/]+/subnets/[^/]+$",
            re.IGNORECASE,
        ),
        "/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/VNET/"
        "subnets/podvms",
    ),
}


def pod_vm_subnets(
    out: Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
) -> None:
    """`podVmSubnet` names the one subnet CAA puts pod VMs in (AWS_SUBNET_ID, AZURE_SUBNET_ID:
    one per cluster), for peer pods on an attached EKS or AKS cluster; a stack-made cluster gets
    a pod-VM subnet of its own. `pools` as for aws_pools_in_cluster_region."""
    chosen: dict[str, tuple[int, str]] = {}
    for i, p, _ in pools:
        if p.pod_vm_subnet is None:
            continue
        key = f"coco:nodePools[{i}].podVmSubnet"
        if p.mode != "peer-pods" or p.provider not in _POD_VM_SUBNET:
            out.error(key, "only aws and azure peer-pods pools take a pod-VM subnet",
                      "remove podVmSubnet")
            continue
        shape, example = _POD_VM_SUBNET[p.provider]
        if not shape.match(p.pod_vm_subnet):
            out.error(key, f"{p.pod_vm_subnet!r} is not an {p.provider} subnet id",
                      f"use the subnet's id, for example {example!r}")
            continue
        if c is None or not c.attach:
            out.warn(key, "not used: the stack creates the cluster and a pod-VM subnet of its own",
                     "remove podVmSubnet, or attach to an existing cluster (coco:cluster.attach)")
        first = chosen.setdefault(p.provider, (i, p.pod_vm_subnet))
        if first[1] != p.pod_vm_subnet:
            out.error(key, f"cloud-api-adaptor takes one pod-VM subnet, and "
                      f"coco:nodePools[{first[0]}].podVmSubnet names another",
                      "give every peer-pods pool the same podVmSubnet")


def aks_pools_in_cluster_location(
    out: Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
) -> None:
    """An AKS cluster's node pools and its pod-VM subnet live in the cluster's virtual network,
    so in its location (components.azure creates them all at cluster.location), and
    AZURE_REGION, taken from the pool, must name it too. `pools` as for
    aws_pools_in_cluster_region; a malformed region is reported once, by check_pool."""
    if c is None or c.provider != "aks" or c.location is None:
        return
    shape = catalogue.REGION_PATTERNS["azure"][0]
    elsewhere = [
        w.region for _, p, w in pools
        if p.provider == "azure" and w.region and shape.match(w.region) and w.region != c.location
    ]
    if _cluster_key_is_wrong(out, "azure", "location", c.location, elsewhere, "location"):
        return
    for i, p, written in pools:
        if p.provider != "azure" or written.region is None or not shape.match(written.region):
            continue
        if written.region != c.location:
            out.error(
                f"coco:nodePools[{i}].region",
                f"region {written.region!r} is not the AKS cluster's location {c.location!r}",
                f"remove region (the pool takes {c.location!r}), or set coco:cluster.location "
                f"to {written.region!r} if the whole cluster belongs there",
            )


def gke_pools_in_cluster_region(
    out: Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
) -> None:
    """A GKE cluster's node pools (node_locations) and pod VMs (GCP_ZONE, on the cluster's
    regional subnetwork: components.gcp.cluster) live in the cluster's region, a zonal
    cluster's being its zone's. A zone outside it fails here as a region mismatch: the pool's
    region is its zone's, and a zone outside a written region is reported by check_pool, as is a
    malformed region or zone."""
    if c is None or c.provider != "gke":
        return
    region = c.region or (c.zone.rsplit("-", 1)[0] if c.zone else None)
    if region is None:
        return
    elsewhere = [p.region for _, p, _ in pools
                 if p.provider == "gcp" and p.region and p.region != region]
    if c.region and _cluster_key_is_wrong(out, "gcp", "region", c.region, elsewhere, "region"):
        return
    if c.zone and not c.region and elsewhere and not catalogue.ZONE_PATTERNS["gcp"][0].match(
        c.zone
    ):
        return  # a malformed cluster zone: already an error at coco:cluster.zone
    for i, p, written in pools:
        if p.provider != "gcp" or not p.region or p.region == region:
            continue
        key = "region" if written.region is not None else "zone"
        table = catalogue.REGION_PATTERNS if key == "region" else catalogue.ZONE_PATTERNS
        if not table["gcp"][0].match(getattr(written, key)):
            continue
        relation = "the" if key == "region" else "in the"
        out.error(
            f"coco:nodePools[{i}].{key}",
            f"{key} {getattr(written, key)!r} is not {relation} GKE cluster's region {region!r}",
            f"remove {key} (the pool takes the cluster's), or use a zone of {region}, for "
            f"example {region}-b",
        )


def one_aws_podvm_size(out: Collector, pools: list[tuple[int, NodePool, NodePool]]) -> None:
    """AWS pod VMs start from one launch template (components/aws/peerpods.py): with
    USE_PODVM_LAUNCHTEMPLATE, cloud-api-adaptor v0.22.0 passes no instance type of its own
    (src/cloud-providers/aws/provider.go CreateInstance), so every pod VM gets the template's."""
    first: tuple[int, str] | None = None
    for i, p, _ in pools:
        if p.provider != "aws" or p.mode != "peer-pods" or not p.instance_type:
            continue
        if first is None:
            first = (i, p.instance_type)
        elif p.instance_type != first[1]:
            out.error(
                f"coco:nodePools[{i}].instanceType",
                f"aws peer-pods pools share one pod-VM launch template, which has "
                f"coco:nodePools[{first[0]}]'s {first[1]!r}",
                f"use {first[1]!r} here too, or put pods that need {p.instance_type!r} in a "
                "nodes-mode pool",
            )


def gcp_disk_types(out: Collector, pools: list[tuple[int, NodePool, NodePool]]) -> None:
    """The boot disk of a GCP pool's VMs must be a type its machine series accepts
    (catalogue.GCP_BOOT_DISK_TYPES): C3 and C3D refuse CAA's default pd-standard, C4, C4D and
    N4 take Hyperdisk only. cloud-api-adaptor boots every pod VM from one GCP_DISK_TYPE
    (src/cloud-providers/gcp/manager.go@v0.22.0), so the gcp peer-pods pools need one type
    they all accept. `pools` as for aws_pools_in_cluster_region."""
    peer: list[tuple[int, NodePool, tuple[str, ...]]] = []
    for i, p, _ in pools:
        key = f"coco:nodePools[{i}].diskType"
        if p.disk_type is not None and p.provider != "gcp":
            out.error(key, f"diskType applies to gcp pools, not {p.provider}", "remove diskType")
            continue
        if p.provider != "gcp" or not p.instance_type:
            continue
        accepted = catalogue.gcp_disk_types(p.instance_type)
        if accepted is None:
            continue  # not a confidential machine series: reported at instanceType
        family = catalogue.family_of("gcp", p.instance_type)
        if p.disk_type is not None and p.disk_type not in accepted:
            out.error(
                key,
                f"{p.instance_type!r} ({family}) cannot boot from a {p.disk_type!r} disk",
                f"use {' or '.join(accepted)} with {family} machines, or remove diskType (the "
                f"default is {accepted[0]})",
            )
            continue
        if (
            p.disk_type is not None
            and p.tee == "tdx"
            and p.disk_type not in catalogue.GCP_TDX_BOOT_DISK_TYPES
        ):
            out.warn(
                key,
                f"TDX confidential VMs are documented with balanced disks only, not "
                f"{p.disk_type!r}",
                f"prefer {' or '.join(catalogue.GCP_TDX_BOOT_DISK_TYPES)}",
            )
        if p.mode == "peer-pods":
            peer.append((i, p, accepted))
    chosen = [(i, p.disk_type) for i, p, _ in peer if p.disk_type is not None]
    if chosen:
        first, disk = chosen[0]
        for i, p, accepted in peer:
            if p.disk_type is not None and p.disk_type != disk:
                out.error(
                    f"coco:nodePools[{i}].diskType",
                    f"cloud-api-adaptor boots every pod VM from one GCP_DISK_TYPE, and "
                    f"coco:nodePools[{first}].diskType is {disk!r}",
                    "give every gcp peer-pods pool the same diskType",
                )
            elif p.disk_type is None and disk not in accepted:
                out.error(
                    f"coco:nodePools[{i}].instanceType",
                    f"every pod VM boots from coco:nodePools[{first}].diskType {disk!r}, which "
                    f"{p.instance_type!r} cannot boot from",
                    f"use a machine series that accepts {disk!r}, or a diskType every gcp "
                    "peer-pods pool accepts",
                )
    elif peer and not catalogue.gcp_common_disk_type([p.instance_type or "" for _, p, _ in peer]):
        i, p, _ = peer[-1]
        kinds = "; ".join(
            f"{q.instance_type}: {', '.join(a)}" for _, q, a in sorted(peer, key=lambda x: x[0])
        )
        out.error(
            f"coco:nodePools[{i}].instanceType",
            "cloud-api-adaptor boots every pod VM from one GCP_DISK_TYPE, and the gcp "
            f"peer-pods pools' machine series share no boot disk type ({kinds})",
            "use machine series with a boot disk type in common (Hyperdisk-only c4d next to "
            "n2d cannot work), or put one of them in another stack",
        )


# How to label a cluster's workers for cloud-api-adaptor, per pool provider: each managed
# service labels its nodes with their node pool (IKS/ROKS: ibm-cloud.kubernetes.io/
# worker-pool-name, cloud.ibm.com/docs/containers "worker node labels"; GKE:
# cloud.google.com/gke-nodepool; AKS: agentpool; EKS: eks.amazonaws.com/nodegroup).
_WORKER_POOL_LABEL = {
    "ibmcloud": ("ibm-cloud.kubernetes.io/worker-pool-name", "default"),
    "gcp": ("cloud.google.com/gke-nodepool", "POOL"),
    "azure": ("agentpool", "POOL"),
    "aws": ("eks.amazonaws.com/nodegroup", "NODEGROUP"),
}


def worker_label_command(provider: str | None) -> str:
    """The `kubectl label` line that marks a pool of workers for cloud-api-adaptor at once; the
    label lives on the Node objects only, so it is lost when the cloud recreates a node."""
    label, example = _WORKER_POOL_LABEL.get(provider or "", ("", ""))
    nodes = f"-l {label}={example}" if label else "NODE_NAME..."
    return f"kubectl label nodes {nodes} {labels.WORKER}="


# The node-pool-level way to label workers, which the managed service re-applies to every node it
# (re)creates: GKE auto-repair and upgrades, AKS node-image upgrades, IKS/ROKS worker
# replacement recreate nodes and drop labels set with kubectl.
#   GKE: `gcloud container node-pools update --node-labels` sets the pool's Kubernetes labels,
#     replacing those set before (cloud.google.com/kubernetes-engine/docs/how-to/
#     update-existing-nodepools: "the desired new node labels"; kept for future upgrades and
#     new nodes of the pool).
#   AKS: `az aks nodepool update --labels` replaces the pool's labels (learn.microsoft.com/azure/
#     aks/use-labels); the Azure CLI takes an empty value (azure-cli acs/_validators.py
#     validate_label: "a valid label must be an empty string or ...").
#   IKS/ROKS: `ibmcloud ks worker-pool label set` replaces the pool's custom labels
#     (cloud.ibm.com/docs/containers "Labeling worker pools": "all the existing custom labels are
#     replaced").
#   EKS: the EKS API refuses empty label values (UpdateLabelsPayload, components.aws.userdata),
#     so `aws eks update-nodegroup-config --labels` cannot set node.kubernetes.io/worker=; a
#     managed node group takes it through its launch template's kubelet --node-labels, as the
#     stack does for the system group it creates.
_WORKER_POOL_COMMAND: dict[str, tuple[str | None, str]] = {
    "gcp": (
        "gcloud container node-pools update POOL --cluster=CLUSTER --location=LOCATION "
        f"--node-labels={labels.WORKER}=",
        "it replaces the pool's Kubernetes labels: append the ones to keep as ,KEY=VALUE",
    ),
    "azure": (
        "az aks nodepool update --resource-group RG --cluster-name CLUSTER --name POOL "
        f"--labels {labels.WORKER}=",
        "it replaces the pool's labels: add the ones to keep as KEY=VALUE",
    ),
    "ibmcloud": (
        "ibmcloud ks worker-pool label set --cluster CLUSTER --worker-pool POOL "
        f"--label {labels.WORKER}=",
        "it replaces the pool's custom labels: add the ones to keep as --label KEY=VALUE",
    ),
    "aws": (
        None,
        "the EKS API refuses empty label values, so give the managed node group's launch "
        f"template the kubelet flag --node-labels={labels.WORKER}= (a nodeadm NodeConfig, as "
        "docs/aws.md shows for the system group the stack creates)",
    ),
}


def worker_pool_label_command(provider: str | None) -> str | None:
    """The node-pool-level way to label workers for cloud-api-adaptor, which survives the cloud
    replacing nodes; None where there is no managed node pool to label."""
    if (provider or "") not in _WORKER_POOL_COMMAND:
        return None
    command, note = _WORKER_POOL_COMMAND[provider or ""]
    return f"`{command}` ({note})" if command else note


def _worker_label_hint(provider: str | None) -> str:
    now = f"`{worker_label_command(provider)}`"
    durable = worker_pool_label_command(provider)
    if durable is None:
        return f"label the workers that should run cloud-api-adaptor ({now})"
    return (
        "label the node pool that should run cloud-api-adaptor, so that nodes the cloud "
        f"recreates (auto-repair, upgrades, worker replacement) keep the label: {durable}; "
        f"{now} labels the current nodes at once but is lost when a node is recreated"
    )


# GKE labels every node with its image's OS (cloud.google.com/gke-os-distribution: cos or
# ubuntu; GKE node labels, cloud.google.com/kubernetes-engine/docs/concepts/node-images). The
# default image, Container-Optimized OS, has a read-only root where kata-deploy cannot install
# the remote shim: CAA's own GKE provisioner makes UBUNTU_CONTAINERD pools ("Default CO OS has a
# ro fs.", src/cloud-api-adaptor/test/provisioner/gcp/cluster.go@v0.22.0), and so does the
# stack for pools it creates (components.gcp.cluster).
GKE_OS_LABEL = "cloud.google.com/gke-os-distribution"
GKE_UBUNTU = "ubuntu"


def attached_peer_pod_workers(
    out: Collector, pools: list[tuple[int, NodePool]], c: Cluster | None
) -> None:
    """cloud-api-adaptor's daemonset runs only on nodes labelled node.kubernetes.io/worker=""
    (peerpods chart templates/daemonset.yaml@v0.22.0, a fixed nodeSelector), and the
    kata-remote RuntimeClass selects the same label (spec.runtime_plan). A cluster the stack
    creates gets it on its system pool (components.clouds.peer_pod_worker_labels); on a cluster
    the stack attaches to (provider existing, or attach: true) nothing sets it, so no pod of
    the class would ever be scheduled. The stack cannot label nodes it does not know (their
    names change as the cloud replaces workers), so the user labels them and confirms it with
    the pool's nodeSelector.
    On an attached GKE cluster those workers must also run Ubuntu (GKE_OS_LABEL), confirmed the
    same way: the stack chooses the image only of pools it creates."""
    if c is None or not (c.provider == "existing" or c.attach):
        return
    gke = c.provider == "gke"
    for i, p in pools:
        if p.mode != "peer-pods":
            continue
        selector = p.node_selector or {}
        messages: list[str] = []
        hints: list[str] = []
        if selector.get(labels.WORKER) != "":
            where = (
                "an existing cluster" if c.provider == "existing" else f"an attached {c.provider}"
            )
            messages.append(
                f"peer pods on {where} need worker nodes labelled {labels.WORKER}=\"\": "
                "cloud-api-adaptor's daemonset and the kata-remote RuntimeClass run only there, "
                "and the stack labels only nodes it creates"
            )
            hints.append(
                f"{_worker_label_hint(p.provider)}; then set nodeSelector: "
                f"{{{labels.WORKER}: \"\"}} on this pool to confirm"
            )
        if gke and selector.get(GKE_OS_LABEL) != GKE_UBUNTU:
            messages.append(
                "peer pods on an attached gke cluster need those workers on Ubuntu: the default "
                "node image, Container-Optimized OS, has a read-only root where kata-deploy "
                "cannot install the remote shim"
            )
            hints.append(
                "run cloud-api-adaptor on a node pool with the Ubuntu image type "
                "UBUNTU_CONTAINERD (`gcloud container node-pools create POOL --cluster=CLUSTER "
                "--location=LOCATION --image-type=UBUNTU_CONTAINERD "
                f"--node-labels={labels.WORKER}=`), then add "
                f"{GKE_OS_LABEL}: {GKE_UBUNTU} to this pool's nodeSelector to confirm"
            )
        if messages:
            out.error(f"coco:nodePools[{i}].nodeSelector", "; and ".join(messages),
                      "; and ".join(hints))
