"""The pod VM's own units against cloud-api-adaptor v0.22.0 (issue 17): the forwarder takes the
flags upstream's unit passes, and the encrypted scratch space is set up when the daemon asks for
it, before anything writes image layers, from files the recipe installs.

Facts (cloud-api-adaptor @v0.22.0, docs/images.md "Forwarder and daemon versions" and "Scratch
space"): the daemon writes /run/peerpod/scratch-space.marker when ENABLE_SCRATCH_SPACE=true
(pkg/paths ScratchSpacePath); image-rs keeps layers in /run/kata-containers/image
(guest-components image-rs/src/config.rs DEFAULT_WORK_DIR@da8d93f2, kata 4.0.0's pin).
The units are parsed with configparser, the way systemd reads their sections and keys.
"""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from images import recipe
from tests.conftest import ROOT

PAYLOAD = ROOT / "images/recipes/podvm-payload"
UNITS = PAYLOAD / "etc/systemd/system"
SCRIPT = PAYLOAD / "usr/local/libexec/coco-podvm/setup-scratch-storage"
MARKER = "/run/peerpod/scratch-space.marker"
IMAGE_WORK_DIR = "/run/kata-containers/image"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _words(unit: configparser.ConfigParser, section: str, key: str) -> set[str]:
    return set(unit[section].get(key, "").split())


def _script_value(name: str) -> str:
    """A NAME=value assignment at the top of setup-scratch-storage."""
    match = re.search(rf"^{name}=(.*)$", SCRIPT.read_text(), re.M)
    assert match, f"{name} not assigned in {SCRIPT.name}"
    (value,) = shlex.split(match.group(1))
    return value


def _installed() -> dict[str, Path]:
    """dest in the image -> source file, for every [[payload.files]] of the podvm recipe."""
    podvm = recipe.load("podvm")
    return {p.dest: PAYLOAD.parent / p.source for p in podvm.payload}


class TestForwarderFlags:
    """The forwarder runs with upstream's flag interface: its config from process-user-data's
    apf.json (which carries the daemon's TLS material) and $TLS_OPTIONS $OPTIONS from an optional
    environment file, so an image that adds /etc/default/agent-protocol-forwarder behaves as
    upstream's does."""

    def test_tls_and_extra_options_from_the_optional_environment_file(self):
        service = _unit(UNITS / "agent-protocol-forwarder.service")
        argv = service["Service"]["ExecStart"].split()
        assert argv[-2:] == ["$TLS_OPTIONS", "$OPTIONS"]
        assert service["Service"]["EnvironmentFile"] == "-/etc/default/agent-protocol-forwarder"
        # no TLS flag of our own: TLS stays on, with the key and CA the daemon put in apf.json
        assert not {"-disable-tls", "-tls-skip-verify", "-cert-file", "-cert-key"} & set(argv)
        assert argv[argv.index("-config") + 1] == "/run/peerpod/apf.json"

    def test_the_image_ships_no_environment_file(self):
        """Empty $TLS_OPTIONS: nothing in the image turns TLS off or swaps the certificates."""
        assert "/etc/default/agent-protocol-forwarder" not in _installed()


