"""Rules for `coco:cluster`: what each cluster provider needs and allows."""

from __future__ import annotations

from spec import catalogue
from spec.model import Cluster

from .base import Collector
from .clouds import check_region

# Which pool providers a cluster provider can host, and the default pool provider.
CLUSTER_POOL_PROVIDER = {"aks": "azure", "eks": "aws", "gke": "gcp", "k3s": "baremetal"}
ALLOWED_POOL_PROVIDERS = {
    "existing": ("azure", "aws", "gcp", "ibmcloud", "baremetal"),
    "aks": ("azure",),
    "eks": ("aws",),
    "gke": ("gcp",),
    "k3s": ("baremetal",),
}
# Which cluster location key each managed cluster reads, and which cloud's region shape it has.
CLUSTER_LOCATION = {
    "aks": ("location", "azure"),
    "eks": ("region", "aws"),
    "gke": ("region", "gcp"),
}
def check_cluster(out: Collector, c: Cluster, secure: frozenset[str]) -> None:
    p = "coco:cluster"
    managed = c.provider in CLUSTER_LOCATION
    for key, value in (("location", c.location), ("region", c.region), ("zone", c.zone)):
        if value is None:
            continue
        wanted = CLUSTER_LOCATION.get(c.provider, (None, None))[0]
        if c.provider == "gke" and key == "zone":
            continue
        if key != wanted:
            hint = (
                f"use {wanted}" if wanted else "remove it: the stack does not create this cluster"
            )
            out.error(
                f"{p}.{key}", f"{key} does not apply to cluster provider {c.provider!r}", hint
            )
    if managed:
        key, cloud = CLUSTER_LOCATION[c.provider]
        if c.provider == "gke" and c.region is None and c.zone is None:
            out.error(
                f"{p}.region",
                "gke needs a region or a zone",
                "set region (regional cluster) or zone (zonal cluster), for example europe-west4",
            )
        elif c.provider != "gke" and getattr(c, key) is None:
            example = catalogue.REGION_PATTERNS[cloud][1]
            out.error(
                f"{p}.{key}", f"{c.provider} needs a {key}", f"set it, for example {example!r}"
            )
        check_region(out, f"{p}.{key}", cloud, getattr(c, key), zone=False)
        if c.provider == "gke":
            check_region(out, f"{p}.zone", "gcp", c.zone, zone=True)
            if c.region and c.zone and not c.zone.startswith(c.region + "-"):
                out.error(
                    f"{p}.zone",
                    f"zone {c.zone!r} is not in region {c.region!r}",
                    "pick a zone of the region, or drop region",
                )
    else:
        if c.system_pool is not None:
            out.error(
                f"{p}.systemPool",
                f"systemPool does not apply to cluster provider {c.provider!r}",
                "remove it: only aks, eks and gke clusters get a system pool",
            )
    owner = {"attach": ("aks", "eks", "gke"), "resourceGroup": ("aks",), "project": ("gke",)}
    for key, providers in owner.items():
        value = getattr(c, "resource_group" if key == "resourceGroup" else key)
        if value not in (None, False) and c.provider not in providers:
            out.error(
                f"{p}.{key}",
                f"{key} does not apply to cluster provider {c.provider!r}",
                f"remove it: it applies to {' and '.join(providers)} clusters",
            )
    if c.attach and c.provider in owner["attach"] and c.name is None:
        out.error(
            f"{p}.name",
            f"attach: true needs the name of the existing {c.provider} cluster",
            "set name to the cluster's name",
        )
    if c.attach and c.provider == "aks" and c.resource_group is None:
        out.error(
            f"{p}.resourceGroup",
            "attach: true needs the resource group of the existing AKS cluster",
            "set resourceGroup, as shown by: az aks list -o table",
        )
    if c.attach and c.system_pool is not None:
        out.error(
            f"{p}.systemPool",
            "systemPool does not apply to an attached cluster",
            "remove it: the attached cluster keeps its own system pool",
        )
    if c.provider == "gke" and c.project is None:
        out.error(
            f"{p}.project",
            "gke needs the GCP project id",
            "set it, for example 'my-project-123456' (gcloud config get-value project)",
        )
    if c.provider == "k3s" and c.server is None:
        out.error(
            f"{p}.server",
            "a k3s cluster needs a server",
            "set it to the address of one of the pools' hosts, for example '10.0.0.11': that "
            "host runs the k3s server and the other hosts join it",
        )
    if c.server is not None and c.provider != "k3s":
        out.error(
            f"{p}.server",
            f"server does not apply to cluster provider {c.provider!r}",
            "remove it: it names the host that runs the k3s server (provider k3s)",
        )
    if c.provider != "existing":
        for key in ("context", "kubeconfig"):
            if getattr(c, key) is not None:
                out.error(
                    f"{p}.{key}",
                    f"{key} only applies to provider 'existing'",
                    "remove it: the stack builds the kubeconfig of clusters it creates",
                )
    elif c.context is not None and c.kubeconfig is not None:
        out.error(
            f"{p}.kubeconfig",
            "set either context or kubeconfig, not both",
            "keep kubeconfig (a secret) for CI, context for a workstation",
        )
    if c.kubeconfig is not None and f"{p}.kubeconfig" not in secure:
        out.error(
            f"{p}.kubeconfig",
            "a kubeconfig must be stored as a secret, not in plain text",
            "run: pulumi config set --secret --path 'coco:cluster.kubeconfig' < kubeconfig",
        )
