"""The CoCo runtime: the confidential-containers chart (kata-deploy) with exactly the shims the
stack's pools use, and one RuntimeClass per shim pinned to its TEE's nodes.

Scope: bare-metal shims (qemu-snp, qemu-tdx, qemu-se, qemu-coco-dev). Peer pods (the remote
shim, the peerpods chart and cert-manager) plug in here once the cloud components provide their
outputs. Nodes-mode pools need no runtime: their pods use the node's runc.

Helm: `helm.v3.Release`, not `helm.v4.Chart`.
- kata-deploy relies on Helm's lifecycle: its cleanup on uninstall (restoring the containerd
  configuration, a known pain point when skipped) runs as Helm hooks, and its RuntimeClass
  template uses `lookup`, which `helm template` (what v4.Chart renders with) cannot answer.
- Upgrades: a Release upgrades atomically and rolls back on failure (`atomic`), where v4.Chart
  would apply rendered objects one by one; the daemonset restart that kills kata pods happens
  once, under Helm's control.
- Preview: v4.Chart has failed at preview when the cluster is not reachable yet
  (pulumi-kubernetes#3027); a Release on a cluster created in the same update is simply
  previewed as a create. The cost: diffs show changed values, not changed objects; `coco render`
  prints the full values for review.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import helm, kube
from spec import labels, runtime_plan, versions
from spec.model import Spec

NAMESPACE = "coco-system"  # the namespace the CoCo install docs use (confidentialcontainers.org)


class CocoRuntime(pulumi.ComponentResource):
    """kata-deploy through the confidential-containers chart, plus our RuntimeClasses."""

    def __init__(self, name: str, args: Spec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:runtime:CocoRuntime", name, None, opts)
        plans = runtime_plan.runtime_classes(args)
        common = labels.PART_OF
        # kata-deploy is a privileged daemonset: it writes the host's containerd configuration
        # and installs the kata artifacts on the node.
        namespace = kube.namespace(
            f"{name}-namespace",
            NAMESPACE,
            pulumi.ResourceOptions(parent=self),
            pod_security="privileged",
        )
        self.release = helm.release(
            f"{name}-chart",
            "coco",
            versions.COCO_CHART,
            NAMESPACE,
            runtime_plan.chart_values(args),
            pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
            source=args.charts.runtime,
        )
        self.runtime_classes: dict[str, k8s.node.v1.RuntimeClass] = {}
        for plan in plans:
            self.runtime_classes[plan.name] = k8s.node.v1.RuntimeClass(
                f"{name}-{plan.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=plan.name,
                    labels={**common, labels.TEE: plan.tee},
                    annotations={f"{labels.PREFIX}/pools": ",".join(plan.pools)},
                ),
                handler=plan.handler,
                overhead=k8s.node.v1.OverheadArgs(pod_fixed=plan.overhead),
                scheduling=k8s.node.v1.SchedulingArgs(
                    node_selector=plan.node_selector,
                    tolerations=[
                        k8s.core.v1.TolerationArgs(
                            key=t["key"],
                            operator=t["operator"],
                            value=t["value"],
                            effect=t["effect"],
                        )
                        for t in plan.tolerations
                    ],
                ),
                # the handler exists once kata-deploy has run on the node
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
            )
        self.register_outputs({"runtimeClasses": sorted(self.runtime_classes)})
