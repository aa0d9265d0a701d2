"""What the CoCo runtime install needs, computed from the spec: pure data, no Pulumi.

From the pools of a stack: which kata shims to enable (and nothing else), the Helm values of the
confidential-containers chart, and the RuntimeClasses coco-stack authors itself, each pinned to
the nodes of its TEE. `components.runtime` turns this into resources; `spec.rules` uses
`shared_selector_issues` to refuse pools whose nodes a RuntimeClass could not select.

Why the RuntimeClasses are ours and not the chart's: the chart creates one per shim whose node
selector is only `katacontainers.io/kata-runtime: "true"` plus an optional fixed selector or the
NFD labels (kata-deploy helm-chart templates/runtimeclasses.yaml@4.0.0). We need a selector per
pool's TEE that the stack can prove matches the pool's nodes, visible in `coco render` and
validated against the Kubernetes schema; so the chart's are disabled (`runtimeClasses.enabled:
false`) and we write the same objects (same names and handlers) with our selectors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from spec import catalogue, labels, versions
from spec.errors import ConfigIssue
from spec.model import NodePool, Spec

# kata-deploy marks a node with this label once its runtime is installed
# (kata-deploy binary/src/main.rs@4.0.0); every RuntimeClass selects on it, so no pod with a
# CoCo RuntimeClass can land on a node before its runtime is ready.
KATA_RUNTIME_READY = "katacontainers.io/kata-runtime"

# the startup taint (spec.labels) in kata-deploy's "key:effect" form
STARTUP_TAINT_KEY = labels.STARTUP_TAINT_KEY
STARTUP_TAINT = f"{STARTUP_TAINT_KEY}:NoSchedule"

# Node Feature Discovery labels kata-deploy 4.0.0 uses for TEE RuntimeClasses when NFD is on
# (templates/runtimeclasses.yaml@4.0.0).
NFD_LABELS = {
    "snp": "amd.feature.node.kubernetes.io/snp",
    "tdx": "intel.feature.node.kubernetes.io/tdx",
    "se": "feature.node.kubernetes.io/cpu-security.se.enabled",
}

# RuntimeClass overhead (podFixed) per shim: kata-deploy's built-in table
# (templates/runtimeclasses.yaml `kata-deploy.runtimeClassConfigs`@4.0.0).
OVERHEAD = {
    "qemu-snp": {"memory": "2048Mi", "cpu": "1.0"},
    "qemu-tdx": {"memory": "2048Mi", "cpu": "1.0"},
    "qemu-se": {"memory": "1024Mi", "cpu": "1.0"},
    "qemu-coco-dev": {"memory": "160Mi", "cpu": "250m"},
    "remote": {"memory": "120Mi", "cpu": "250m"},
}

# With Node Feature Discovery in the cluster (its NodeFeatureRule CRD present), kata-deploy 4.0.0
# installs its x86_64 TEE-keys NodeFeatureRule (node-feature-rules/x86_64-tee-keys.yaml: the
# extended resources sev-snp.amd.com/esids and tdx.intel.com/keys) and then adds one of these,
# quantity "1", to overhead.podFixed of every RuntimeClass whose name starts with "kata" and
# contains "tdx" (checked first) or "snp" (binary/src/k8s/runtimeclasses.rs
# update_existing_runtimeclasses_for_nfd, called from binary/src/artifacts/install.rs@4.0.0).
# We declare the same entry, so the RuntimeClass we own is already what kata-deploy writes and
# `pulumi refresh` shows no drift (and each pod of the class consumes one ASID / TDX key, as
# kata-deploy intends). Only with NFD: without it no node advertises these resources and a pod
# asking for them could never be scheduled. kata-deploy keys this on the CRD, not on its chart's
# node-feature-discovery.enabled, so an NFD the stack did not install (nodeFeatureDiscovery:
# external) brings the same overhead: `nfd` here means "NFD present" (Runtime.nfd_present).
NFD_OVERHEAD_QUANTITY = "1"
NFD_OVERHEAD_KEYS = (("tdx", "tdx.intel.com/keys"), ("snp", "sev-snp.amd.com/esids"))


def nfd_overhead_key(runtime_class: str) -> str | None:
    """The extended resource kata-deploy 4.0.0 adds to this RuntimeClass's overhead under NFD."""
    if not runtime_class.startswith("kata"):
        return None
    return next((key for word, key in NFD_OVERHEAD_KEYS if word in runtime_class), None)


