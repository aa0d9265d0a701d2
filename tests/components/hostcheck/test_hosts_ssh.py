"""The labelling half over real SSH: the k3s agent join command the wiring generates, run through
the loopback sshd of test_ssh.py against a fake host layout.

What is real: sshd and ssh, the shell, curl (the "release" is a file:// URL to a fake binary in
tmp_path), sha256sum, cmp; for the delete also ps, kill, mount/umount (tmpfs mounts under
tmp_path, so the tests need root) and rm. What is fake: `systemctl`, `ip` and the
iptables-save/-restore pairs (scripts on PATH that record their arguments; iptables-save prints a
fixed rule set, iptables-restore records what it is given) and the paths (components.k3s.Layout
under tmp_path). The host check half is test_ssh.py; both skip without sshd unless
COCO_REQUIRE_SSH_TESTS=1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import clouds, hosts, k3s
from spec import labels, runtime_plan, versions
from spec.model import NodePool, Spec
from spec.validate import validate
from tests.components.hostcheck import test_ssh, trees

pytestmark = pytest.mark.ssh

ssh_host = test_ssh.ssh_host  # the loopback sshd fixture
Host = test_ssh.Host

TOKEN = "K10-test-join-token-0123456789"
BINARY = b"#!/bin/sh\necho fake k3s\n"
# what the fake iptables-save prints: the host's own rule, and the ones k3s's pods added
RULES = (
    "*filter\\n-A INPUT -p tcp --dport 22 -j ACCEPT\\n-A FORWARD -j KUBE-FORWARD\\n"
    "-A FORWARD -j CNI-FORWARD\\n-A FORWARD -j FLANNEL-FWD\\nCOMMIT\\n"
)


@dataclass(frozen=True)
class Fake:
    layout: k3s.Layout
    release: k3s.Release
    source: Path  # the fake release binary
    log: Path  # systemctl calls, one per line
    path: str  # PATH prefix with the fake systemctl

    def run(self, host: Host, command: str, stdin: str | None = None) -> tuple[int, str]:
        result = host.run(f"PATH={self.path}:$PATH; export PATH\n{command}", stdin=stdin)
        return result.returncode, result.stderr

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def fake(
    tmp: Path,
    binary: bytes = BINARY,
    digest: str | None = None,
    sha512: str | None = None,
    size: int | None = None,
) -> Fake:
    """A fake host layout and release serving `binary`; the pins default to BINARY's size,
    sha256 and sha512, each replaceable (a wrong one must refuse the install)."""
    release_dir = tmp / "release" / "v1.34.3+test1"
    release_dir.mkdir(parents=True)
    (release_dir / "k3s-fake").write_bytes(binary)
    bin_dir = tmp / "fakebin"
    bin_dir.mkdir()
    log = tmp / "systemctl.log"
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    systemctl.chmod(0o755)
    net = tmp / "net.log"
    fakes = {
        "ip": f'echo "ip $*" >> {net}\n'
        '[ "$*" = "netns list" ] && printf "cni-1a2b (id: 0)\\nlab-ns\\n"\nexit 0\n',
        "iptables-save": f"printf '{RULES}'\n",
        "iptables-restore": f"echo iptables-restore >> {net}; cat >> {net}\n",
        "ip6tables-save": "printf '*filter\\nCOMMIT\\n'\n",
        "ip6tables-restore": f"echo ip6tables-restore >> {net}; cat >> {net}\n",
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    root = tmp / "host"
    layout = k3s.Layout(
        binary=str(root / "usr/local/bin/k3s"),
        config_dir=str(root / "etc/rancher/k3s"),
        unit_dir=str(root / "etc/systemd/system"),
        data_dir=str(root / "var/lib/rancher/k3s"),
        run_dir=str(root / "run/k3s"),
        kubelet_dir=str(root / "var/lib/kubelet"),
        flannel_dir=str(root / "run/flannel"),
        cni_dir=str(root / "var/lib/cni"),
        node_dir=str(root / "etc/rancher/node"),
    )
    release = k3s.Release(
        "v1.34.3+test1",
        f"file://{tmp / 'release'}",
        {
            platform.machine(): versions.K3sBinary(
                "k3s-fake",
                len(BINARY) if size is None else size,
                digest or hashlib.sha256(BINARY).hexdigest(),
                sha512 or hashlib.sha512(BINARY).hexdigest(),
            )
        },
    )
    return Fake(layout, release, release_dir / "k3s-fake", log, str(bin_dir))


def files(root: Path) -> dict[Path, tuple[int, bytes]]:
    """Every file under root: (mtime, contents)."""
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def snp_spec() -> Spec:
    config = {
        "coco:cluster": {"provider": "k3s", "server": "10.0.0.11"},
        "coco:nodePools": [
            {
                "name": "snp",
                "tee": "snp",
                "hosts": [
                    {"address": "10.0.0.11", "sshKey": "[k]"},
                    {"address": "10.0.0.12", "sshKey": "[k]"},
                ],
            }
        ],
    }
    secure = frozenset(f"coco:nodePools[0].hosts[{i}].sshKey" for i in range(2))
    spec, _ = validate(config, stack="t", secure_paths=secure)
    return spec


def snp_pool() -> NodePool:
    return snp_spec().node_pools[0]


def agent_command(pool: NodePool, f: Fake) -> str:
    nodes = clouds.pool_nodes(pool)
    config = k3s.NodeConfig(
        labels=nodes.labels,
        taints=[hosts.taint_text(t) for t in nodes.taints],
        server_url=k3s.server_url("10.0.0.11"),
    )
    return k3s.install("agent", config, f.layout, f.release)


class TestAgentJoinOverSsh:
    """The join command writes the pool's labels and taints where k3s reads them at registration,
    the token only to a root-only file, installs the pinned binary only when its checksum matches,
    is a no-op when rerun, and its delete removes what it wrote."""

    def test_join_labels_and_rerun(self, ssh_host: Host, tmp_path: Path) -> None:
        spec = snp_spec()
        pool = spec.node_pools[0]
        f = fake(tmp_path)
        command = agent_command(pool, f)
        assert TOKEN not in command

        rc, err = f.run(ssh_host, command, stdin=TOKEN)
        assert rc == 0, err
        config = yaml.safe_load(Path(f.layout.config).read_text())
        # the labels of the pool's nodes, which the RuntimeClass of its TEE selects
        registered = dict(item.split("=", 1) for item in config["node-label"])
        (plan,) = runtime_plan.runtime_classes(spec)
        selector = {k: v for k, v in plan.node_selector.items()
                    if k != runtime_plan.KATA_RUNTIME_READY}
        assert selector == {labels.POOL: "snp", labels.TEE: "snp"}
        assert selector.items() <= registered.items()
        assert registered[labels.WORKER] == ""
        assert config["node-taint"] == [
            f"{labels.STARTUP_TAINT_KEY}:NoSchedule",
            f"{labels.TEE}=snp:NoSchedule",
        ]
        assert config["server"] == "https://10.0.0.11:6443"
        assert config["token-file"] == f.layout.token
        token = Path(f.layout.token)
        assert token.read_text() == TOKEN
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert Path(f.layout.binary).read_bytes() == BINARY
        unit = Path(f.layout.unit("agent")).read_text()
        assert f"ExecStart={f.layout.binary} agent --config {f.layout.config}" in unit
        # a restart stops k3s only: the shims (the pods, kata's VMs) keep running
        assert "\nKillMode=process\n" in unit
        assert f.calls() == [
            "daemon-reload", "enable k3s-agent.service", "restart k3s-agent.service",
        ]
        assert not any(TOKEN in call for call in f.calls())

        # rerun: nothing downloaded (the release is gone), nothing rewritten, no restart
        f.source.unlink()
        before = files(tmp_path / "host")
        rc, err = f.run(ssh_host, command, stdin=TOKEN)
        assert rc == 0, err
        assert files(tmp_path / "host") == before
        assert f.calls()[3:] == [
            "daemon-reload", "enable k3s-agent.service", "start k3s-agent.service",
        ]

        # delete undoes create
        Path(f.layout.data_dir).mkdir(parents=True)  # state the service would have created
        rc, err = f.run(ssh_host, k3s.uninstall("agent", f.layout))
        assert rc == 0, err
        left = sorted(p for p in Path(tmp_path / "host").rglob("*") if p.is_file())
        assert left == []
        assert not Path(f.layout.data_dir).exists()
        assert "disable --now k3s-agent.service" in f.calls()

    @pytest.mark.parametrize(
        "wrong",
        [
            {"sha512": hashlib.sha512(b"another binary\n").hexdigest()},
            {"size": len(BINARY) + 1},
        ],
        ids=["sha512", "size"],
    )
    def test_one_wrong_pin_installs_nothing(
        self, ssh_host: Host, tmp_path: Path, wrong: dict[str, Any]
    ) -> None:
        """The served binary matches its sha256, but the second source's sha512 or size does
        not: nothing is installed (one wrong source alone cannot let a binary in)."""
        f = fake(tmp_path, **wrong)
        rc, err = f.run(ssh_host, agent_command(snp_pool(), f), stdin=TOKEN)
        assert rc != 0
        assert "does not match its pinned size" in err
        assert not Path(f.layout.binary).exists()
        assert not Path(f.layout.binary + ".new").exists()

    def test_checksum_mismatch_installs_nothing(self, ssh_host: Host, tmp_path: Path) -> None:
        f = fake(tmp_path, binary=b"tampered\n", digest=hashlib.sha256(BINARY).hexdigest())
        rc, err = f.run(ssh_host, agent_command(snp_pool(), f), stdin=TOKEN)
        assert rc != 0
        assert "does not match its pinned size" in err
        assert not Path(f.layout.binary).exists()
        assert not Path(f.layout.binary + ".new").exists()
        assert "restart k3s-agent.service" not in f.calls()

    def test_refuses_without_token(self, ssh_host: Host, tmp_path: Path) -> None:
        f = fake(tmp_path)
        rc, err = f.run(ssh_host, agent_command(snp_pool(), f), stdin="")
        assert rc != 0
        assert "no join token on stdin" in err
        assert f.calls() == []


def mounted_under(root: Path) -> list[str]:
    """Mount points below root, from this mount namespace's table."""
    with open("/proc/self/mounts", encoding="utf-8") as table:
        points = [line.split()[1] for line in table]
    return sorted(p for p in points if p.startswith(f"{root}/"))


