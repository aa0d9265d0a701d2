"""The host check over real SSH: a throwaway sshd on 127.0.0.1 (pubkey only, no PAM, every file
in tmp_path), the program copied to the "host" with `ssh ... 'cat > path'` and run there with
the project's remote command against a fake sysfs root.

Needs root and openssh-server/openssh-client (Debian packages); without them the test skips,
and with COCO_REQUIRE_SSH_TESTS=1 (CI) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import hostcheck
from tests.components.hostcheck import trees

pytestmark = pytest.mark.ssh

SSHD = "/usr/sbin/sshd"
TIMEOUT = 30  # seconds, for every ssh command


def require(reason: str) -> None:
    """Skip, or fail when CI requires the SSH tests."""
    if os.environ.get("COCO_REQUIRE_SSH_TESTS") == "1":
        pytest.fail(f"COCO_REQUIRE_SSH_TESTS=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "coco-test", "-f", str(path)],
        check=True, timeout=TIMEOUT, capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


@dataclass(frozen=True)
class Host:
    """A loopback SSH "host" and the ssh argv that reaches it."""

    port: int
    ssh: tuple[str, ...]

    def run(self, command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.ssh, command], input=stdin, capture_output=True, text=True,
            timeout=TIMEOUT, check=False,
        )


@pytest.fixture
def ssh_host(tmp_path: Path) -> Iterator[Host]:
    missing = [tool for tool in (SSHD, "ssh", "ssh-keygen") if not shutil.which(tool)]
    if missing:
        require(f"{', '.join(missing)} not installed (apt-get install openssh-server "
                "openssh-client)")
    if os.geteuid() != 0:
        require("sshd needs root here (privilege separation)")
    # sshd refuses to start without its privilege separation directory; the Debian package
    # creates it at boot (tmpfiles), which a container may never have run.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    host_public = keygen(keys / "host_ed25519")
    user_public = keygen(keys / "user_ed25519")
    (keys / "authorized_keys").write_text(user_public + "\n")
    port = free_port()
    (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public}\n")
    user = "root"
    config = keys / "sshd_config"
    config.write_text(
        "\n".join([
            "ListenAddress 127.0.0.1",
            f"HostKey {keys / 'host_ed25519'}",
            f"PidFile {keys / 'sshd.pid'}",
            f"AuthorizedKeysFile {keys / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {user}",
            "StrictModes no",
            "LogLevel VERBOSE",
            "",
        ])
    )
    log = (tmp_path / "sshd.log").open("w")
    sshd = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if sshd.poll() is not None:
                pytest.fail(f"sshd exited: {(tmp_path / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not listen within 10 s")
                time.sleep(0.1)
        ssh = (
            "ssh", "-F", "/dev/null", "-p", str(port), "-i", str(keys / "user_ed25519"),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={keys / 'known_hosts'}",
            f"{user}@127.0.0.1",
        )
        yield Host(port, ssh)
    finally:
        sshd.terminate()
        try:
            sshd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sshd.kill()
            sshd.wait(timeout=10)
        log.close()


class TestOverSsh:
    """The shipped program, copied and run over real SSH, gives the same verdict as locally, and
    the wiring's remote command fails on a host that is not ready, explaining why on stderr (so
    pulumi-command records nothing and shows the reason)."""

    def test_copy_and_check(self, ssh_host: Host, tmp_path: Path) -> None:
        remote = tmp_path / "remote" / "coco-host-check.py"
        copy = ssh_host.run(
            f"mkdir -p {remote.parent} && cat > {remote}", stdin=hostcheck.script_source()
        )
        assert copy.returncode == 0, copy.stderr
        assert remote.read_text() == hostcheck.script_source()

        ready = trees.build(tmp_path / "snp-ready", "snp", "ready")
        result = ssh_host.run(hostcheck.remote_command("snp", str(remote), root=str(ready)))
        assert result.returncode == 0, result.stderr
        verdict = hostcheck.parse_verdict(result.stdout, f"127.0.0.1:{ssh_host.port}")
        assert (verdict.host, verdict.tee, verdict.ready) == ("node-snp", "snp", True)
        assert result.stdout == trees.run(ready, "snp")[1]

        off = trees.build(tmp_path / "tdx-off", "tdx", "parameter-off")
        result = ssh_host.run(
            hostcheck.remote_command("tdx", str(remote), root=str(off), address="127.0.0.1")
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.splitlines()[:3] == [
            "host 127.0.0.1 (node-tdx) is not ready for tee tdx",
            "  tdx-parameter: /sys/module/kvm_intel/parameters/tdx = N: the kvm_intel module "
            "parameter is off",
            "    fix: boot with kvm_intel.tdx=1 nohibernate on the kernel command line (or "
            "`options kvm_intel tdx=1` in /etc/modprobe.d/kvm.conf and reload kvm_intel)",
        ]
        verdict = hostcheck.parse_verdict(result.stdout, "127.0.0.1")
        assert not verdict.ready
        assert [(c.name, c.reason) for c in verdict.failures] == [
            ("tdx-parameter",
             "/sys/module/kvm_intel/parameters/tdx = N: the kvm_intel module parameter is off"),
            ("tdx-module",
             "no 'virt/tdx: module initialized' in the kernel log because of tdx-parameter"),
        ]

        # bad usage fails too (exit 2), with nothing on stdout
        usage = ssh_host.run(f"python3 -I {remote} --root {off} --tee sgx")
        assert (usage.returncode, usage.stdout) == (2, "")


class TestSkipPolicy:
    """Without sshd the SSH test skips, unless CI demands it with COCO_REQUIRE_SSH_TESTS=1."""

    def test_skips_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("COCO_REQUIRE_SSH_TESTS", raising=False)
        with pytest.raises(pytest.skip.Exception):
            require("sshd not installed")

    def test_fails_when_required(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("COCO_REQUIRE_SSH_TESTS", "1")
        with pytest.raises(pytest.fail.Exception, match="COCO_REQUIRE_SSH_TESTS=1 but sshd"):
            require("sshd not installed")
