"""Rules across fields and against the TEE catalogue; resolves the defaults of each pool.

Called by `components.validate` with the sections that passed type checking (None for those that
did not). Appends a `ConfigIssue` per problem and returns the resolved `Spec`, or None when a
section is missing. Every message says what is wrong and what to do instead.
"""

from __future__ import annotations

import os
import re
from typing import Any

from . import catalogue, versions
from .errors import ConfigIssue
from .spec import Cluster, Image, Kbs, KbsResource, NodePool, Spec

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
BUILTIN_RESOURCE_POLICIES = ("affirming", "allow-all")


class _Collector:
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues

    def error(self, path: str, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(path, message, hint))

    def warn(self, path: str, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(path, message, hint, "warning"))


def _check_region(out: _Collector, path: str, provider: str, value: str | None, zone: bool) -> bool:
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
            path, f"{value!r} is not {_an(provider)} {kind} name", f"write it like {example!r}"
        )
        return False
    return True


def _an(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _cluster(out: _Collector, c: Cluster, secure: frozenset[str]) -> None:
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
        _check_region(out, f"{p}.{key}", cloud, getattr(c, key), zone=False)
        if c.provider == "gke":
            _check_region(out, f"{p}.zone", "gcp", c.zone, zone=True)
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


def _pool(
    out: _Collector,
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
    if offering is None:
        modes = catalogue.modes_for(provider, pool.tee)
        if modes:
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
        machine = versions.K3S_MACHINES.get(offering.arch) if offering else None
        if cluster_provider == "k3s" and offering and machine not in versions.K3S_BINARIES:
            out.error(
                f"{p}.tee",
                f"k3s {versions.K3S_VERSION} has no pinned {offering.arch} binary for "
                f"{pool.tee} hosts",
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
                    f"{instance_type!r} is not {_an(provider)} instance type",
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
        shapes_ok = _check_region(out, f"{p}.region", provider, region, zone=False)
        shapes_ok &= _check_region(out, f"{p}.zone", provider, zone, zone=True)
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


def _policy(
    out: _Collector, path: str, value: str, words: tuple[str, ...], base: str | None
) -> None:
    if value in words:
        return
    if not value.endswith(".rego"):
        out.error(
            path,
            f"{value!r} is neither {' nor '.join(words)} nor a .rego file",
            f"use {' or '.join(words)}, or a path to a Rego policy file",
        )
        return
    full = value if os.path.isabs(value) or base is None else os.path.join(base, value)
    if not os.path.isfile(full):
        out.error(
            path,
            f"policy file {value!r} does not exist",
            "paths are relative to the project directory (where Pulumi.yaml is)",
        )


def _reference_values(out: _Collector, k: Kbs, pools: list[NodePool]) -> None:
    """A reference value the policy never reads silently turns an attestation result into a
    warning (upstream pain point), so names are checked against the default policy's."""
    from .kbs_config import reference_value_problem
    known = list(catalogue.DEFAULT_POLICY_REFERENCE_VALUES)
    used = {
        n
        for x in pools
        if (o := catalogue.find(x.provider or "", x.tee, x.mode or "")) is not None
        for n in o.reference_values
    }
    custom_policy = k.attestation_policy != "default"
    for name, value in sorted(k.reference_values.items()):
        path = f"coco:kbs.referenceValues.{name}"
        if name not in known:
            typo = _did_you_mean(name, known)
            if typo and not custom_policy:
                out.error(
                    path,
                    f"{name!r} is not read by the attestation policy",
                    f"{typo}the default policy reads: {', '.join(known)}",
                )
            else:
                out.warn(
                    path,
                    f"{name!r} is not read by the default attestation policy",
                    "keep it only if your own attestation policy reads it",
                )
        elif pools and name not in used:
            out.warn(
                path,
                f"no pool of this stack reports evidence that reads {name!r}",
                "remove it, or check the pools' TEEs",
            )
        if value == [] or value == "" or (isinstance(value, list) and "" in value):
            out.error(
                path,
                "needs a value or a non-empty list of values",
                "list the accepted values (numbers stay numbers: SNP TCB versions are "
                "compared as numbers)",
            )
        elif problem := reference_value_problem(name, value):
            # the name's shape, or a list where the policy compares one value with ==
            out.error(
                path,
                problem,
                "use letters, digits and _ like snp_launch_measurement, and give the names "
                "the policy compares with == (snp_smt_enabled, major_version, ...) one value",
            )


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _kbs(
    out: _Collector,
    k: Kbs,
    env: str | None,
    secure: frozenset[str],
    base: str | None,
    pools: list[NodePool],
    items: list[KbsResource | None],
) -> None:
    """KBS rules; `items` are the resources as written (None where invalid), so indices in
    messages are the user's."""
    p = "coco:kbs"
    if not k.enabled:
        if k.resources:
            out.error(
                f"{p}.resources",
                "resources are set but the KBS is disabled",
                "set coco:kbs.enabled: true, or remove the resources",
            )
        if any(
            (o := catalogue.find(x.provider or "", x.tee, x.mode or "")) is not None and o.evidence
            for x in pools
        ):
            out.warn(
                f"{p}.enabled",
                "no KBS: guests cannot get attestation-gated secrets",
                "enable the KBS, or point the pools at a KBS you run elsewhere",
            )
        return
    if k.expose == "ingress" and k.hostname is None:
        out.error(
            f"{p}.hostname",
            "expose: ingress needs a hostname",
            "set hostname, for example 'kbs.example.com'",
        )
    if k.expose == "ingress" and k.insecure_http:
        out.error(
            f"{p}.insecureHttp",
            "the ingress passes TLS through to the KBS, which would be serving plain HTTP",
            "drop insecureHttp, or expose the KBS with nodeport or loadbalancer",
        )
    if k.expose == "nodeport" and k.hostname is not None and k.node_port is None:
        out.error(
            f"{p}.nodePort",
            "expose: nodeport with a hostname needs a fixed node port: Kubernetes would pick a "
            "random one, and the KBS URL guests are given could not name it",
            "set nodePort to a free port from 30000 to 32767, for example 30443",
        )
    if k.node_port is not None and k.expose != "nodeport":
        out.warn(f"{p}.nodePort", f"not used with expose: {k.expose}", "remove nodePort")
    # the runtime's namespace is components.runtime.NAMESPACE (not imported: it loads Pulumi)
    taken = {"coco-system": "the CoCo runtime", versions.PEERPODS_NAMESPACE: "peer pods"}
    if k.namespace in taken or k.namespace == "default" or k.namespace.startswith("kube-"):
        owner = taken.get(k.namespace, "Kubernetes")
        out.error(
            f"{p}.namespace",
            f"{k.namespace!r} belongs to {owner}; the KBS needs a namespace of its own (it "
            "labels it for restricted pod security)",
            "use the default coco-kbs, or another name of your own",
        )
    seen: dict[str, int] = {}
    for i, res in enumerate(items):
        if res is None:
            continue
        if res.path in seen:
            out.error(
                f"{p}.resources[{i}].path",
                f"{res.path!r} is already defined at coco:kbs.resources[{seen[res.path]}]",
                "give each resource its own path",
            )
        seen.setdefault(res.path, i)
        if f"{p}.resources[{i}].value" not in secure:
            out.warn(
                f"{p}.resources[{i}].value",
                "stored in plain text in the stack file (it is still handled as a secret)",
                f"run: pulumi config set --secret --path 'coco:kbs.resources[{i}].value' VALUE",
            )
    _reference_values(out, k, pools)
    _policy(out, f"{p}.resourcePolicy", k.resource_policy, BUILTIN_RESOURCE_POLICIES, base)
    _policy(out, f"{p}.attestationPolicy", k.attestation_policy, ("default",), base)
    # User policy files: read now, so a broken file stops the stack before anything is
    # registered. Both the KBS resource policy (data.policy.allow) and the attestation
    # service's EAR policy (data.policy.trust_claims) live in package "policy"
    # (trustee kbs/src/api_server.rs, attestation-service/src/ear_token/broker.rs@v0.21.0).
    from .kbs_config import rego_problem

    for key, value in (
        ("resourcePolicy", k.resource_policy),
        ("attestationPolicy", k.attestation_policy),
    ):
        if not value.endswith(".rego"):
            continue
        full = value if os.path.isabs(value) or base is None else os.path.join(base, value)
        if not os.path.isfile(full):
            continue  # reported by _policy
        try:
            with open(full, encoding="utf-8") as handle:
                problem = rego_problem(handle.read(), "policy")
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"cannot be read as UTF-8 text ({exc.__class__.__name__})"
        if problem:
            out.error(
                f"{p}.{key}",
                f"policy file {value!r} {problem}",
                "write a Rego policy that starts with 'package policy'",
            )
    if k.resource_policy == "allow-all":
        if env == "production":
            out.error(
                f"{p}.resourcePolicy",
                "allow-all releases secrets without checking the "
                "attestation result; refused in production",
                "use affirming",
            )
        else:
            out.warn(
                f"{p}.resourcePolicy",
                "allow-all releases secrets without checking the attestation result",
                "use affirming outside development",
            )
    if k.insecure_http:
        if env == "production":
            out.error(
                f"{p}.insecureHttp",
                "plain HTTP is refused in production",
                "remove insecureHttp; the KBS serves HTTPS with the stack's CA",
            )
        else:
            out.warn(f"{p}.insecureHttp", "the KBS serves plain HTTP", "use it in dev only")


def ibmcloud_pools(
    out: _Collector, indexed: list[tuple[int, NodePool]], secure: frozenset[str]
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


def _is_base64(path: str, value: str) -> bool:
    import base64
    import binascii

    from .stackfile import placeholder

    if value == placeholder(path):
        return True  # a secure value of a stack file read without Pulumi: not decryptable here
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(value)


def se_verifier_and_kata_guest(
    out: _Collector,
    k: Kbs,
    env: str | None,
    pools: list[NodePool],
    secure: frozenset[str],
    base: str | None,
) -> None:
    """The KBS's IBM SE verifier material (components.se_verifier) and the kata guest measured
    for bare-metal SNP pools (components.kata_measure)."""
    from pathlib import Path

    from . import kata_measure

    p = "coco:kbs"
    if not k.enabled:
        for key, given in (("seVerifier", k.se_verifier), ("kataGuest", k.kata_guest)):
            if given is not None:
                out.error(
                    f"{p}.{key}",
                    f"{key} is set but the KBS is disabled",
                    f"set coco:kbs.enabled: true, or remove {key}",
                )
        return
    se_pools = any(x.tee == "se" for x in pools)
    v = k.se_verifier
    if v is None and se_pools:
        out.warn(
            f"{p}.seVerifier",
            "Secure Execution guests cannot attest: the KBS has no SE verifier material",
            "set seVerifier (hostKeyDocuments, imageHeader, certificates, crls); see "
            "docs/secure-execution.md",
        )
    if v is not None:
        if not se_pools:
            out.warn(
                f"{p}.seVerifier",
                "no pool of this stack runs Secure Execution guests",
                "remove seVerifier, or add a pool with tee: se",
            )
        if v.skip_certificate_verification:
            if env == "production":
                out.error(
                    f"{p}.seVerifier.skipCertificateVerification",
                    "trusting host key documents without IBM's signature is refused in "
                    "production",
                    "remove it and give certificates and crls",
                )
            else:
                out.warn(
                    f"{p}.seVerifier.skipCertificateVerification",
                    "host key documents are trusted without checking IBM's signature",
                    "use it on development machines only",
                )
        else:
            for key in ("certificates", "crls"):
                if not getattr(v, key):
                    out.error(
                        f"{p}.seVerifier.{key}",
                        "checking the host key documents needs IBM's signing certificates and "
                        "their revocation lists",
                        "add the files from IBM Resource Link (base64), or set "
                        "skipCertificateVerification: true in development",
                    )
        paths = [f"{p}.seVerifier.imageHeader"] + (
            [f"{p}.seVerifier.rootCa"] if v.root_ca is not None else []
        )
        for key, items in (
            ("hostKeyDocuments", v.host_key_documents),
            ("certificates", v.certificates),
            ("crls", v.crls),
        ):
            paths += [f"{p}.seVerifier.{key}[{i}]" for i in range(len(items))]
        values = [v.image_header, *([v.root_ca] if v.root_ca is not None else [])]
        values += [*v.host_key_documents, *v.certificates, *v.crls]
        for path, value in zip(paths, values, strict=True):
            if not _is_base64(path, value.get_secret_value()):
                out.error(
                    path,
                    "is not base64",
                    f"give the file's bytes base64-encoded: base64 -w0 FILE | pulumi config set "
                    f"--secret --path '{path}'",
                )
            if path not in secure:
                out.warn(
                    path,
                    "stored in plain text in the stack file (it is still handled as a secret)",
                    f"run: base64 -w0 FILE | pulumi config set --secret --path '{path}'",
                )
    g = k.kata_guest
    if g is not None:
        for key, message, hint in kata_measure.problems(g, Path(base or ".")):
            out.error(f"{p}.kataGuest.{key}", message, hint)
        if g.mirror and g.firmware and g.kernel:
            out.warn(
                f"{p}.kataGuest.mirror",
                "not used: firmware and kernel are both local files, nothing is downloaded",
                "remove mirror, or leave out firmware and kernel to take them from the release",
            )
        if not any(x.tee == "snp" and x.mode == "bare-metal" for x in pools):
            out.warn(
                f"{p}.kataGuest",
                "kataGuest measures the guests of bare-metal snp pools; this stack has none",
                "remove kataGuest, or add a bare-metal snp pool",
            )


def one_peer_pods_cloud(out: _Collector, pools: list[NodePool]) -> None:
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


def aws_pools_in_cluster_region(
    out: _Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
) -> None:
    """An EKS cluster's node groups and pod VMs live in its VPC, so in its region. `pools`:
    (index as written, resolved pool, pool as written: which of region and zone was set)."""
    if c is None or c.provider != "eks" or c.region is None:
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
    out: _Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
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
    out: _Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
) -> None:
    """An AKS cluster's node pools and its pod-VM subnet live in the cluster's virtual network,
    so in its location (components.azure creates them all at cluster.location), and
    AZURE_REGION, taken from the pool, must name it too. `pools` as for
    aws_pools_in_cluster_region; a malformed region is reported once, by _pool."""
    if c is None or c.provider != "aks" or c.location is None:
        return
    shape = catalogue.REGION_PATTERNS["azure"][0]
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
    out: _Collector, pools: list[tuple[int, NodePool, NodePool]], c: Cluster | None
) -> None:
    """A GKE cluster's node pools (node_locations) and pod VMs (GCP_ZONE, on the cluster's
    regional subnetwork: components.gcp.cluster) live in the cluster's region, a zonal
    cluster's being its zone's. A zone outside it fails here as a region mismatch: the pool's
    region is its zone's, and a zone outside a written region is reported by _pool, as is a
    malformed region or zone."""
    if c is None or c.provider != "gke":
        return
    region = c.region or (c.zone.rsplit("-", 1)[0] if c.zone else None)
    if region is None:
        return
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


def one_aws_podvm_size(out: _Collector, pools: list[tuple[int, NodePool, NodePool]]) -> None:
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


def _podvm_image(out: _Collector, image: Image, pools: list[NodePool]) -> None:
    """Cloud peer pods boot a pod-VM image: the recipe's, published by the stack, or one the
    user names. IBM Cloud pools name their own (coco-stack cannot publish there)."""
    clouds = sorted(
        {p.provider or "" for p in pools if p.mode == "peer-pods"} & {"azure", "aws", "gcp"}
    )
    if clouds and image.recipe is None and image.podvm_image is None:
        out.error(
            "coco:image.podvmImage",
            f"{clouds[0]} peer pods need a pod-VM image and the stack has none",
            "set coco:image.recipe: podvm (the stack builds and publishes it) or podvmImage to "
            "an image already in the cloud",
        )
    if image.podvm_image is not None and not clouds:
        out.error(
            "coco:image.podvmImage",
            "podvmImage applies only to azure, aws or gcp peer-pods pools",
            "remove it",
        )


def _gcp_image_format(out: _Collector, image: Image, pools: list[NodePool]) -> None:
    """GCP publishes the recipe's disk.raw.tar.gz (components.gcp.image), so the recipe must
    build the gcp-tar format."""
    gcp_peer_pods = any(p.provider == "gcp" and p.mode == "peer-pods" for p in pools)
    if not gcp_peer_pods or image.recipe is None or image.podvm_image is not None:
        return
    from images import recipe as recipes
    from images.errors import RecipeError

    try:
        formats = recipes.load(image.recipe).formats
    except RecipeError:
        return  # reported with the recipe's own error
    if "gcp-tar" not in formats:
        out.error(
            "coco:image.recipe",
            f"recipe {image.recipe!r} does not build gcp-tar, the disk GCP peer pods publish",
            'add "gcp-tar" to the recipe\'s [outputs] formats, or set podvmImage',
        )


def apply(
    values: dict[str, Any],
    *,
    stack: str,
    secure_paths: frozenset[str],
    base_dir: str | None,
    issues: list[ConfigIssue],
) -> Spec | None:
    out = _Collector(issues)
    env = values["environment"]
    cluster: Cluster | None = values["cluster"]
    raw_pools = values["nodePools"]
    if cluster is not None:
        _cluster(out, cluster, secure_paths)

    pools: list[NodePool] = []
    names: dict[str, int] = {}
    addresses: dict[str, str] = {}
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
            if host.address in addresses:
                out.error(
                    here,
                    f"host {host.address!r} is already listed at {addresses[host.address]}",
                    "a host belongs to one pool",
                )
            addresses.setdefault(host.address, here)
        pools.append(_pool(out, index, pool, cluster, env, secure_paths))
    server = cluster.server if cluster is not None and cluster.provider == "k3s" else None
    if server is not None and server not in addresses:
        out.error(
            "coco:cluster.server",
            f"{server!r} is not one of the pools' hosts",
            "set it to the address of a host listed in coco:nodePools[].hosts",
        )
    one_peer_pods_cloud(out, pools)
    written = [(i, pool) for i, pool in enumerate(raw_pools or ()) if pool is not None]
    aws_pools = [(i, p, raw) for (i, raw), p in zip(written, pools, strict=True)]
    one_aws_podvm_size(out, aws_pools)
    aws_pools_in_cluster_region(out, aws_pools, cluster)
    pod_vm_subnets(out, aws_pools, cluster)
    aks_pools_in_cluster_location(out, aws_pools, cluster)
    gke_pools_in_cluster_region(out, aws_pools, cluster)
    valid = [i for i, pool in enumerate(raw_pools or ()) if pool is not None]
    ibmcloud_pools(out, list(zip(valid, pools, strict=True)), secure_paths)
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

        try:
            recipes.resolve(image.recipe)
        except RecipeError as exc:
            out.error("coco:image.recipe", str(exc), exc.hint or "name a recipe in images/recipes/")
        else:
            from images.build import check_oci_pins

            try:
                check_oci_pins(recipes.load(image.recipe))
            except RecipeError as exc:
                # valid config, but `pulumi up` would stop at the image build: say so now
                out.warn(
                    "coco:image.recipe",
                    f"the build during `pulumi up` will stop: {exc}",
                    exc.hint or "pin the payload's digest",
                )
    if image is not None:
        _podvm_image(out, image, pools)
        _gcp_image_format(out, image, pools)
    kbs: Kbs | None = values["kbs"]
    if kbs is not None:
        items = values.get("kbs.resources", list(kbs.resources))
        _kbs(out, kbs, env, secure_paths, base_dir, pools, items)
        se_verifier_and_kata_guest(out, kbs, env, pools, secure_paths, base_dir)
        peer = [i for i, p in enumerate(pools) if p.mode == "peer-pods"]
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
    )
