"""k3s on the stack's own hosts: the node configuration and the shell commands that install,
read and uninstall k3s over SSH.

Pure text, no Pulumi: `components.hosts` runs these as pulumi_command `remote.Command`s, and
tests/components/hostcheck/test_hosts_ssh.py runs the same text over a real SSH connection.

How a host is installed (the `install` command, one POSIX sh script):
- the join token arrives on stdin and is written to a root-only file that the configuration
  names (`token-file`): it is never on a command line (`ps`), in the environment or in a log;
- the configuration (`/etc/rancher/k3s/config.yaml`: server URL, node labels and taints) is in
  the command itself, so `coco render` shows it for review;
- the binary pinned in spec.versions is downloaded and installed only when its size, sha256
  and sha512 all match (two independent sources), never through `curl | sh`;
- a systemd unit of our own starts it, with KillMode=process as k3s's own unit has: a restart
  stops k3s only, and the containerd shims (the pods, kata's TEE VMs, the KBS) keep running.
  Every step compares before it writes, and k3s is restarted only when something changed, so
  rerunning the command is a no-op.
`uninstall` undoes that and what k3s did on the host: it stops the service, kills the shims and
their children, unmounts what k3s and kubelet mounted (deepest first), removes the files and
directories, the CNI network namespaces and links and the KUBE-/CNI-/flannel iptables rules. A
directory that cannot be removed fails the delete (Pulumi then keeps the resource).

Node labels and taints are set at join time (k3s `--node-label` / `--node-taint` as config keys,
docs.k3s.io/cli/agent). k3s applies them only when the node registers, so a rerun never puts the
startup taint back after kata-deploy removed it.

Non-goals: HA servers (one server), upgrades in place (a new version is a new install), air-gapped
installs, architectures without a pinned checksum.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from spec import versions

Role = Literal["server", "agent"]

# The API server port agents and the kubeconfig use (docs.k3s.io/installation/requirements:
# inbound TCP 6443 on servers).
API_PORT = 6443
# k3s writes the admin kubeconfig pointing at the local API server (docs.k3s.io/cluster-access).
LOCAL_SERVER = f"https://127.0.0.1:{API_PORT}"
# How long the server install waits for k3s to write the kubeconfig, in seconds.
SERVER_WAIT = 300
_EOF = "COCO_STACK_EOF"


@dataclass(frozen=True)
class Release:
    """A k3s release: its version, download URL and, per `uname -m`, the pinned asset."""

    version: str
    base_url: str
    binaries: Mapping[str, versions.K3sBinary]

    def url(self, asset: str) -> str:
        # the tag's '+' is URL-encoded in release download links
        return f"{self.base_url}/{self.version.replace('+', '%2B')}/{asset}"


RELEASE = Release(versions.K3S_VERSION, versions.K3S_RELEASE_URL, versions.K3S_BINARIES)


@dataclass(frozen=True)
class Layout:
    """Where the install writes on a host; the SSH test points it at a temporary directory."""

    binary: str = "/usr/local/bin/k3s"
    config_dir: str = "/etc/rancher/k3s"
    unit_dir: str = "/etc/systemd/system"
    # k3s's default --data-dir (docs.k3s.io/cli/agent)
    data_dir: str = "/var/lib/rancher/k3s"
    # What else k3s creates on a host; its own uninstall script removes these (k3s-io/k3s
    # install.sh, create_killall and create_uninstall): containerd's state and mounts,
    # kubelet's pod volumes, flannel's state and the CNI plugins' state.
    run_dir: str = "/run/k3s"
    kubelet_dir: str = "/var/lib/kubelet"
    flannel_dir: str = "/run/flannel"
    cni_dir: str = "/var/lib/cni"
    # the node password an agent registers with (docs.k3s.io/architecture, "How Agent Node
    # Registration Works": /etc/rancher/node/password)
    node_dir: str = "/etc/rancher/node"

    @property
    def config(self) -> str:
        return f"{self.config_dir}/config.yaml"

    @property
    def token(self) -> str:
        return f"{self.config_dir}/coco-stack-token"

    @property
    def kubeconfig(self) -> str:
        # the server's admin kubeconfig (docs.k3s.io/cluster-access)
        return f"{self.config_dir}/k3s.yaml"

    def unit(self, role: Role) -> str:
        return f"{self.unit_dir}/{service(role)}"


LAYOUT = Layout()


@dataclass(frozen=True)
class NodeConfig:
    """What one node joins with; rendered as k3s's config.yaml (keys = CLI flag names)."""

    labels: Mapping[str, str]
    taints: Sequence[str]  # "key=value:Effect" or "key:Effect"
    server_url: str | None = None  # agents only
    tls_san: Sequence[str] = field(default_factory=tuple)  # servers: names in the API cert

    def render(self, layout: Layout = LAYOUT) -> str:
        data: dict[str, Any] = {
            "node-label": [f"{k}={v}" for k, v in sorted(self.labels.items())],
            "node-taint": sorted(self.taints),
            "token-file": layout.token,
        }
        if self.server_url is not None:
            data["server"] = self.server_url
        if self.tls_san:
            data["tls-san"] = sorted(self.tls_san)
            # only root reads the admin kubeconfig (k3s's default mode is 0600)
            data["write-kubeconfig-mode"] = "0600"
        return yaml.safe_dump(data, sort_keys=True, default_flow_style=False)


