"""The labelling half over real SSH: the k3s agent join command the wiring generates, run through
the loopback sshd of test_ssh.py against a fake host layout.

What is real: sshd and ssh, the shell, curl (the "release" is a file:// URL to a fake binary in
tmp_path), sha256sum, cmp. What is fake: `systemctl` (a script on PATH that records its
arguments) and the paths (components.k3s.Layout under tmp_path). The host check half is
test_ssh.py; both skip without sshd unless COCO_REQUIRE_SSH_TESTS=1.
"""

from __future__ import annotations

import hashlib
import platform
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components import clouds, hosts, k3s, labels, runtime_plan
from components.spec import NodePool, Spec
from components.validate import validate
from tests.hostcheck import test_ssh, trees

ssh_host = test_ssh.ssh_host  # the loopback sshd fixture
Host = test_ssh.Host

TOKEN = "K10-test-join-token-0123456789"
BINARY = b"#!/bin/sh\necho fake k3s\n"


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


def fake(tmp: Path, binary: bytes = BINARY, digest: str | None = None) -> Fake:
    release_dir = tmp / "release" / "v1.34.3+test1"
    release_dir.mkdir(parents=True)
    (release_dir / "k3s-fake").write_bytes(binary)
    bin_dir = tmp / "fakebin"
    bin_dir.mkdir()
    log = tmp / "systemctl.log"
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    systemctl.chmod(0o755)
    root = tmp / "host"
    layout = k3s.Layout(
        binary=str(root / "usr/local/bin/k3s"),
        config_dir=str(root / "etc/rancher/k3s"),
        unit_dir=str(root / "etc/systemd/system"),
        data_dir=str(root / "var/lib/rancher/k3s"),
    )
    release = k3s.Release(
        "v1.34.3+test1",
        f"file://{tmp / 'release'}",
        {platform.machine(): ("k3s-fake", digest or hashlib.sha256(BINARY).hexdigest())},
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

    def test_checksum_mismatch_installs_nothing(self, ssh_host: Host, tmp_path: Path) -> None:
        f = fake(tmp_path, binary=b"tampered\n", digest=hashlib.sha256(BINARY).hexdigest())
        rc, err = f.run(ssh_host, agent_command(snp_pool(), f), stdin=TOKEN)
        assert rc != 0
        assert "does not match its pinned sha256" in err
        assert not Path(f.layout.binary).exists()
        assert not Path(f.layout.binary + ".new").exists()
        assert "restart k3s-agent.service" not in f.calls()

    def test_refuses_without_token(self, ssh_host: Host, tmp_path: Path) -> None:
        f = fake(tmp_path)
        rc, err = f.run(ssh_host, agent_command(snp_pool(), f), stdin="")
        assert rc != 0
        assert "no join token on stdin" in err
        assert f.calls() == []


class TestCheckCommandOverSsh:
    """The wiring's check command (program from stdin, then the check) gives the verdict the
    wiring parses; its host name is the node name the labels go to."""

    def test_check_command(self, ssh_host: Host, tmp_path: Path) -> None:
        from components import hostcheck

        remote = tmp_path / "remote" / "coco-host-check.py"
        ready = trees.build(tmp_path / "tdx-ready", "tdx", "ready")
        result = ssh_host.run(
            hosts.check_command("tdx", str(remote), root=str(ready)),
            stdin=hostcheck.script_source(),
        )
        assert result.returncode == 0, result.stderr
        assert remote.read_text() == hostcheck.script_source()
        assert hosts.checked_host(result.stdout, "127.0.0.1") == "node-tdx"

        off = trees.build(tmp_path / "tdx-off", "tdx", "bios-off")
        result = ssh_host.run(
            hosts.check_command("tdx", str(remote), root=str(off)),
            stdin=hostcheck.script_source(),
        )
        assert result.returncode == 0, result.stderr
        with pytest.raises(hostcheck.HostNotReady, match=r"host 127\.0\.0\.1 \(node-tdx\)"):
            hosts.checked_host(result.stdout, "127.0.0.1")
