"""Bare-metal hosts over SSH: the host check on every host, k3s on them, and the node labels and
taints of their pool.

Every host of a pool with `hosts` gets, through pulumi_command `remote.Command` over SSH (the
private key a Pulumi secret):
1. the check: the project's host check program (components.hostcheck) is written to the host
   from stdin and run. On a host that is not ready the command fails, its stderr naming the host
   and each failing check with its fix: `pulumi up` stops there and records nothing for the check,
   so the next `pulumi up` checks the host again. The host name a passed check reports (in lower
   case, as kubelet names the node) feeds the next step, so nothing on that host is created
   before its check passed;
2. with coco:cluster.provider k3s: the k3s server (on coco:cluster.server, `K3sCluster`, built
   as the stack's cluster) or a k3s agent joining it (`PoolHosts`), each node registering with
   its pool's labels and taints (components.k3s, clouds.pool_nodes);
   with an existing cluster: a NodePatch puts the pool's labels on the node whose name is the
   host name the verdict reports.
Deletes undo creates: the check program is removed, k3s is uninstalled, the NodePatch's labels are
removed with it. A replaced k3s command (`pulumi up --replace`) uninstalls before it installs
(delete_before_replace): Pulumi's default, create before delete, would run the new install (a
no-op on a host that has k3s) and then the old resource's uninstall, leaving the host without k3s.

Why no taints on existing clusters: a Node's spec.taints is an atomic list
(x-kubernetes-list-type: atomic, Kubernetes 1.34 OpenAPI), so a server-side-apply patch owns the
whole list: it conflicts with the node lifecycle controller's taints or, forced, removes them.
CoCo pods still cannot land early there: every RuntimeClass selects the label kata-deploy sets once
the runtime is installed (spec.runtime_plan.KATA_RUNTIME_READY).

Why the k3s server has no TEE taint: it also runs the cluster's system pods (CoreDNS, the KBS),
which do not tolerate it; it keeps the pool's labels and the runtime-pending taint.

SSH host keys: a host's `hostKey` is pinned in every connection (spec.rules requires it in
production); without it any host key is accepted.

Non-goals: HA k3s servers, SSH users other than root (every command writes system paths; no
sudo), rerunning a passed check on every `pulumi up` (it runs when a host joins and whenever the
program or the pool's TEE changes; `pulumi up --replace URN` reruns it).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_command.remote as remote
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import clouds, hostcheck, k3s
from spec import labels, versions
from spec.model import Host, NodePool, Spec

from .clouds import ManagedCluster, Taint


def connection(host: Host) -> remote.ConnectionArgs:
    return remote.ConnectionArgs(
        host=host.address,
        user=host.user,
        port=float(host.port),
        private_key=pulumi.Output.secret(host.ssh_key.get_secret_value()),
        # None: any host key is accepted (refused in production by spec.rules)
        host_key=host.host_key,
    )


def check_command(
    tee: str,
    address: str | None = None,
    path: str = hostcheck.REMOTE_PATH,
    root: str | None = None,
) -> str:
    """Write the program from stdin to `path` and run it; fails on a host that is not ready,
    naming it by `address` (`root`: a fake tree, for tests)."""
    q = shlex.quote
    return "\n".join([
        "set -eu",
        f"mkdir -p {q(path.rsplit('/', 1)[0])}",
        f"cat > {q(path)}.new",
        f"mv -f {q(path)}.new {q(path)}",
        hostcheck.remote_command(tee, path, root, address),
        "",
    ])


def checked_host(stdout: str | None, address: str) -> str:
    """The node name a passed check reports; raises HostNotReady (or VerdictError).

    The name is the host name in lower case, as kubelet registers the node
    (kubernetes pkg/util/node, now k8s.io/component-helpers node/util, GetHostname:
    strings.ToLower(strings.TrimSpace(hostname))).
    A not-ready host already failed the command; the verdict is checked again here so that no
    output of another shape is trusted. `stdout` is None only under the mock monitor of
    `coco render`, where no host is reached: the address stands in for the name there. The
    command provider always reports a string."""
    if stdout is None:
        return address
    verdict = hostcheck.parse_verdict(stdout, address)
    if not verdict.ready:
        raise hostcheck.HostNotReady(verdict, address)
    return verdict.host.strip().lower()


def check_host(
    name: str, host: Host, tee: str, opts: pulumi.ResourceOptions
) -> pulumi.Output[str]:
    """Register the check of one host; returns the node name once the host passed."""
    check = remote.Command(
        f"{name}-check",
        connection=connection(host),
        create=check_command(tee, host.address),
        delete=f"rm -f {shlex.quote(hostcheck.REMOTE_PATH)}",
        stdin=hostcheck.script_source(),
        opts=opts,
    )
    return check.stdout.apply(lambda out: checked_host(out, host.address))


def gated(command: str, node: pulumi.Output[str]) -> pulumi.Output[str]:
    """`command`, once the host's check passed (`node` resolved): the resource depends on the
    check, and its text does not change with the node name."""
    return node.apply(lambda _: command)


def taint_text(taint: Taint) -> str:
    """A taint as kubelet's --register-with-taints reads it: key=value:Effect or key:Effect."""
    value = f"={taint.value}" if taint.value else ""
    return f"{taint.key}{value}:{taint.effect}"