class TestScratchUnits:
    """scratch-storage starts on the daemon's marker, only then, and before the confidential
    data hub (which pulls images with image-rs) and the kata agent."""

    def test_triggered_and_conditioned_on_the_daemons_marker(self):
        path = _unit(UNITS / "scratch-storage.path")
        assert path["Path"]["PathExists"] == MARKER
        assert path["Path"]["Unit"] == "scratch-storage.service"
        service = _unit(UNITS / "scratch-storage.service")
        assert service["Unit"]["ConditionPathExists"] == MARKER

    def test_marker_is_a_file_process_user_data_writes(self):
        """The marker reaches the VM only through process-user-data, so the unit waits for it."""
        service = _unit(UNITS / "scratch-storage.service")
        assert "process-user-data.service" in _words(service, "Unit", "After")
        assert service["Service"]["Type"] == "oneshot"
        assert service["Service"]["RemainAfterExit"] == "yes"

    @pytest.mark.parametrize("consumer", ["confidential-data-hub.service", "kata-agent.service"])
    def test_ordered_before_what_writes_image_layers(self, consumer: str):
        scratch = _unit(UNITS / "scratch-storage.service")
        assert consumer in _words(scratch, "Unit", "Before")
        unit = _unit(UNITS / consumer)
        # Wants + After on the consumer: the order holds however the path units interleave
        assert "scratch-storage.service" in _words(unit, "Unit", "Wants")
        assert "scratch-storage.service" in _words(unit, "Unit", "After")
        # and never Requires/BindsTo: a failed scratch set-up leaves images in memory, the pod runs
        for key in ("Requires", "BindsTo", "Requisite"):
            assert "scratch-storage.service" not in _words(unit, "Unit", key)

    def test_path_unit_enabled(self):
        dropin = (UNITS / "multi-user.target.d/coco-podvm.conf").read_text()
        wants = set(" ".join(re.findall(r"^Wants=(.*)$", dropin, re.M)).split())
        assert "scratch-storage.path" in wants
        assert "scratch-storage.service" not in wants  # only the marker starts it

    def test_a_failure_does_not_restart_it_in_a_loop(self):
        """PathExists= starts the service again whenever it is not active, for as long as the
        marker exists: a failed set-up must still leave the unit active (the boot test saw five
        runs in a second before this). The script reports the failure on the console."""
        service = _unit(UNITS / "scratch-storage.service")
        assert service["Service"]["ExecStart"].startswith("-/")
        assert service["Service"]["RemainAfterExit"] == "yes"
        assert "journal+console" in service["Service"]["StandardError"]

    def test_runs_the_installed_script(self):
        service = _unit(UNITS / "scratch-storage.service")
        program = service["Service"]["ExecStart"].split()[0].lstrip("-@:+!")
        installed = _installed()
        assert installed[program] == SCRIPT
        podvm = recipe.load("podvm")
        assert {p.dest: p.mode for p in podvm.payload}[program] & 0o111
        for unit in ("scratch-storage.path", "scratch-storage.service"):
            assert installed[f"/etc/systemd/system/{unit}"] == UNITS / unit


class TestScratchScript:
    """setup-scratch-storage mounts on image-rs's work directory, asks systemd-repart for the
    partition the installed definition describes, and uses authenticated encryption."""

    def test_mounts_where_image_rs_keeps_layers(self):
        assert _script_value("MOUNT_POINT") == IMAGE_WORK_DIR

    def test_repart_definition_is_installed_where_the_script_reads_it(self):
        definitions = _script_value("DEFINITIONS")
        installed = _installed()
        confs = [d for d in installed if d.startswith(definitions + "/") and d.endswith(".conf")]
        assert len(confs) == 1, confs
        definition = _unit(installed[confs[0]])
        assert definition["Partition"]["Label"] == _script_value("LABEL")
        assert definition["Partition"]["Type"] == "linux-generic"
        assert "Format" not in definition["Partition"]  # LUKS2 goes on it, not a plain fs
        # not in a directory systemd-repart.service reads at every boot
        assert not definitions.startswith(("/usr/lib/repart.d", "/etc/repart.d", "/run/repart.d"))

    def test_authenticated_encryption_with_a_key_nobody_keeps(self):
        text = SCRIPT.read_text()
        luks_format = re.search(r"cryptsetup luksFormat(.*?)\"/dev/\$part\"", text, re.S)
        assert luks_format
        flags = luks_format.group(1).split()
        assert flags[flags.index("--type") + 1] == "luks2"
        assert flags[flags.index("--cipher") + 1] == "aes-xts-plain64"
        assert flags[flags.index("--integrity") + 1] == "hmac-sha256"
        key = _script_value("key")
        assert key.startswith("/run/")  # guest memory, never the disk
        assert re.search(r"head -c 64 /dev/urandom > \"\$key\"", text)
        # the key file is removed on both paths after cryptsetup, before anything else runs
        assert text.count('rm -f "$key"') == 2

    def test_tools_it_runs_are_in_the_image(self):
        podvm = recipe.load("podvm")
        # cryptsetup and mke2fs/mkfs.ext4 come from these; systemd-repart ships with systemd
        assert {"cryptsetup-bin", "e2fsprogs", "systemd-sysv"} <= set(podvm.packages)

    def test_the_recipe_loads_the_kernel_modules_it_needs(self):
        """The root holds no modules: the initramfs must load each one the script needs (and
        ecb, which xts instantiates by name: built into the pinned kernel, a module in others,
        so the hint cannot check it)."""
        modules = set(recipe.load("podvm").modules)
        needed = set(_script_value("MODULES").split())
        assert {"dm_crypt", "dm_integrity", "xts"} <= needed
        assert needed | {"ecb"} <= modules

    @pytest.mark.skipif(not Path("/bin/sh").exists(), reason="needs a POSIX shell")
    def test_parses_as_shell(self):
        subprocess.run(["sh", "-n", str(SCRIPT)], check=True)