def overhead(shim: str, runtime_class: str, nfd: bool) -> dict[str, str]:
    """overhead.podFixed of our RuntimeClass: kata-deploy's table, plus NFD's TEE key when NFD
    is present in the cluster (installed by the stack or external)."""
    fixed = dict(OVERHEAD[shim])
    key = nfd_overhead_key(runtime_class) if nfd else None
    if key is not None:
        fixed[key] = NFD_OVERHEAD_QUANTITY
    return dict(sorted(fixed.items()))


# Every shim kata-deploy 4.0.0 defines (helm-chart values.yaml@4.0.0 `shims.*`, 25 of them;
# tests/charts/README.md lists the same from that file). Each one we do not use is set to
# `enabled: false` explicitly: kata-deploy decides per shim with `enabled: true` winning over
# `disableAll` (templates/_helpers.tpl `kata-deploy.isShimEnabled`@4.0.0), and the CoCo umbrella
# chart's own defaults for its `kata-as-coco-runtime` subchart are not verified here, so
# `disableAll: true` alone could leave a shim the umbrella enables installed on every node.
KATA_DEPLOY_SHIMS = (
    "clh",
    "clh-azure",
    "clh-azure-runtime-rs",
    "clh-runtime-rs",
    "dragonball",
    "fc",
    "qemu",
    "qemu-coco-dev",
    "qemu-coco-dev-runtime-rs",
    "qemu-nvidia-cpu",
    "qemu-nvidia-cpu-runtime-rs",
    "qemu-nvidia-gpu",
    "qemu-nvidia-gpu-runtime-rs",
    "qemu-nvidia-gpu-snp",
    "qemu-nvidia-gpu-snp-runtime-rs",
    "qemu-nvidia-gpu-tdx",
    "qemu-nvidia-gpu-tdx-runtime-rs",
    "qemu-runtime-rs",
    "qemu-se",
    "qemu-se-runtime-rs",
    "qemu-snp",
    "qemu-snp-runtime-rs",
    "qemu-tdx",
    "qemu-tdx-runtime-rs",
    "remote",
)

# Image pulling per shim: the pinned release's defaults for the TEE shims are the nydus
# snapshotter with guest pull, no forced guest pull (containerd), guest pull on CRI-O
# (kata-deploy helm-chart values.yaml@4.0.0 shims.qemu-*). The v0.22.0 release notes warn that
# containerd < 2.3 may have guest-pull issues.
PULL = {
    "containerd": {"snapshotter": "nydus", "forceGuestPull": False},
    "crio": {"guestPull": True},
}

# Which shim is the default on each architecture when several are enabled: strongest first.
# kata 4.0.0 defaults to qemu-runtime-rs, but CoCo v0.22.0 still uses the Go shims, so the
# default is always set explicitly (CoCo v0.22.0 release notes).
REMOTE_ARCHES = ("amd64", "ppc64le", "s390x")
_PREFERENCE = ("qemu-snp", "qemu-tdx", "qemu-se", "qemu-coco-dev", "remote")


@dataclass(frozen=True)
class RuntimeClassPlan:
    name: str
    handler: str
    shim: str
    tee: str
    pools: tuple[str, ...]
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...]
    overhead: dict[str, str]


def _runtime_pools(spec: Spec) -> list[tuple[NodePool, catalogue.Offering]]:
    found = []
    for pool in spec.node_pools:
        offering = catalogue.find(pool.provider or "", pool.tee, pool.mode or "")
        # nodes pools need no kata runtime: their pods use the node's runc
        if offering is not None and offering.mode in ("bare-metal", "peer-pods"):
            found.append((pool, offering))
    return found


def pool_node_selector(pool: NodePool, nfd: bool) -> dict[str, str]:
    """Labels every node of the pool carries: the user's selector for reused nodes, else the
    labels the stack applies (plus the NFD TEE label when NFD runs)."""
    if pool.mode == "peer-pods":
        # the cloud-api-adaptor daemonset runs only on nodes labelled node.kubernetes.io/worker=""
        # (peerpods chart templates/daemonset.yaml@v0.22.0, a fixed nodeSelector); pod VMs are
        # not nodes. A pool's own nodeSelector narrows that, never replaces it: a kata-remote
        # pod on a node without CAA would never start.
        return dict(sorted({**(pool.node_selector or {}), labels.WORKER: ""}.items()))
    selector = labels.pool_selector(pool.name, pool.tee, pool.node_selector)
    if nfd and pool.tee in NFD_LABELS and pool.node_selector is None:
        selector[NFD_LABELS[pool.tee]] = "true"
    return dict(sorted(selector.items()))


