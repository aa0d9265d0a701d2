"""The bare-metal hosts wiring under Pulumi mocks: every host is checked and joined (k3s) or
labelled (existing cluster), with labels the RuntimeClasses select, secrets kept secret, and a
host that is not ready stopping the program with its name and failures.

Provider outputs are patched where the wiring reads them (the check's stdout, the join token,
the server's kubeconfig); everything else is the mock echo of the inputs. The check is simulated
as pulumi-command runs it: its create text runs in a shell (the program on stdin) against a fake
host tree, and a non-zero exit is the provider's error, with the command's stdout and stderr.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli import render
from cli.render import Registration, Secret
from components import hostcheck, k3s
from spec import labels, runtime_plan, versions
from spec.errors import SpecError
from spec.validate import validate
from tests.components.hostcheck import trees
from tests.conftest import one, patch_provider_outputs, resources_of
from tests.spec.reference_values import complete

COMMAND = "command:remote:Command"
TOKEN = "K10-mock-token-abcdefghijklmnopqrstuvwxyz"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-of-{address}\n-----END OPENSSH PRIVATE KEY-----"
ADMIN_KEY = "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCmFkbWluCg=="
K3S_YAML = f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context: {{cluster: default, user: default}}
  name: default
current-context: default
kind: Config
users:
- name: default
  user: {{client-certificate-data: Q0VSVA==, client-key-data: {ADMIN_KEY}}}
"""
SNP_HOSTS = ("10.0.0.11", "10.0.0.12")
TDX_HOSTS = ("10.0.0.21",)


def host(address: str) -> dict[str, Any]:
    return {"address": address, "sshKey": KEY.format(address=address)}