def service(role: Role) -> str:
    return "k3s.service" if role == "server" else "k3s-agent.service"


def server_url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address  # IPv6 literal
    return f"https://{host}:{API_PORT}"


def unit(role: Role, layout: Layout = LAYOUT) -> str:
    """Our systemd unit for k3s. Type: notify for the server, exec for agents, as k3s's own
    install.sh chooses (SYSTEMD_TYPE in k3s install.sh; unverified against v1.34.3+k3s1).
    Delegate=yes lets containerd manage the pods' cgroups. KillMode=process, as in k3s's own
    unit (install.sh create_systemd_service_file; k3s-io/k3s#2400): the containerd shims live
    in this unit's cgroup, and the default (control-group) would kill every pod on a restart."""
    kind = "notify" if role == "server" else "exec"
    return "\n".join([
        "[Unit]",
        f"Description=k3s {role} (installed by coco-stack)",
        "Documentation=https://docs.k3s.io",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        f"Type={kind}",
        f"ExecStart={layout.binary} {role} --config {layout.config}",
        "Restart=always",
        "RestartSec=5s",
        "KillMode=process",
        "Delegate=yes",
        "LimitNOFILE=1048576",
        "TasksMax=infinity",
        "TimeoutStartSec=0",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def install(
    role: Role,
    config: NodeConfig,
    layout: Layout = LAYOUT,
    release: Release = RELEASE,
) -> str:
    """The create command: reads the join token on stdin; idempotent (a rerun changes nothing)."""
    q = shlex.quote
    unit_text = unit(role, layout)
    cases = [
        f"  {machine}) asset={q(b.asset)}; size={b.size}; sum={q(b.sha256)}; "
        f"sum512={q(b.sha512)} ;;"
        for machine, b in sorted(release.binaries.items())
    ]
    lines = [
        "set -eu",
        "umask 077",
        "changed=",
        "# put(): move $1.new over $1 unless they are equal; remember a change",
        'put() { if cmp -s "$1.new" "$1"; then rm -f "$1.new"; '
        'else mv -f "$1.new" "$1"; changed=1; fi; }',
        f"mkdir -p {q(layout.config_dir)} {q(layout.unit_dir)} "
        f"{q(layout.binary.rsplit('/', 1)[0])}",
        "# the join token: stdin only, root-only file",
        f"cat > {q(layout.token)}.new",
        f'[ -s {q(layout.token)}.new ] || {{ echo "coco-stack: no join token on stdin" >&2; '
        "exit 1; }",
        f"put {q(layout.token)}",
        "# node configuration: labels and taints apply when the node registers",
        f"cat > {q(layout.config)}.new <<'{_EOF}'",
        config.render(layout).rstrip("\n"),
        _EOF,
        f"chmod 0644 {q(layout.config)}.new",
        f"put {q(layout.config)}",
        f"# the pinned binary {release.version}, installed only when its size, sha256 and "
        "sha512 all match (two independent sources: spec.versions)",
        'case "$(uname -m)" in',
        *cases,
        f'  *) echo "coco-stack: k3s {release.version} has no pinned binary for $(uname -m)" '
        ">&2; exit 1 ;;",
        "esac",
        "# pinned(FILE): the file's size and both digests are the pinned ones",
        "pinned() {",
        '  [ -f "$1" ] && [ "$(wc -c < "$1")" -eq "$size" ] &&',
        '    printf "%s  %s\\n" "$sum" "$1" | sha256sum -c --status 2>/dev/null &&',
        '    printf "%s  %s\\n" "$sum512" "$1" | sha512sum -c --status 2>/dev/null',
        "}",
        f"if ! pinned {q(layout.binary)}; then",
        f'  curl -fsSL --retry 3 -o {q(layout.binary)}.new "{release.url("$asset")}"',
        f"  if ! pinned {q(layout.binary)}.new; then",
        f"    rm -f {q(layout.binary)}.new",
        f'    echo "coco-stack: $asset of k3s {release.version} does not match its pinned '
        'size $size, sha256 $sum and sha512 $sum512" >&2',
        "    exit 1",
        "  fi",
        f"  chmod 0755 {q(layout.binary)}.new",
        f"  mv -f {q(layout.binary)}.new {q(layout.binary)}",
        "  changed=1",
        "fi",
        f"cat > {q(layout.unit(role))}.new <<'{_EOF}'",
        unit_text.rstrip("\n"),
        _EOF,
        f"chmod 0644 {q(layout.unit(role))}.new",
        f"put {q(layout.unit(role))}",
        "systemctl daemon-reload",
        f"systemctl enable {service(role)}",
        f'if [ -n "$changed" ]; then systemctl restart {service(role)}; '
        f"else systemctl start {service(role)}; fi",
    ]
    if role == "server":
        lines += [
            "# wait for the admin kubeconfig",
            f"i=0; until [ -s {q(layout.kubeconfig)} ]; do",
            f"  i=$((i + 1)); [ $i -le {SERVER_WAIT // 2} ] || "
            f'{{ echo "coco-stack: k3s wrote no {layout.kubeconfig} within {SERVER_WAIT} s" >&2; '
            "exit 1; }",
            "  sleep 2",
            "done",
        ]
    return "\n".join(lines) + "\n"


def uninstall(role: Role, layout: Layout = LAYOUT) -> str:
    """The delete command: stop k3s and everything it started, undo `install` and remove the
    state k3s created. Fails when something cannot be unmounted or removed."""
    q = shlex.quote
    name = service(role)
    shim_dir = f"{layout.data_dir}/data/"
    return "\n".join([
        "set -eu",
        "# tree PID...: the processes and all their descendants",
        'tree() { for p in "$@"; do echo "$p"; '
        "tree $(ps -e -o ppid= -o pid= | awk -v p=\"$p\" '$1 == p { print $2 }'); done; }",
        "# clear_dir DIR: unmount everything below DIR, deepest first, then remove DIR (only its",
        "# contents when DIR is itself a mount point, e.g. a disk mounted for the data dir)",
        "clear_dir() {",
        "  for m in $(awk -v d=\"$1/\" 'index($2, d) == 1 { print $2 }' /proc/self/mounts "
        "| sort -r); do",
        '    umount "$m" 2>/dev/null || umount -l "$m"',
        "  done",
        '  if mountpoint -q "$1"; then',
        '    find "$1" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +',
        '  else rm -rf --one-file-system "$1"; fi',
        "}",
        "# KillMode=process leaves the containerd shims running on a stop: note them and their",
        "# children (the pods, kata's VMs) first, while they are still a tree. A shim's first word",
        "# is its binary under the data dir (matching anywhere in the command line would match",
        "# this script's own shell).",
        f"shims=$(ps -e -o pid= -o args= | awk -v d={q(shim_dir)} "
        "'index($2, d) == 1 && $2 ~ /[/]bin[/]containerd-shim/ { print $1 }')",
        "pids=$(tree $shims)",
        "# every process of the unit's cgroup (kata's shims under /opt/kata included), while the",
        "# unit is active; then stop it for good and kill what was noted above and survived",
        f"systemctl kill --signal=KILL {name} 2>/dev/null || true",
        f"systemctl disable --now {name} 2>/dev/null || true",
        '[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true',
        "# the pods' network: CNI namespaces and links, the KUBE-/CNI-/flannel iptables rules",
        "for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do",
        '  ip netns delete "$ns"',
        "done",
        "for link in cni0 flannel.1 flannel-v6.1 flannel-wg flannel-wg-v6 kube-ipvs0; do",
        '  ip link delete "$link" 2>/dev/null || true',
        "done",
        "for t in iptables ip6tables; do",
        '  command -v "$t-save" >/dev/null && command -v "$t-restore" >/dev/null || continue',
        '  "$t-save" | grep -v -e KUBE- -e CNI- | grep -iv flannel | "$t-restore" ||',
        '    echo "coco-stack: could not remove the k3s rules from $t; check $t-save" >&2',
        "done",
        "# what k3s and kubelet mounted and wrote",
        *(
            f"clear_dir {q(d)}"
            for d in (layout.run_dir, layout.kubelet_dir, layout.data_dir, layout.flannel_dir,
                      layout.cni_dir, layout.node_dir)
        ),
        "# what install wrote",
        f"rm -f {q(layout.unit(role))} {q(layout.binary)} {q(layout.config)} {q(layout.token)} "
        f"{q(layout.kubeconfig)}",
        "systemctl daemon-reload",
        "",
    ])


def read_kubeconfig(layout: Layout = LAYOUT) -> str:
    return f"cat {shlex.quote(layout.kubeconfig)}"


def kubeconfig_for(text: str, address: str) -> str:
    """The server's admin kubeconfig with its local API address replaced by `address`."""
    data = yaml.safe_load(text) if text else None
    if not isinstance(data, dict):
        return ""
    for cluster in data.get("clusters") or ():
        inner = cluster.get("cluster") or {}
        if inner.get("server") == LOCAL_SERVER:
            inner["server"] = server_url(address)
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
