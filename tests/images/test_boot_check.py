"""What "booted" means per image (issue 17), without booting: the recipe's [boot] section, which
check `coco image boot` picks for a built directory, and images.boot.check's wait (QEMU replaced
by a fake that shows console text; the guest port is a real loopback server).

The real boots are in the image tier: test_guest_image.py (minimal, marker) and
test_podvm_boot.py (podvm, the forwarder's TLS through the same images.boot.check).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import main as cli
from images import boot, recipe, userdata
from images.errors import RecipeError
from spec.errors import ExitCode


def _recipe(tmp_path: Path, body: str) -> recipe.Recipe:
    path = tmp_path / "r.toml"
    path.write_text(f'name = "r"\n{body}\n')
    return recipe.load(str(path))


class TestBootSection:
    """[boot] parses into a BootCheck; every mistake names its key."""

    def test_default_is_the_marker(self, tmp_path):
        check = _recipe(tmp_path, "").boot
        assert check == recipe.BootCheck("marker", 0, False, "", 300.0)
        assert recipe.load("minimal").boot.ready == "marker"

    def test_podvm_waits_for_the_forwarders_tls_with_peer_pod_user_data(self):
        check = recipe.load("podvm").boot
        assert (check.ready, check.port, check.tls, check.user_data) == (
            "tcp",
            15150,
            True,
            "peer-pod",
        )
        assert check.timeout >= 600  # ~170 s under TCG here; generous for slower machines

    def test_tcp_without_tls(self, tmp_path):
        check = _recipe(tmp_path, "[boot]\nready = { tcp = 22 }\ntimeout = 60").boot
        assert (check.ready, check.port, check.tls, check.timeout) == ("tcp", 22, False, 60.0)
        assert check.describe() == "the verity root mounted and a TCP connection on guest port 22"

    @pytest.mark.parametrize(
        ("body", "key"),
        [
            ('ready = "systemd"', "boot.ready"),
            ("ready = { tcp = 0 }", "boot.ready.tcp"),
            ("ready = { tcp = 70000 }", "boot.ready.tcp"),
            ('ready = { tcp = "15150" }', "boot.ready.tcp"),
            ("ready = { tcp = 1, tls = 1 }", "boot.ready.tls"),
            ("ready = { tcp = 1, udp = 2 }", "boot.ready."),
            ('user_data = "cloud-init"\nready = { tcp = 1 }', "boot.user_data"),
            ('user_data = "peer-pod"', "boot.user_data"),
            ("timeout = 0", "boot.timeout"),
            ("timeout = true", "boot.timeout"),
            ("wait = 3", "boot."),
        ],
    )
    def test_errors_name_the_key(self, tmp_path, body, key):
        with pytest.raises(RecipeError) as info:
            _recipe(tmp_path, f"[boot]\n{body}")
        assert str(info.value).startswith(key), str(info.value)

    def test_not_a_build_input(self, tmp_path):
        """How an image is checked does not change what is built (the content hash)."""
        plain = _recipe(tmp_path, "")
        checked = _recipe(tmp_path, "[boot]\nready = { tcp = 22 }")
        assert plain.boot != checked.boot
        assert plain.content_hash() == checked.content_hash()


# ------------------------------------------------------------------------- coco image boot


@pytest.fixture
def built_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A directory shaped like `coco image build` output for recipe NAME, boot tools present,
    and images.boot.check recorded (returns a booted result with the predicted PCRs)."""
    from images import run

    monkeypatch.setattr(run, "check_tools", lambda tools: None)
    seen: list[tuple[recipe.BootCheck, float | None]] = []

    def fake_check(disk: Path, spec: recipe.BootCheck, **kwargs: Any) -> boot.BootResult:
        seen.append((spec, kwargs.get("timeout")))
        return boot.BootResult(True, True, "", {"4": "aa" * 32}, "", 1.0, spec.ready == "tcp")

    monkeypatch.setattr(boot, "check", fake_check)

    def make(name: str) -> tuple[Path, list[tuple[recipe.BootCheck, float | None]]]:
        out = tmp_path / f"out-{len(seen)}-{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        (out / "disk.raw").write_bytes(b"\0" * 512)
        measurements = {"recipe": {"name": name}, "tpm": {"pcrs": {"4": "aa" * 32}}}
        (out / "measurements.json").write_text(json.dumps(measurements))
        return out, seen

    return make