def _common(selectors: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = selectors
    return {k: v for k, v in sorted(first.items()) if all(s.get(k) == v for s in rest)}


def runtime_classes(spec: Spec) -> list[RuntimeClassPlan]:
    """One RuntimeClass per shim in use, selecting the labels all its pools' nodes share."""
    # NFD labels select nodes only when the stack installs NFD (an external NFD's configuration
    # is not ours to rely on); the overhead follows NFD's presence, as kata-deploy's does
    nfd = spec.runtime.installs_nfd
    by_shim: dict[str, list[tuple[NodePool, catalogue.Offering]]] = {}
    for pool, offering in _runtime_pools(spec):
        by_shim.setdefault(offering.shim or "", []).append((pool, offering))
    plans = []
    for shim, members in sorted(by_shim.items()):
        offering = members[0][1]
        tee = offering.tee
        common = _common([pool_node_selector(p, nfd) for p, _ in members])
        if nfd and tee in NFD_LABELS and all(p.node_selector is None for p, _ in members):
            common = {NFD_LABELS[tee]: "true"}
        selector = {**common, KATA_RUNTIME_READY: "true"}
        name = offering.runtime_class or f"kata-{shim}"
        plans.append(
            RuntimeClassPlan(
                name=name,
                handler=f"kata-{shim}",  # kata-deploy registers the containerd runtime kata-<shim>
                shim=shim,
                tee=tee,
                pools=tuple(sorted(p.name for p, _ in members)),
                node_selector=dict(sorted(selector.items())),
                # pods of this class tolerate the TEE taint pools may put on dedicated nodes
                tolerations=(
                    {"key": labels.TEE, "operator": "Equal", "value": tee, "effect": "NoSchedule"},
                ),
                overhead=overhead(shim, name, spec.runtime.nfd_present),
            )
        )
    return plans


def shared_selector_issues(spec: Spec) -> list[ConfigIssue]:
    """Pools sharing a shim need a node label in common, or no RuntimeClass selects them all."""
    issues = []
    nfd = spec.runtime.installs_nfd
    by_shim: dict[str, list[tuple[int, NodePool]]] = {}
    pools = {id(p): p for p, _ in _runtime_pools(spec)}
    for index, pool in enumerate(spec.node_pools):
        if id(pool) in pools:
            offering = catalogue.find(pool.provider or "", pool.tee, pool.mode or "")
            shim = offering.shim if offering and offering.shim else ""
            by_shim.setdefault(shim, []).append((index, pool))
    for shim, members in sorted(by_shim.items()):
        if len(members) > 1 and not _common([pool_node_selector(p, nfd) for _, p in members]):
            index, pool = members[-1]
            names = ", ".join(p.name for _, p in members)
            issues.append(
                ConfigIssue(
                    f"coco:nodePools[{index}].nodeSelector",
                    f"pools {names} share the {shim} runtime but their node selectors have no "
                    "label in common, so one RuntimeClass cannot select all their nodes",
                    f"label those nodes {labels.TEE}={pool.tee} and add it to each nodeSelector",
                )
            )
    return issues


def chart_values(spec: Spec) -> dict[str, Any]:
    """Values of the confidential-containers chart: exactly the shims the pools use.

    kata-deploy's values are nested under the umbrella chart's alias `kata-as-coco-runtime`
    (confidential-containers/charts Chart.yaml dependency alias; key structure of kata-deploy
    helm-chart values.yaml@4.0.0).
    """
    plans = runtime_classes(spec)
    arches: dict[str, list[str]] = {}
    for _, offering in _runtime_pools(spec):
        # the remote shim runs on the worker nodes, whose architecture is not the pod VM's
        # (an s390x Secure Execution pod VM is driven from x86 workers): keep kata-deploy's
        # own list for it (helm-chart values.yaml@4.0.0 shims.remote.supportedArches)
        arches.setdefault(
            offering.shim or "",
            list(REMOTE_ARCHES) if offering.shim == "remote" else [offering.arch],
        )
    enabled: dict[str, Any] = {
        plan.shim: {
            "enabled": True,
            "supportedArches": arches[plan.shim],
            # a copy: the values go to callers (and Helm), who must not edit the module's PULL
            **copy.deepcopy(PULL),
        }
        for plan in plans
    }
    # disableAll stays as a second guard; every other shim is off by name (KATA_DEPLOY_SHIMS)
    shims: dict[str, Any] = {"disableAll": True}
    for shim in sorted({*KATA_DEPLOY_SHIMS, *enabled}):
        shims[shim] = enabled.get(shim, {"enabled": False})
    default: dict[str, str] = {}
    for shim in sorted(enabled, key=_PREFERENCE.index):
        for arch in arches[shim]:
            default.setdefault(arch, shim)
    pool_terms = [
        {
            "matchExpressions": [
                {"key": k, "operator": "In", "values": [v]}
                for k, v in pool_node_selector(pool, spec.runtime.installs_nfd).items()
            ]
        }
        for pool, _ in _runtime_pools(spec)
    ]
    kata: dict[str, Any] = {
        # Values the stack depends on are set by name, not left to the charts' defaults:
        # the umbrella installs kata-deploy under this condition (confidential-containers/charts
        # Chart.yaml `condition: kata-as-coco-runtime.enabled`; its 0.22.0 files were not
        # readable here, see versions.COCO_CHART)
        "enabled": True,
        # the kata-deploy binary whose behaviour this module mirrors (4.0.0; with an empty tag
        # the chart uses its appVersion, templates/_helpers.tpl@4.0.0, which the umbrella may
        # override)
        "image": {
            "reference": versions.KATA_DEPLOY_IMAGE.repository,
            "tag": versions.KATA_DEPLOY_IMAGE.tag,
        },
        # a DaemonSet per node (templates/kata-deploy.yaml@4.0.0 renders it only in this mode):
        # the affinity, tolerations and startup-taint removal below are the DaemonSet's
        "deploymentMode": "daemonset",
        # no suffix: kata-deploy registers the containerd runtime kata-<shim>-<suffix> otherwise
        # (binary/src/runtime/containerd.rs@4.0.0), and our RuntimeClasses' handlers are
        # kata-<shim>
        "env": {"multiInstallSuffix": ""},
        # exactly the shims the pools use: no user-defined runtimes next to them
        # (values.yaml@4.0.0 customRuntimes)
        "customRuntimes": {"enabled": False},
        # no verification Job (templates/verification-job.yaml@4.0.0 renders it only with a
        # pod). kubectlImage stays upstream's quay.io/kata-containers/kubectl:latest: it runs
        # only kata-deploy's post-delete RBAC cleanup Job (templates/kata-cleanup-rbac-job.yaml),
        # and no versioned tag or digest of it is named in kata 4.0.0's files (the image is
        # rebuilt weekly under date, sha and kubectl-version tags:
        # .github/workflows/build-kubectl-image.yaml@4.0.0), so there is nothing to pin to
        "verification": {"pod": ""},
        "k8sDistribution": spec.cluster.distribution
        or ("k3s" if spec.cluster.provider == "k3s" else "k8s"),
        "shims": shims,
        "defaultShim": dict(sorted(default.items())),
        "runtimeClasses": {"enabled": False, "createDefault": False},
        "snapshotter": {"setup": ["nydus"]},
        "startupTaints": [STARTUP_TAINT],
        # kata-deploy must run on tainted new nodes to remove the taint
        "tolerations": [
            {"key": STARTUP_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
            {"key": labels.TEE, "operator": "Exists", "effect": "NoSchedule"},
        ],
        # install only on the pools' nodes: one OR-ed term per pool
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": pool_terms}
            }
        }
        if pool_terms
        else {},
        # the subchart only when the stack installs NFD: "external" leaves it off, so kata-deploy
        # also skips its VMX/SVM nodeAffinity (templates/_helpers.tpl
        # `kata-deploy.daemonsetAffinity`@4.0.0, keyed on this value, not on the NFD CRD)
        "node-feature-discovery": {"enabled": spec.runtime.installs_nfd},
        "debug": spec.runtime.debug,
    }
    return {"kata-as-coco-runtime": kata}