def mount(path: Path, *options: str) -> None:
    """A tmpfs at path; skips (fails under COCO_REQUIRE_SSH_TESTS=1) where mounting is denied."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", *options, "tmpfs", str(path)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    if result.returncode != 0:
        test_ssh.require(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped counts as dead)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def host_state(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts (killed after it) and mounts under tmp_path (unmounted)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    for point in reversed(mounted_under(tmp_path)):
        subprocess.run(["umount", "-l", point], check=False, timeout=30)


def spawn(started: list[subprocess.Popen[bytes]], argv0: str, script: str) -> int:
    """Start `script` (bash) as a process whose command line begins with argv0; its pid."""
    process = subprocess.Popen(
        ["bash", "-c", 'exec -a "$0" bash -c "$1"', argv0, script], start_new_session=True
    )
    started.append(process)
    return process.pid


def children(pid: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        if found:
            return [int(p) for p in found]
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no child")


class TestUninstallOverSsh:
    """The delete undoes what k3s and kubelet did on the host: the containerd shims and their
    children are killed (KillMode=process leaves them running), every mount below k3s's and
    kubelet's directories is unmounted deepest first, those directories, the node password, the
    CNI namespaces and links and k3s's iptables rules are removed; a directory that cannot be
    removed fails the delete."""

    def test_undoes_everything(
        self, ssh_host: Host, tmp_path: Path, host_state: list[subprocess.Popen[bytes]]
    ) -> None:
        f = fake(tmp_path)
        rc, err = f.run(ssh_host, agent_command(snp_pool(), f), stdin=TOKEN)
        assert rc == 0, err
        layout = f.layout
        # pod volumes (one nested in another) and a container rootfs, with data in them
        volume = Path(layout.kubelet_dir) / "pods/uid-1/volumes/kubernetes.io~empty-dir/cache"
        mount(volume)
        (volume / "data").write_text("pod data\n")
        mount(volume / "nested")
        rootfs = Path(layout.run_dir) / "containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs"
        mount(rootfs)
        for state in (
            Path(layout.data_dir) / "agent/containerd/state",
            Path(layout.flannel_dir) / "subnet.env",
            Path(layout.cni_dir) / "networks/cbr0/10.42.0.2",
            Path(layout.node_dir) / "password",
        ):
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text("state\n")
        # a shim with a child (a pod's process), and a bystander that only mentions the path
        shim_bin = f"{layout.data_dir}/data/0123abcd/bin/containerd-shim-runc-v2"
        shim = spawn(host_state, shim_bin, "sleep 600 & wait")
        (pod,) = children(shim)
        bystander = spawn(host_state, "bystander", f"sleep 600 & wait # {shim_bin}")
        assert len(mounted_under(tmp_path)) == 3

        rc, err = f.run(ssh_host, k3s.uninstall("agent", layout))
        assert rc == 0, err
        assert mounted_under(tmp_path) == []
        for gone in (layout.run_dir, layout.kubelet_dir, layout.data_dir, layout.flannel_dir,
                     layout.cni_dir, layout.node_dir):
            assert not Path(gone).exists(), gone
        assert sorted(p for p in (tmp_path / "host").rglob("*") if p.is_file()) == []
        assert not alive(shim) and not alive(pod)
        assert alive(bystander)
        assert "disable --now k3s-agent.service" in f.calls()
        assert "kill --signal=KILL k3s-agent.service" in f.calls()
        net = (tmp_path / "net.log").read_text()
        assert "ip netns delete cni-1a2b\n" in net and "lab-ns" not in net.replace(
            "ip netns list", ""
        )
        assert "ip link delete cni0\n" in net and "ip link delete flannel.1\n" in net
        # only the host's own rule is restored
        restored = net.split("iptables-restore\n", 1)[1].split("ip6tables-restore\n")[0]
        assert restored == "*filter\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"

    def test_data_dir_on_its_own_disk(
        self, ssh_host: Host, tmp_path: Path, host_state: list[subprocess.Popen[bytes]]
    ) -> None:
        """A data dir that is itself a mount point keeps its mount and loses its contents."""
        f = fake(tmp_path)
        data = Path(f.layout.data_dir)
        mount(data)
        (data / "agent").mkdir()
        (data / "agent/state").write_text("state\n")
        rc, err = f.run(ssh_host, k3s.uninstall("agent", f.layout))
        assert rc == 0, err
        assert mounted_under(tmp_path) == [str(data)]
        assert list(data.iterdir()) == []

    def test_what_cannot_be_removed_fails_the_delete(
        self, ssh_host: Host, tmp_path: Path, host_state: list[subprocess.Popen[bytes]]
    ) -> None:
        f = fake(tmp_path)
        readonly = tmp_path / "readonly"
        mount(readonly)
        (readonly / "cni/networks").mkdir(parents=True)
        (readonly / "cni/networks/lock").write_text("")
        subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True, timeout=30)
        layout = dataclasses.replace(f.layout, cni_dir=str(readonly / "cni"))
        rc, err = f.run(ssh_host, k3s.uninstall("agent", layout))
        assert rc != 0
        assert f"{readonly}/cni" in err and "Read-only file system" in err


class TestCheckCommandOverSsh:
    """The wiring's check command (program from stdin, then the check) gives the verdict the
    wiring parses, its host name the node name the labels go to; on a host that is not ready it
    fails, naming the host, the failing checks and their fixes on stderr."""

    def test_check_command(self, ssh_host: Host, tmp_path: Path) -> None:
        from components import hostcheck

        remote = tmp_path / "remote" / "coco-host-check.py"
        ready = trees.build(tmp_path / "tdx-ready", "tdx", "ready")
        result = ssh_host.run(
            hosts.check_command("tdx", "127.0.0.1", str(remote), root=str(ready)),
            stdin=hostcheck.script_source(),
        )
        assert result.returncode == 0, result.stderr
        assert remote.read_text() == hostcheck.script_source()
        assert hosts.checked_host(result.stdout, "127.0.0.1") == "node-tdx"

        off = trees.build(tmp_path / "tdx-off", "tdx", "bios-off")
        result = ssh_host.run(
            hosts.check_command("tdx", "127.0.0.1", str(remote), root=str(off)),
            stdin=hostcheck.script_source(),
        )
        assert result.returncode == 1, result.stderr
        explanation = result.stderr.splitlines()
        assert explanation[0] == "host 127.0.0.1 (node-tdx) is not ready for tee tdx"
        assert [line.split(":")[0].strip() for line in explanation[1::2]] == [
            "tdx-bios", "tdx-parameter", "tdx-module",
        ]
        assert all(line.startswith("    fix: ") for line in explanation[2::2])
        # the verdict is still on stdout, and the wiring would refuse it too
        with pytest.raises(hostcheck.HostNotReady, match=r"host 127\.0\.0\.1 \(node-tdx\)"):
            hosts.checked_host(result.stdout, "127.0.0.1")