class TestImageBootPicksTheCheck:
    """`coco image boot DIR` waits for what the recipe that built DIR declares."""

    def test_podvm_dir_waits_for_the_forwarder(self, built_dir, capsys):
        out, seen = built_dir("podvm")
        assert cli.main(["image", "boot", str(out)]) == 0
        assert seen == [(recipe.load("podvm").boot, None)]
        captured = capsys.readouterr()
        assert (
            "waiting up to 900 s for the verity root mounted and a TLS handshake on guest "
            "port 15150" in captured.err
        )
        assert "PCR 4: predicted" in captured.out

    def test_minimal_dir_waits_for_the_marker(self, built_dir):
        out, seen = built_dir("minimal")
        assert cli.main(["image", "boot", str(out), "--timeout", "120"]) == 0
        assert seen == [(recipe.BootCheck(), 120.0)]

    def test_unknown_recipe_falls_back_to_the_marker_and_says_so(self, built_dir, capsys):
        out, seen = built_dir("custom")
        assert cli.main(["image", "boot", str(out)]) == 0
        assert seen == [(recipe.BootCheck(), None)]
        assert "recipe custom is not in" in capsys.readouterr().err

    def test_recipe_option_gives_its_boot_section(self, built_dir, tmp_path):
        out, seen = built_dir("custom")
        path = tmp_path / "custom.toml"
        path.write_text('name = "custom"\n[boot]\nready = { tcp = 8080 }\n')
        assert cli.main(["image", "boot", str(out), "--recipe", str(path)]) == 0
        assert seen[0][0].port == 8080

    def test_recipe_option_of_another_recipe_is_refused(self, built_dir, capsys):
        out, seen = built_dir("minimal")
        assert cli.main(["image", "boot", str(out), "--recipe", "podvm"]) == ExitCode.INVALID
        assert "was built from recipe 'minimal'" in capsys.readouterr().err
        assert seen == []

    def test_a_name_that_is_a_path_is_not_followed(self, built_dir, capsys):
        out, seen = built_dir("../recipes/podvm")  # images/recipes/../recipes/podvm.toml
        assert cli.main(["image", "boot", str(out)]) == 0
        assert seen == [(recipe.BootCheck(), None)]

    def test_not_booted_exits_4_saying_what_was_awaited(self, built_dir, monkeypatch, capsys):
        out, _ = built_dir("podvm")
        monkeypatch.setattr(
            boot, "check", lambda *a, **k: boot.BootResult(False, True, "", {}, "last line", 9.0)
        )
        assert cli.main(["image", "boot", str(out), "--timeout", "30"]) == ExitCode.FAILED
        err = capsys.readouterr().err
        assert (
            "did not boot: not the verity root mounted and a TLS handshake on guest port "
            "15150 within 30 s" in err
        )


# ------------------------------------------------------------------------- images.boot.check