def stack(cluster: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """An SNP pool of two hosts and a TDX pool of one."""
    config = {
        "coco:cluster": cluster,
        "coco:nodePools": [
            {"name": "snp", "tee": "snp", "hosts": [host(a) for a in SNP_HOSTS]},
            {"name": "tdx", "tee": "tdx", "hosts": [host(a) for a in TDX_HOSTS]},
        ],
    }
    secure = frozenset(
        [f"coco:nodePools[0].hosts[{i}].sshKey" for i in range(len(SNP_HOSTS))]
        + [f"coco:nodePools[1].hosts[{i}].sshKey" for i in range(len(TDX_HOSTS))]
    )
    return config, secure


K3S = {"provider": "k3s", "server": SNP_HOSTS[0]}
EXISTING = {"provider": "existing", "context": "lab"}

def _connection(inputs: dict[str, Any]) -> dict[str, Any]:
    """The connection as the mock receives it: the SDK marks it secret (wire-format wrapper)."""
    connection: dict[str, Any] = inputs["connection"]
    return connection.get("value", connection)


class CommandFailed(Exception):
    """What pulumi-command reports for a command that exits non-zero."""


def run_check(tmp: Path, inputs: dict[str, Any], case: str) -> str:
    # one directory per host: the mock registers hosts concurrently
    """Run a check command's create text as the provider would, on a fake host tree of `case`:
    its stdout, or CommandFailed carrying stdout and stderr (pulumi-command v1.2.1
    provider/pkg/provider/remote/commandOutputs.go: "%w: running %q:\n%s")."""
    create = inputs["create"]
    tee = re.search(r"--tee (\w+)", create)
    assert tee is not None, create
    where = tmp / _connection(inputs)["host"]
    root = trees.build(where / "root", tee[1], case)
    remote_dir = hostcheck.REMOTE_PATH.rsplit("/", 1)[0]
    local = create.replace(remote_dir, str(where / "remote")).replace(
        f"--tee {tee[1]}", f"--tee {tee[1]} --root {root}"
    )
    result = subprocess.run(
        ["sh", "-c", local], input=inputs["stdin"], capture_output=True, text=True, timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise CommandFailed(
            f"Process exited with status {result.returncode}: running {create!r}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result.stdout.removesuffix("\n")


def provider_outputs(
    tmp: Path, case: dict[str, str] | None = None
) -> Callable[[str, dict[str, Any]], Any]:
    """What the providers would report: the check's verdict (per address: a trees case, default
    ready) or its failure, the join token, the server's kubeconfig."""
    cases = {} if case is None else case

    def outputs(type_: str, inputs: dict[str, Any]) -> Any:
        if type_ == "random:index/randomPassword:RandomPassword":
            return {**inputs, "result": TOKEN}
        if type_ != COMMAND:
            return None
        create = inputs.get("create", "")
        address = _connection(inputs)["host"]
        if hostcheck.REMOTE_PATH in create and "--tee" in create:
            return {**inputs, "stdout": run_check(tmp, inputs, cases.get(address, "ready"))}
        if create == k3s.read_kubeconfig():
            return {**inputs, "stdout": K3S_YAML}
        return None

    return outputs


def commands(result: render.Render) -> list[Registration]:
    return resources_of(result, COMMAND)


def address_of(reg: Registration) -> str:
    connection = render.unwrap(reg.inputs["connection"])
    return str(connection["host"])


def node_config(reg: Registration) -> dict[str, Any]:
    """The k3s config.yaml an install command writes (between its heredoc markers)."""
    create = reg.inputs["create"]
    heredoc = r"config\.yaml\.new <<'COCO_STACK_EOF'\n(.*?)\nCOCO_STACK_EOF\n"
    match = re.search(heredoc, create, re.S)
    assert match is not None, create
    data: dict[str, Any] = yaml.safe_load(match[1])
    return data


@pytest.fixture
def k3s_render(
    render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> render.Render:
    patch_provider_outputs(monkeypatch, provider_outputs(tmp_path))
    config, secure = stack(K3S)
    result: render.Render = render_config(config, secure=secure)
    return result


class TestEveryHostGetsItsCommands:
    """Each host is checked with its pool's TEE; the server host runs the k3s server, every other
    host joins it as an agent, after its own check and after the server."""

    def test_checks(self, k3s_render: render.Render) -> None:
        checks = [c for c in commands(k3s_render) if hostcheck.REMOTE_PATH in c.inputs["create"]]
        tees = {address_of(c): re.findall(r"--tee (\w+)", c.inputs["create"]) for c in checks}
        assert tees == {"10.0.0.11": ["snp"], "10.0.0.12": ["snp"], "10.0.0.21": ["tdx"]}
        for check in checks:
            assert check.inputs["stdin"] == hostcheck.script_source()
            assert check.inputs["delete"] == f"rm -f {hostcheck.REMOTE_PATH}"

    def test_server_and_agents(self, k3s_render: render.Render) -> None:
        names = {r.urn: r.name for r in k3s_render.registrations}
        installs = {
            address_of(c): c for c in commands(k3s_render) if "k3s.service" in c.inputs["create"]
            or "k3s-agent.service" in c.inputs["create"]
        }
        assert sorted(installs) == ["10.0.0.11", "10.0.0.12", "10.0.0.21"]
        server = installs["10.0.0.11"]
        assert "k3s server --config" in server.inputs["create"]
        for install in installs.values():  # changes update in place, never uninstall first
            assert install.inputs["update"] == install.inputs["create"]
        assert server.inputs["delete"] == k3s.uninstall("server")
        for address in ("10.0.0.12", "10.0.0.21"):
            agent = installs[address]
            assert "k3s agent --config" in agent.inputs["create"]
            assert agent.inputs["delete"] == k3s.uninstall("agent")
            assert node_config(agent)["server"] == "https://10.0.0.11:6443"
            depends = {names[u] for u in agent.dependencies}
            check = next(
                c.name for c in commands(k3s_render)
                if address_of(c) == address and hostcheck.REMOTE_PATH in c.inputs["create"]
            )
            assert {server.name, check} <= depends
        # the install waits for the check through its create text, which is the install itself
        for install in installs.values():
            assert "triggers" not in install.inputs
            assert install.inputs["create"] == install.inputs["update"]

    def test_runtime_waits_for_hosts(self, k3s_render: render.Render) -> None:
        names = {r.urn: r.name for r in k3s_render.registrations}
        runtime = one(k3s_render, "coco:runtime:CocoRuntime")
        agents = {c.name for c in commands(k3s_render) if c.name.endswith("-agent")}
        assert len(agents) == 2
        assert agents <= {names.get(u, u.rsplit("::", 1)[-1]) for u in runtime.dependencies}


class TestLabelsMatchRuntimeClasses:
    """The labels each host registers with are the ones its pool's RuntimeClass selects (all but
    the label kata-deploy sets itself); agents carry the TEE and startup taints, the server only
    the startup taint (it runs the system pods)."""

    def test_labels_and_taints(self, k3s_render: render.Render) -> None:
        assert k3s_render.spec is not None
        pool_of = {h.address: p for p in k3s_render.spec.node_pools for h in p.hosts or ()}
        selectors = {
            rc.inputs["metadata"]["name"]: rc.inputs["scheduling"]["nodeSelector"]
            for rc in resources_of(k3s_render, "kubernetes:node.k8s.io/v1:RuntimeClass")
        }
        plans = {p.name: p for p in runtime_plan.runtime_classes(k3s_render.spec)}
        assert sorted(selectors) == sorted(plans) == ["kata-qemu-snp", "kata-qemu-tdx"]
        checked = []
        for reg in commands(k3s_render):
            if "config.yaml.new" not in reg.inputs["create"]:
                continue
            checked.append(address_of(reg))
            pool = pool_of[address_of(reg)]
            config = node_config(reg)
            registered = dict(item.split("=", 1) for item in config["node-label"])
            selector = dict(selectors[f"kata-qemu-{pool.tee}"])
            assert selector.pop(runtime_plan.KATA_RUNTIME_READY) == "true"
            assert selector == {labels.POOL: pool.name, labels.TEE: pool.tee}
            assert selector.items() <= registered.items()
            startup = f"{labels.STARTUP_TAINT_KEY}:NoSchedule"
            if reg.name.endswith("-agent"):
                assert config["node-taint"] == [startup, f"{labels.TEE}={pool.tee}:NoSchedule"]
            else:
                assert config["node-taint"] == [startup]
                assert config["tls-san"] == ["10.0.0.11"]
        assert sorted(checked) == sorted([*SNP_HOSTS, *TDX_HOSTS])  # every host, once


class TestSecrets:
    """SSH keys, the join token and the kubeconfig are secrets in every input, and no rendered
    file carries them in plain text."""

    def test_ssh_keys(self, k3s_render: render.Render) -> None:
        for reg in commands(k3s_render):
            assert isinstance(reg.inputs["connection"], Secret)
            key = render.unwrap(reg.inputs["connection"])["privateKey"]
            assert key == KEY.format(address=address_of(reg))
        text = render.dumps_json(k3s_render.document())
        assert "PRIVATE KEY" not in text
        assert "key-of-" not in text

    def test_join_token(self, k3s_render: render.Render) -> None:
        installs = [c for c in commands(k3s_render) if "config.yaml.new" in c.inputs["create"]]
        assert len(installs) == 3
        for reg in installs:
            assert isinstance(reg.inputs["stdin"], Secret)
            assert render.unwrap(reg.inputs["stdin"]) == TOKEN
            assert TOKEN not in reg.inputs["create"]
        assert TOKEN not in render.dumps_json(k3s_render.document())

    def test_kubeconfig(self, k3s_render: render.Render) -> None:
        provider = one(k3s_render, "pulumi:providers:kubernetes")
        assert isinstance(provider.inputs["kubeconfig"], Secret)
        kubeconfig = yaml.safe_load(render.unwrap(provider.inputs["kubeconfig"]))
        assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.0.0.11:6443"
        assert kubeconfig["users"][0]["user"]["client-key-data"] == ADMIN_KEY
        assert ADMIN_KEY not in render.dumps_json(k3s_render.document())
        read = next(c for c in commands(k3s_render) if c.inputs["create"] == k3s.read_kubeconfig())
        assert read.inputs["logging"] == "none"


class TestHostNotReady:
    """`pulumi up` stops on a host that is not ready: the check command itself fails (so Pulumi
    records no state for it and the next `pulumi up` checks the host again), and the provider's
    error names the host and each failing check with its fix."""

    def test_stops_with_host_and_reason(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        patch_provider_outputs(monkeypatch, provider_outputs(tmp_path, {"10.0.0.21": "bios-off"}))
        config, secure = stack(K3S)
        with pytest.raises(CommandFailed) as caught:
            render_config(config, secure=secure)
        message = str(caught.value)
        assert message.startswith("Process exited with status 1: ")
        assert "\nhost 10.0.0.21 (node-tdx) is not ready for tee tdx\n" in message
        assert "  tdx-bios: no 'virt/tdx: BIOS enabled: private KeyID range'" in message
        assert "    fix: enable in the BIOS: TME, TME-MT" in message

    def test_every_check_names_its_address(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        patch_provider_outputs(monkeypatch, provider_outputs(tmp_path))
        config, secure = stack(K3S)
        result = render_config(config, secure=secure)
        checks = [c for c in commands(result) if hostcheck.REMOTE_PATH in c.inputs["create"]]
        assert len(checks) == 3
        for check in checks:
            assert f"--address {address_of(check)}" in check.inputs["create"]
            assert "||" not in check.inputs["create"]  # nothing turns "not ready" into success

    def test_no_verdict(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        ready = provider_outputs(tmp_path)

        def outputs(type_: str, inputs: dict[str, Any]) -> Any:
            if (
                type_ == COMMAND
                and _connection(inputs)["host"] == "10.0.0.12"
                and hostcheck.REMOTE_PATH in inputs.get("create", "")
            ):
                return {**inputs, "stdout": "python3: command not found"}
            return ready(type_, inputs)

        patch_provider_outputs(monkeypatch, outputs)
        config, secure = stack(K3S)
        no_verdict = r"host 10\.0\.0\.12: the host check gave no verdict"
        with pytest.raises(hostcheck.VerdictError, match=no_verdict):
            render_config(config, secure=secure)


class TestExistingCluster:
    """Hosts of an existing cluster are checked, then their node (named by the verdict) gets the
    pool's labels through the Kubernetes API; nothing is installed on them."""

    def test_node_patches(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        patch_provider_outputs(monkeypatch, provider_outputs(tmp_path))
        config, secure = stack(EXISTING)
        result = render_config(config, secure=secure)
        assert all("config.yaml.new" not in c.inputs["create"] for c in commands(result))
        assert len(commands(result)) == 3
        patches = resources_of(result, "kubernetes:core/v1:NodePatch")
        seen = {
            (p.inputs["metadata"]["name"], p.inputs["metadata"]["labels"][labels.POOL])
            for p in patches
        }
        # both SNP fake hosts report the host name node-snp
        assert sorted(seen) == [("node-snp", "snp"), ("node-tdx", "tdx")]
        assert len(patches) == 3
        for patch in patches:
            assert "spec" not in patch.inputs  # taints: see components.hosts
            assert patch.inputs["metadata"]["labels"][labels.WORKER] == ""


class TestSampleStacks:
    """The sample stacks render: every host is checked, SSH keys stay redacted."""

    @pytest.mark.parametrize("name,checks", [("baremetal-snp", 2), ("baremetal-tdx", 1)])
    def test_render(self, render_stack: Any, name: str, checks: int) -> None:
        result = render_stack(name)
        found = [c for c in commands(result) if hostcheck.REMOTE_PATH in c.inputs["create"]]
        assert len(found) == checks
        assert all(isinstance(c.inputs["connection"], Secret) for c in commands(result))
        assert "REPLACE" not in render.dumps_json(result.document())


def _errors(config: dict[str, Any], secure: frozenset[str]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        validate(config, stack="t", secure_paths=secure)
    return [(i.path, i.message) for i in caught.value.issues if i.severity == "error"]


class TestRules:
    """One mistake each: the error names the key path."""

    def test_k3s_needs_server(self) -> None:
        config, secure = stack({"provider": "k3s"})
        assert _errors(config, secure) == [("coco:cluster.server", "a k3s cluster needs a server")]

    def test_server_must_be_a_host(self) -> None:
        config, secure = stack({"provider": "k3s", "server": "10.9.9.9"})
        assert _errors(config, secure) == [
            ("coco:cluster.server", "'10.9.9.9' is not one of the pools' hosts")
        ]

    def test_server_only_for_k3s(self) -> None:
        config, secure = stack({**EXISTING, "server": "10.0.0.11"})
        assert _errors(config, secure) == [
            ("coco:cluster.server", "server does not apply to cluster provider 'existing'")
        ]

    @pytest.mark.parametrize(
        "address",
        ["$(reboot)", "a b", "node-1\nreboot", "[fd00::1]", "root@node-1", "10.0.0.1:22",
         "fe80::1%eth0", "node_1", "-node"],
    )
    def test_address_is_a_name_or_ip(self, address: str) -> None:
        config, secure = stack(EXISTING)
        config["coco:nodePools"][1]["hosts"][0]["address"] = address
        with pytest.raises(SpecError) as caught:
            validate(config, stack="t", secure_paths=secure)
        (issue,) = [i for i in caught.value.issues if i.severity == "error"]
        assert (issue.path, issue.message) == (
            "coco:nodePools[1].hosts[0].address", f"{address!r} is not a host name or IP address"
        )
        assert "'10.0.0.11'" in issue.hint and "'fd00::11'" in issue.hint

    @pytest.mark.parametrize("address", ["Node-1.Lab.example", "fd00::11", "10.0.0.99", "n1"])
    def test_valid_addresses(self, address: str) -> None:
        config, secure = stack(EXISTING)
        config["coco:nodePools"][1]["hosts"][0]["address"] = address
        spec, _ = validate(config, stack="t", secure_paths=secure)
        assert spec.node_pools[1].hosts is not None
        assert spec.node_pools[1].hosts[0].address == address

    def test_user_must_be_root(self) -> None:
        config, secure = stack(EXISTING)
        config["coco:nodePools"][0]["hosts"][1]["user"] = "ubuntu"
        with pytest.raises(SpecError) as caught:
            validate(config, stack="t", secure_paths=secure)
        (issue,) = [i for i in caught.value.issues if i.severity == "error"]
        assert issue.path == "coco:nodePools[0].hosts[1].user"
        assert issue.message == (
            "SSH user 'ubuntu': the stack runs every host command as root and does not use sudo"
        )
        assert issue.hint.startswith("set user: root (or leave it out)")

    def test_k3s_without_pinned_binary(self) -> None:
        config = {
            "coco:cluster": {"provider": "k3s", "server": "z-1"},
            "coco:nodePools": [{"name": "se", "tee": "se", "hosts": [host("z-1")]}],
        }
        errors = _errors(config, frozenset({"coco:nodePools[0].hosts[0].sshKey"}))
        assert errors == [
            (
                "coco:nodePools[0].tee",
                f"k3s {versions.K3S_VERSION} has no pinned s390x binary for se hosts: "
                f"{versions.K3S_NO_BUILD['s390x']}",
            )
        ]
        assert "no s390x build since December 2023 (k3s-io/k3s#8987)" in errors[0][1]


class TestHostKeys:
    """A pinned SSH host key reaches every connection; production refuses hosts without one."""

    KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBqbHAiRSZBmWrRCjnVpd2AYZXvN6Rs4E0ZcmDkrbJ3X"

    def test_production_needs_host_keys(self) -> None:
        config, secure = stack(EXISTING)
        config["coco:environment"] = "production"
        config["coco:kbs"] = {"referenceValues": complete("snp", "tdx")}  # spec.coverage
        errors = _errors(config, secure)
        message = "production hosts need a pinned SSH host key"
        assert errors == [
            (f"coco:nodePools[{p}].hosts[{h}].hostKey", message)
            for p, count in enumerate((len(SNP_HOSTS), len(TDX_HOSTS)))
            for h in range(count)
        ]

    def test_malformed_host_key(self) -> None:
        config, secure = stack(EXISTING)
        config["coco:nodePools"][1]["hosts"][0]["hostKey"] = "AAAAC3Nza only-base64"
        paths = [path for path, _ in _errors(config, secure)]
        assert paths == ["coco:nodePools[1].hosts[0].hostKey"]

    def test_pinned_key_reaches_the_connection(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        patch_provider_outputs(monkeypatch, provider_outputs(tmp_path))
        config, secure = stack(K3S)
        for pool in config["coco:nodePools"]:
            for h in pool["hosts"]:
                h["hostKey"] = self.KEY
        result = render_config(config, secure=secure)
        found = [render.unwrap(c.inputs["connection"]).get("hostKey") for c in commands(result)]
        assert len(found) >= len(SNP_HOSTS) + len(TDX_HOSTS)
        assert set(found) == {self.KEY}


class TestKubeconfigText:
    def test_ipv6_server(self) -> None:
        out = yaml.safe_load(k3s.kubeconfig_for(K3S_YAML, "fd00::1"))
        assert out["clusters"][0]["cluster"]["server"] == "https://[fd00::1]:6443"

    def test_release_url_encodes_plus(self) -> None:
        version = versions.K3S_VERSION
        assert "+" in version
        assert k3s.RELEASE.url("k3s") == (
            f"https://github.com/k3s-io/k3s/releases/download/{version.replace('+', '%2B')}/k3s"
        )


class TestReplaceUninstallsFirst:
    """A replaced k3s command uninstalls before it installs (Pulumi's default order would run the
    old uninstall after the new install and leave the host without k3s), and waiting for the
    check never forces a replacement: the install's inputs do not depend on the host name."""

    def test_delete_before_replace(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        import pulumi.runtime.mocks as mocks

        seen: dict[str, bool] = {}
        original = mocks.MockMonitor.RegisterResource

        def register(self: Any, request: Any) -> Any:
            if request.type == COMMAND:
                seen[request.name] = bool(request.deleteBeforeReplace)
            return original(self, request)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(mocks.MockMonitor, "RegisterResource", register)
        patch_provider_outputs(monkeypatch, provider_outputs(tmp_path))
        config, secure = stack(K3S)
        render_config(config, secure=secure)
        installs = sorted(n for n in seen if n.endswith(("-server", "-agent")))
        assert len(installs) == 3, seen
        assert all(seen[n] for n in installs), seen

    def test_host_name_does_not_reach_the_install(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        cases: dict[str, str] = {}
        renamed = trees.snp("ready") | {"proc/sys/kernel/hostname": "snp-renamed\n"}
        monkeypatch.setitem(
            trees.BUILDERS, "snp", lambda case: renamed if case == "renamed" else trees.snp(case)
        )
        # patched once (a second patch_provider_outputs would wrap the first); cases is read
        # when each check runs
        patch_provider_outputs(monkeypatch, provider_outputs(tmp_path, cases))

        def installs() -> dict[str, dict[str, Any]]:
            config, secure = stack(K3S)
            result = render_config(config, secure=secure)
            found = {
                c.name: c.inputs for c in commands(result)
                if c.name.endswith(("-server", "-agent"))
            }
            assert len(found) == 3
            return found

        hostname = tmp_path / "10.0.0.12/root/proc/sys/kernel/hostname"
        before = installs()
        assert hostname.read_text() == "node-snp\n"
        cases["10.0.0.12"] = "renamed"
        after = installs()
        assert hostname.read_text() == "snp-renamed\n"  # the second check saw the new name
        assert before == after


class TestNodeName:
    """The node name is the host name as kubelet registers it: trimmed, lower case."""

    def test_lower_case(self, tmp_path: Path) -> None:
        from components import hosts

        tree = trees.tdx("ready") | {"proc/sys/kernel/hostname": "  Node-TDX.Lab \n"}
        _, stdout, _ = trees.run(trees.write(tmp_path, tree), "tdx")
        assert hostcheck.parse_verdict(stdout, "10.0.0.21").host == "Node-TDX.Lab"
        assert hosts.checked_host(stdout, "10.0.0.21") == "node-tdx.lab"

    def test_node_patch_uses_lower_case(
        self, render_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        upper = trees.tdx("ready") | {"proc/sys/kernel/hostname": "NODE-TDX\n"}
        monkeypatch.setitem(trees.BUILDERS, "tdx", lambda case: upper)
        patch_provider_outputs(monkeypatch, provider_outputs(tmp_path))
        config, secure = stack(EXISTING)
        result = render_config(config, secure=secure)
        names = sorted(
            p.inputs["metadata"]["name"]
            for p in resources_of(result, "kubernetes:core/v1:NodePatch")
        )
        assert names == ["node-snp", "node-snp", "node-tdx"]