def _resource_name(address: str) -> str:
    return address.replace(":", "-")


def server_host(spec: Spec) -> tuple[NodePool, Host]:
    """The pool and host coco:cluster.server names (spec.rules checked it exists)."""
    for pool in spec.node_pools:
        for host in pool.hosts or ():
            if host.address == spec.cluster.server:
                return pool, host
    raise ValueError(f"coco:cluster.server {spec.cluster.server!r} is not a pool host")


class K3sCluster(pulumi.ComponentResource):
    """A k3s cluster on the stack's hosts: the join token, the server, its kubeconfig."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    outputs: Mapping[str, pulumi.Input[Any]]

    def __init__(self, name: str, args: Spec, opts: pulumi.ResourceOptions | None = None):
        super().__init__("coco:hosts:K3sCluster", name, None, opts)
        here = pulumi.ResourceOptions(parent=self)
        pool, host = server_host(args)
        self.server_address = host.address
        self.server_url = k3s.server_url(host.address)
        # Mocks and some providers do not mark the result secret: wrap it ourselves.
        token = random.RandomPassword(f"{name}-token", length=48, special=False, opts=here)
        self.token: pulumi.Output[str] = pulumi.Output.secret(token.result)

        node = check_host(f"{name}-server", host, pool.tee, here)
        nodes = clouds.pool_nodes(pool)
        config = k3s.NodeConfig(
            labels=nodes.labels,
            taints=[taint_text(t) for t in nodes.taints if t.key != labels.TEE],
            tls_san=[host.address],
        )
        # `update` = `create`: a changed input reruns the idempotent install in place (a
        # replacement uninstalls first and wipes the server's datastore). The install waits for
        # the check through its text (gated), not through `triggers`: the SDK makes a changed
        # trigger replace the command (replace_on_changes=["triggers[*]"]).
        install = k3s.install("server", config)
        self.server = remote.Command(
            f"{name}-server",
            connection=connection(host),
            create=gated(install, node),
            update=install,
            delete=k3s.uninstall("server"),
            stdin=self.token,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        read = remote.Command(
            f"{name}-kubeconfig",
            connection=connection(host),
            create=k3s.read_kubeconfig(),
            logging=remote.Logging.NONE,
            triggers=[self.server.id],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.server], additional_secret_outputs=["stdout"]
            ),
        )
        address = host.address
        self.kubeconfig = pulumi.Output.secret(
            read.stdout.apply(lambda text: k3s.kubeconfig_for(text or "", address))
        )
        self.provider = k8s.Provider(
            f"{name}-k8s", k8s.ProviderArgs(kubeconfig=self.kubeconfig), opts=here
        )
        self.outputs = {
            "provider": "k3s",
            "server": self.server_url,
            "version": versions.K3S_VERSION,
        }
        self.register_outputs({"outputs": self.outputs})


class PoolHosts(pulumi.ComponentResource):
    """The hosts of one pool: checked, then joined to k3s or labelled in an existing cluster."""

    def __init__(
        self,
        name: str,
        args: NodePool,
        cluster: ManagedCluster,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:hosts:PoolHosts", name, None, opts)
        here = pulumi.ResourceOptions(parent=self)
        nodes = clouds.pool_nodes(args)
        self.nodes: dict[str, pulumi.Output[str]] = {}
        for host in args.hosts or ():
            if isinstance(cluster, K3sCluster) and host.address == cluster.server_address:
                continue  # checked and installed as the k3s server by K3sCluster
            base = f"{name}-{_resource_name(host.address)}"
            node = check_host(base, host, args.tee, here)
            self.nodes[host.address] = node
            if isinstance(cluster, K3sCluster):
                config = k3s.NodeConfig(
                    labels=nodes.labels,
                    taints=[taint_text(t) for t in nodes.taints],
                    server_url=cluster.server_url,
                )
                install = k3s.install("agent", config)
                remote.Command(
                    f"{base}-agent",
                    connection=connection(host),
                    create=gated(install, node),
                    update=install,
                    delete=k3s.uninstall("agent"),
                    stdin=cluster.token,
                    opts=pulumi.ResourceOptions(
                        parent=self, depends_on=[cluster.server], delete_before_replace=True
                    ),
                )
            else:
                k8s.core.v1.NodePatch(
                    f"{base}-labels",
                    metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                        name=node, labels=dict(sorted(nodes.labels.items()))
                    ),
                    opts=pulumi.ResourceOptions(parent=self, provider=cluster.provider),
                )
        self.register_outputs({})