@pytest.fixture
def tls_server() -> Iterator[Any]:
    """start(port, material): a loopback TLS server on `port` presenting `material`'s cert."""
    servers: list[socket.socket] = []

    def start(port: int, material: userdata.TlsMaterial, work: Path) -> None:
        (work / "key.pem").write_text(material.key_pem)
        (work / "cert.pem").write_text(material.cert_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(work / "cert.pem", work / "key.pem")
        listener = socket.create_server(("127.0.0.1", port))
        servers.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                try:
                    with context.wrap_socket(conn, server_side=True):
                        pass
                except (OSError, ssl.SSLError):
                    pass

        threading.Thread(target=serve, daemon=True).start()

    yield start
    for listener in servers:
        listener.close()


def _fake_boot(consoles: list[str], on_forward: Any, record: dict[str, Any]) -> Any:
    """boot.boot stand-in: shows each console text to `until` in turn; the forwarded host port
    (from the hostfwd argument) goes to `on_forward` first."""

    def fake(disk: Path, *, timeout: float, workdir: Path, extra: list[str], until: Any) -> Any:
        record["extra"] = list(extra)
        netdev = next(a for a in extra if a.startswith("user,id=net0"))
        host_port = int(netdev.split("hostfwd=tcp:127.0.0.1:")[1].split("-")[0])
        record["guest_port"] = int(netdev.rsplit(":", 1)[1])
        on_forward(host_port, workdir)
        for text in consoles:
            if until(text):
                return boot.parse_console(text, 1.0, stopped=True)
        return boot.parse_console(consoles[-1], 1.0)

    return fake


ROOT_LINE = f"{boot.ROOT_MARKER}\n"
PEER_POD = recipe.BootCheck("tcp", 15150, True, "peer-pod", 60.0)


class TestCheckWaits:
    """check() stops the VM only when the root is mounted and the port answers as declared; with
    peer-pod user data, only the certificate of the user data's key counts."""

    def test_ready_when_the_port_serves_the_user_datas_certificate(
        self, tmp_path, monkeypatch, tls_server
    ):
        material, record = userdata.self_signed(), {}
        monkeypatch.setattr(
            boot,
            "boot",
            _fake_boot(
                ["booting\n", ROOT_LINE],
                lambda port, work: tls_server(port, material, tmp_path),
                record,
            ),
        )
        result = boot.check(tmp_path / "disk.raw", PEER_POD, workdir=tmp_path / "w", tls=material)
        assert result.booted and result.stopped
        assert result.served_cert == material.cert_der
        assert record["guest_port"] == 15150
        extra = " ".join(record["extra"])
        assert "virtio-blk-pci,drive=cidata,addr=0x10" in extra
        iso = tmp_path / "w" / "cidata.iso"
        assert f"file={iso}" in extra and iso.read_bytes()[0x8001:0x8006] == b"CD001"

    def test_another_certificate_is_not_booted(self, tmp_path, monkeypatch, tls_server):
        other = userdata.self_signed()
        monkeypatch.setattr(
            boot,
            "boot",
            _fake_boot([ROOT_LINE], lambda port, work: tls_server(port, other, tmp_path), {}),
        )
        result = boot.check(tmp_path / "disk.raw", PEER_POD, tls=userdata.self_signed())
        assert not result.booted
        assert "another TLS certificate" in result.failure

    def test_an_extra_console_condition_must_hold_too(self, tmp_path, monkeypatch, tls_server):
        material = userdata.self_signed()
        monkeypatch.setattr(
            boot,
            "boot",
            _fake_boot([ROOT_LINE], lambda p, w: tls_server(p, material, tmp_path), {}),
        )
        disk = tmp_path / "disk.raw"
        assert not boot.check(disk, PEER_POD, tls=material, also=lambda c: "READY" in c).booted

    def test_nothing_listening_is_not_booted(self, tmp_path, monkeypatch):
        monkeypatch.setattr(
            boot, "boot", _fake_boot(["x\n", ROOT_LINE, ROOT_LINE], lambda *a: None, {})
        )
        result = boot.check(tmp_path / "disk.raw", PEER_POD)
        assert not result.booted and not result.stopped

    def test_the_port_alone_is_not_enough_before_the_root_is_mounted(
        self, tmp_path, monkeypatch, tls_server
    ):
        material = userdata.self_signed()
        monkeypatch.setattr(
            boot,
            "boot",
            _fake_boot(["initramfs\n"], lambda p, w: tls_server(p, material, tmp_path), {}),
        )
        assert not boot.check(tmp_path / "disk.raw", PEER_POD, tls=material).booted

    def test_plain_tcp_needs_a_server_that_keeps_the_connection(self, tmp_path, monkeypatch):
        listeners: list[socket.socket] = []

        def listen(port: int, work: Path) -> None:
            listeners.append(socket.create_server(("127.0.0.1", port)))  # accepts, stays silent

        spec = recipe.BootCheck("tcp", 22, False, "", 60.0)
        monkeypatch.setattr(boot, "boot", _fake_boot([ROOT_LINE], listen, {}))
        try:
            assert boot.check(tmp_path / "disk.raw", spec).booted
        finally:
            for listener in listeners:
                listener.close()

    def test_progress_while_waiting(self, tmp_path, monkeypatch):
        monkeypatch.setattr(boot, "PROGRESS_EVERY", 0.0)
        monkeypatch.setattr(boot, "boot", _fake_boot(["a\n", ROOT_LINE], lambda *a: None, {}))
        lines: list[str] = []
        boot.check(tmp_path / "disk.raw", PEER_POD, progress=lines.append)
        assert lines and lines[0].startswith("waiting for the verity root mounted and a TLS ")
        assert "root not mounted yet" in lines[0] and "verity root mounted" in lines[-1]

    def test_marker_lets_the_image_power_off(self, tmp_path, monkeypatch):
        """The minimal image: QEMU runs until the init powers off; booted means the marker."""
        seen: dict[str, Any] = {}

        def fake(disk: Path, *, timeout: float, workdir: Path, until: Any) -> boot.BootResult:
            seen["stops"] = until(f"{boot.ROOT_MARKER}\n{boot.IMAGE_MARKER}\n")
            seen["timeout"] = timeout
            return boot.parse_console(f"{boot.IMAGE_MARKER}\n", 2.0)

        monkeypatch.setattr(boot, "boot", fake)
        result = boot.check(tmp_path / "disk.raw", recipe.BootCheck(), timeout=42)
        assert result.booted and seen == {"stops": False, "timeout": 42}
