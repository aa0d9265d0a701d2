"""The pod-VM payload, pinned by content we can name (issue 17): guest components read out of the
confidential guest image of the pinned kata-static archive, cloud-api-adaptor's programs built
with Go from a committed go.sum, and the podvm recipe and units that use them.

Stand-ins (tests/images/podvm_standins.py): a small zstd tar shaped like kata-static with a tiny
ext4 guest image at the pinned offset, and a Go module built from a tiny local main in place of
cloud-api-adaptor. Nothing here downloads or builds CAA.
"""

from __future__ import annotations

import configparser
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from images import build, payload, pins, recipe, release
from images.errors import DownloadError, ImageError, RecipeError, ToolMissing
from spec import versions
from tests.conftest import ROOT
from tests.images.podvm_standins import go_standins, kata_static_standin

GUEST_FILES = {
    "/usr/bin/kata-agent": b"\x7fELF kata-agent stand-in",
    "/usr/local/bin/attestation-agent": b"\x7fELF attestation-agent stand-in",
    "/usr/local/bin/confidential-data-hub": b"\x7fELF confidential-data-hub stand-in",
    "/usr/local/bin/api-server-rest": b"\x7fELF api-server-rest stand-in",
}
PAYLOAD_DIR = ROOT / "images/recipes/podvm-payload"
needs_e2fsprogs = pytest.mark.skipif(
    shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) is None
    or shutil.which("debugfs", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) is None,
    reason="needs e2fsprogs (mkfs.ext4, debugfs): apt-get install e2fsprogs",
)
needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _release_item(pin: pins.GuestImagePin, files: dict[str, str]) -> recipe.ReleasePayload:
    return recipe.ReleasePayload("KATA_CONFIDENTIAL_IMAGE", pin, tuple(sorted(files.items())))


@needs_e2fsprogs
class TestReleaseImagePayload:
    """Files come out of the ext4 file system of the archive's guest image, byte for byte and
    with their mode, through the verified release cache; every mistake names its recipe key."""

    def test_files_placed_with_content_mode_and_provenance(self, cache, tmp_path):
        pin = kata_static_standin(tmp_path / "src", GUEST_FILES)
        wanted = {"/usr/bin/kata-agent": "/usr/local/bin/kata-agent",
                  "/usr/local/bin/attestation-agent": "/usr/local/bin/attestation-agent"}
        root = tmp_path / "root"
        root.mkdir()
        placed = payload.install_release([_release_item(pin, wanted)], root)
        for source, dest in wanted.items():
            target = root / dest.lstrip("/")
            assert target.read_bytes() == GUEST_FILES[source]
            assert target.stat().st_mode & 0o777 == 0o755
        assert {p["dest"] for p in placed} == set(wanted.values())
        assert all(pin.artifact.sha256 in p["source"] for p in placed)

    def test_changed_cached_archive_is_refused(self, cache, tmp_path):
        pin = kata_static_standin(tmp_path / "src", GUEST_FILES)
        cached = release.cached_path(pin.artifact)
        data = bytearray(cached.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, other bytes: only the sha256 can tell
        cached.write_bytes(bytes(data))
        item = _release_item(pin, {"/usr/bin/kata-agent": "/usr/local/bin/kata-agent"})
        (tmp_path / "root").mkdir()
        with pytest.raises(DownloadError, match="no longer has the pinned sha256"):
            payload.install_release([item], tmp_path / "root")

    def test_offline_without_the_archive_says_what_would_be_fetched(self, cache, tmp_path):
        pin = kata_static_standin(tmp_path / "src", GUEST_FILES)
        release.cached_path(pin.artifact).unlink()
        item = _release_item(pin, {"/usr/bin/kata-agent": "/usr/local/bin/kata-agent"})
        with pytest.raises(release.NotFetched):
            payload.install_release([item], tmp_path, offline=True)

    def test_wrong_offset_names_the_offset(self, cache, tmp_path):
        pin = kata_static_standin(tmp_path / "src", GUEST_FILES, offset=1 << 20)
        wrong = dataclasses.replace(pin, ext4_offset=versions.PODVM_GUEST_IMAGE_EXT4_OFFSET)
        item = _release_item(wrong, {"/usr/bin/kata-agent": "/usr/local/bin/kata-agent"})
        with pytest.raises(ImageError, match=r"payload.release\[0\]: .*byte offset 3145728"):
            payload.install_release([item], tmp_path)

    def test_missing_file_names_the_key(self, cache, tmp_path):
        pin = kata_static_standin(tmp_path / "src", GUEST_FILES)
        item = _release_item(pin, {"/usr/bin/nope": "/usr/local/bin/nope"})
        with pytest.raises(ImageError) as info:
            payload.install_release([item], tmp_path)
        assert str(info.value).startswith('payload.release[0].files."/usr/bin/nope": ')
        assert "not found" in str(info.value)


@pytest.fixture(scope="session")
def standin_go(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(go dir with the stand-in group "caa", tools cache): built once per session."""
    base = tmp_path_factory.mktemp("go-standins")
    return go_standins(base / "go", "caa"), base / "tools-cache"


@needs_go
class TestGoPayload:
    """[[payload.go]] binaries are what the group's main builds, installed 0755; a missing Go
    toolchain stops the build before it starts, naming `go`."""

    def test_binaries_built_and_placed(self, standin_go, monkeypatch, tmp_path):
        go_dir, tools_cache = standin_go
        monkeypatch.setattr(payload, "GO_DIR", go_dir)
        monkeypatch.setenv("COCO_TOOLS_CACHE", str(tools_cache))
        item = recipe.GoPayload("caa", (("process-user-data", "/usr/local/bin/process-user-data"),))
        placed = payload.install_go([item], tmp_path)
        binary = tmp_path / "usr/local/bin/process-user-data"
        assert binary.stat().st_mode & 0o777 == 0o755
        out = subprocess.run([binary, "provision-files"], capture_output=True, text=True).stdout
        assert out.startswith("COCO-STANDIN process-user-data args provision-files")
        assert placed == [{"dest": "/usr/local/bin/process-user-data",
                           "source": "go:caa/process-user-data",
                           "sha256": placed[0]["sha256"]}]
        assert re.fullmatch(r"[0-9a-f]{64}", placed[0]["sha256"])

    def test_unknown_binary_names_the_key(self, standin_go, monkeypatch, tmp_path):
        go_dir, tools_cache = standin_go
        monkeypatch.setattr(payload, "GO_DIR", go_dir)
        monkeypatch.setenv("COCO_TOOLS_CACHE", str(tools_cache))
        item = recipe.GoPayload("caa", (("kata-shim", "/usr/local/bin/kata-shim"),))
        with pytest.raises(RecipeError, match=r'^payload.go\[0\].files."kata-shim": '):
            payload.install_go([item], tmp_path)


class TestGoMissing:
    def test_build_stops_naming_go(self, monkeypatch):
        real_which = shutil.which
        monkeypatch.setattr(payload.shutil, "which",
                            lambda tool, *a, **k: None if tool == "go" else real_which(tool))
        with pytest.raises(ToolMissing) as info:
            build.check_payload_sources(recipe.load("podvm"))
        assert str(info.value) == "missing host tool(s): go"
        assert "go.dev" in info.value.hint and "tools/go/caa" in info.value.hint

    def test_recipe_without_go_payload_needs_no_go(self, monkeypatch):
        monkeypatch.setattr(payload.shutil, "which", lambda *a, **k: None)
        build.check_payload_sources(recipe.load("minimal"))  # nothing to refuse


class TestPodvmPinnedByContent:
    """Every payload source of the podvm recipe is pinned by a hash known today: no registry tag,
    the kata-static archive by sha256 and size, the Go build by a committed go.sum."""

    def test_no_oci_payload_and_no_unresolved_pin(self):
        podvm = recipe.load("podvm")
        assert podvm.oci == ()
        build.check_oci_pins(podvm)  # would raise for a pin without digest

    def test_guest_components_from_the_pinned_archive(self):
        podvm = recipe.load("podvm")
        (item,) = podvm.release
        assert item.image.artifact == versions.KATA_STATIC
        assert re.fullmatch(r"[0-9a-f]{64}", item.image.artifact.sha256)
        assert item.image.member == versions.PODVM_GUEST_IMAGE_MEMBER
        assert dict(item.files) == {
            "/usr/bin/kata-agent": "/usr/local/bin/kata-agent",
            "/usr/local/bin/attestation-agent": "/usr/local/bin/attestation-agent",
            "/usr/local/bin/confidential-data-hub": "/usr/local/bin/confidential-data-hub",
            "/usr/local/bin/api-server-rest": "/usr/local/bin/api-server-rest",
        }

    def test_caa_binaries_from_the_committed_go_sum(self):
        podvm = recipe.load("podvm")
        (item,) = podvm.go
        assert item.group == versions.PODVM_CAA_GO_GROUP
        assert dict(item.files) == {
            "agent-protocol-forwarder": "/usr/local/bin/agent-protocol-forwarder",
            "process-user-data": "/usr/local/bin/process-user-data",
        }
        group = ROOT / "tools/go" / item.group
        module = "github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor"
        sums = (group / "go.sum").read_text()
        assert f"{module} {versions.PODVM_CAA_VERSION} h1:" in sums
        assert f"{module} {versions.PODVM_CAA_VERSION}" in (group / "go.mod").read_text()
        manifest = tomllib.loads((group / "tools.toml").read_text())
        assert {b["name"] for b in manifest["binary"]} >= set(dict(item.files))
        assert versions.PODVM_CAA_VERSION in manifest["defaults"]["ldflags"]

    def test_content_hash_follows_the_go_sum(self, monkeypatch, tmp_path):
        podvm = recipe.load("podvm")
        before = podvm.content_hash()
        shutil.copytree(ROOT / "tools/go/caa", tmp_path / "caa")
        monkeypatch.setattr(payload, "GO_DIR", tmp_path)
        assert podvm.content_hash() == before  # same files, same hash
        with (tmp_path / "caa/go.sum").open("a") as handle:
            handle.write("example.invalid/x v1.0.0 h1:AAAA=\n")
        assert podvm.content_hash() != before

    def test_content_hash_follows_the_archive_pin(self):
        podvm = recipe.load("podvm")
        (item,) = podvm.release
        other = dataclasses.replace(
            item.image, artifact=dataclasses.replace(item.image.artifact, sha256="0" * 64)
        )
        changed = dataclasses.replace(podvm, release=(dataclasses.replace(item, image=other),))
        assert changed.content_hash() != podvm.content_hash()


class TestRecipeKeys:
    """[[payload.release]] and [[payload.go]] mistakes name the key and the fix."""

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ('[[payload.release]]\npin = "NOPE"\nfiles = { "/a" = "/a" }',
             "payload.release[0].pin"),
            ('[[payload.release]]\npin = "KATA_CONFIDENTIAL_IMAGE"', "payload.release[0].files"),
            ('[[payload.release]]\npin = "KATA_CONFIDENTIAL_IMAGE"\nfiles = { "usr/a" = "/a" }',
             'payload.release[0].files."usr/a"'),
            ('[[payload.release]]\npin = "KATA_CONFIDENTIAL_IMAGE"\nfiles = { "/a" = "a" }',
             'payload.release[0].files."/a"'),
            ('[[payload.release]]\npin = "KATA_CONFIDENTIAL_IMAGE"\nfiles = { "/../a" = "/a" }',
             'payload.release[0].files."/../a"'),
            ('[[payload.release]]\npin = "KATA_CONFIDENTIAL_IMAGE"\nmember = "x"\n'
             'files = { "/a" = "/a" }', "payload.release[0].member"),
            ('[[payload.go]]\ngroup = "../caa"\nfiles = { "a" = "/a" }', "payload.go[0].group"),
            ('[[payload.go]]\ngroup = "caa"\nfiles = { "cmd/a" = "/a" }',
             'payload.go[0].files."cmd/a"'),
            ('[[payload.go]]\ngroup = "caa"', "payload.go[0].files"),
        ],
    )
    def test_errors_name_the_key(self, tmp_path: Path, body: str, message: str):
        path = tmp_path / "r.toml"
        path.write_text(f'name = "x"\n{body}\n')
        with pytest.raises(RecipeError) as info:
            recipe.load(str(path))
        assert str(info.value).startswith(message)

    def test_unknown_go_group_stops_before_the_build(self, tmp_path: Path):
        path = tmp_path / "r.toml"
        path.write_text('name = "x"\n[[payload.go]]\ngroup = "nope"\nfiles = { "a" = "/a" }\n')
        with pytest.raises(RecipeError, match="Go group 'nope'"):
            build.check_payload_sources(recipe.load(str(path)))


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


class TestPodvmUnits:
    """Our units start what the recipe installs, in the order the facts require."""

    def test_every_local_program_a_unit_runs_is_installed(self):
        podvm = recipe.load("podvm")
        installed = {d for _, d in podvm.release[0].files} | {d for _, d in podvm.go[0].files}
        installed |= {p.dest for p in podvm.payload if p.mode & 0o111}
        started = set()
        for unit in (PAYLOAD_DIR / "etc/systemd/system").glob("*.service"):
            text = unit.read_text()
            started |= set(re.findall(r"(/usr/local/[\w/.-]+)", text))
        assert started, "no unit starts a program under /usr/local"
        assert started <= installed, started - installed

    def test_path_units_trigger_units_we_ship(self):
        units = {p.name for p in (PAYLOAD_DIR / "etc/systemd/system").iterdir() if p.is_file()}
        for path_unit in (PAYLOAD_DIR / "etc/systemd/system").glob("*.path"):
            assert _unit(path_unit)["Path"]["Unit"] in units, path_unit.name

    def test_forwarder_listens_with_the_config_process_user_data_writes(self):
        service = _unit(PAYLOAD_DIR / "etc/systemd/system/agent-protocol-forwarder.service")
        argv = service["Service"]["ExecStart"].split()
        assert argv[argv.index("-config") + 1] == "/run/peerpod/apf.json"
        assert argv[argv.index("-pod-namespace") + 1] == "/run/netns/podns"
        assert argv[argv.index("-kata-agent-socket") + 1] == "/run/kata-containers/agent.sock"
        assert "-listen" not in argv  # its default is 0.0.0.0:15150 (pkg/forwarder@v0.21.0)
        assert "netns@podns.service" in service["Unit"]["Requires"]
        agent = tomllib.loads((PAYLOAD_DIR / "etc/agent-config.toml").read_text())
        assert agent["server_addr"] == "unix:///run/kata-containers/agent.sock"

    def test_agent_has_a_policy_secure_by_default(self):
        """kata-agent 4.0.0 aborts at start without a policy (src/agent/src/main.rs): it reads
        /run/peerpod/policy.rego, initdata's policy or else our default, which lists every
        request type of agent.proto@4.0.0 and refuses exec, output streams and policy swaps."""
        agent = tomllib.loads((PAYLOAD_DIR / "etc/agent-config.toml").read_text())
        assert agent["policy_file"] == "/run/peerpod/policy.rego"
        tmpfiles = (PAYLOAD_DIR / "etc/tmpfiles.d/coco-podvm.conf").read_text().splitlines()
        seed = [line.split() for line in tmpfiles if line.startswith("C /run/peerpod/policy.rego")]
        assert len(seed) == 1
        default = seed[0][-1]
        podvm = recipe.load("podvm")
        shipped = {p.dest: PAYLOAD_DIR.parent / p.source for p in podvm.payload}
        assert default in shipped  # the copy's source is in the image
        rules = dict(
            re.findall(r"^default (\w+) := (true|false)", shipped[default].read_text(), re.M)
        )
        refused = {name for name, value in rules.items() if value == "false"}
        assert refused == {"ExecProcessRequest", "ReadStreamRequest", "SetPolicyRequest"}
        for request in ("CreateContainerRequest", "CreateSandboxRequest", "StartContainerRequest",
                        "PullImageRequest", "WaitProcessRequest", "DestroySandboxRequest"):
            assert rules.get(request) == "true", request
        assert len(rules) >= 40  # every request type: an unlisted one is refused

    def test_process_user_data_runs_first(self):
        pud = _unit(PAYLOAD_DIR / "etc/systemd/system/process-user-data.service")
        assert pud["Service"]["ExecStart"] == "/usr/local/bin/process-user-data provision-files"
        before = pud["Unit"]["Before"].split()
        for name in ("attestation-agent", "confidential-data-hub", "kata-agent",
                     "agent-protocol-forwarder"):
            assert f"{name}.service" in before
        assert "extend-initdata-pcr" in pud["Service"]["ExecStartPost"]

    def test_everything_enabled(self):
        dropin = (PAYLOAD_DIR / "etc/systemd/system/multi-user.target.d/coco-podvm.conf")
        wants = set(" ".join(re.findall(r"^Wants=(.*)$", dropin.read_text(), re.M)).split())
        assert {"process-user-data.service", "agent-protocol-forwarder.path",
                "attestation-agent.path", "kata-agent.path", "systemd-networkd.service"} <= wants


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
class TestInitdataPcrScript:
    """extend-initdata-pcr extends PCR 8 with the first 64 hex digits of the digest, refusing
    anything that is not lowercase hex."""

    def _run(self, tmp_path: Path, digest: str) -> subprocess.CompletedProcess[str]:
        script = (PAYLOAD_DIR / "usr/local/libexec/coco-podvm/extend-initdata-pcr").read_text()
        script = script.replace("/run/peerpod/initdata.digest", str(tmp_path / "digest"))
        (tmp_path / "digest").write_text(digest)
        fake = tmp_path / "bin"
        fake.mkdir(exist_ok=True)
        (fake / "tpm2_pcrextend").write_text('#!/bin/sh\necho "extend $*"\n')
        (fake / "tpm2_pcrextend").chmod(0o755)
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                              env={"PATH": f"{fake}:/usr/bin:/bin"})

    def test_sha384_digest_cut_to_sha256_width(self, tmp_path):
        digest = "ab" * 48
        result = self._run(tmp_path, digest)
        assert result.stdout.strip() == f"extend 8:sha256={'ab' * 32}"

    @pytest.mark.parametrize("digest", ["AB" * 32, "ab" * 10, "zz" * 32])
    def test_refuses_what_is_not_a_digest(self, tmp_path, digest):
        result = self._run(tmp_path, digest)
        assert result.returncode != 0 and "extend" not in result.stdout


# gcp-snp is a Confidential GKE Nodes stack (GCP SEV-SNP peer pods are refused: no pod VMs)
CLOUD_STACKS = ["azure-snp", "azure-tdx", "azure-cvm", "aws-snp", "gcp-tdx"]


class TestCloudStacksCheckClean:
    """The five cloud peer-pod stacks pass `coco check` without the warning that the image build
    during `pulumi up` would stop; the warning still comes when it is true."""

    @pytest.mark.parametrize("stack", CLOUD_STACKS)
    def test_no_build_stop_warning(self, stack, monkeypatch, capsys):
        from cli import main as cli

        monkeypatch.chdir(ROOT)
        assert cli.main(["check", stack]) == 0
        _, err = capsys.readouterr()
        assert "coco:image.recipe" not in err
        assert "will stop" not in err

    @pytest.mark.parametrize("stack", CLOUD_STACKS)
    def test_rendered_image_payload_pinned_by_content_hashes(self, stack, render_stack):
        """The render (what a preview shows) lists every outside payload source with the content
        hash it is pinned by: the kata-static archive's sha256 and the CAA group's go.sum."""
        from cli import render
        from tests.conftest import one

        build_cmd = one(render_stack(stack), "command:local:Command", "coco-image-build")
        _, pins_shown = render.unwrap(build_cmd.inputs)["triggers"]
        assert sorted(pins_shown) == ["go:caa", "release:KATA_CONFIDENTIAL_IMAGE"]
        for source, pin in pins_shown.items():
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", pin), (source, pin)
        kata = versions.KATA_STATIC.sha256
        assert pins_shown["release:KATA_CONFIDENTIAL_IMAGE"] == f"sha256:{kata}"
        go_sum = (ROOT / "tools" / "go" / "caa" / "go.sum").read_bytes()
        assert pins_shown["go:caa"] == "sha256:" + hashlib.sha256(go_sum).hexdigest()

    def test_tag_without_lock_shows_as_unpinned(self, tmp_path: Path):
        path = tmp_path / "follow.toml"
        path.write_text(
            'name = "follow"\n[[payload.oci]]\nimage = "registry.example/a/b:v1"\n'
            'files = { "bin/x" = "/usr/bin/x" }\n'
        )
        assert recipe.load(str(path)).payload_pins() == {"oci:registry.example/a/b:v1": ""}

    def test_warning_when_a_pin_has_no_digest(self, monkeypatch, capsys):
        from cli import main as cli
        from spec.versions import ImageRef

        monkeypatch.setitem(pins.OCI_PINS, "TEST_PIN", ImageRef("ghcr.io/a/b", "v1"))
        real_load = recipe.load

        def with_tag_pin(name: str) -> recipe.Recipe:
            loaded = real_load(name)
            item = recipe.OciPayload("ghcr.io/a/b:v1", "", (("x", "/x"),), pin="TEST_PIN")
            return dataclasses.replace(loaded, oci=(item,))

        monkeypatch.setattr(recipe, "load", with_tag_pin)
        monkeypatch.chdir(ROOT)
        assert cli.main(["check", "aws-snp"]) == 0
        _, err = capsys.readouterr()
        assert "warning: coco:image.recipe: the build during `pulumi up` will stop" in err

    def test_warning_when_the_go_group_is_missing(self, monkeypatch, capsys, tmp_path):
        from cli import main as cli

        monkeypatch.setattr(payload, "GO_DIR", tmp_path)  # a checkout without tools/go/caa
        monkeypatch.chdir(ROOT)
        assert cli.main(["check", "gcp-tdx"]) == 0
        _, err = capsys.readouterr()
        assert "warning: coco:image.recipe: the build during `pulumi up` will stop: Go group " \
            "'caa'" in err


# What each cloud stack's pod VMs lack to attest with the podvm recipe: only the Azure attesters
# (the kernel is TEE-capable and the recipe loads sev-guest and tdx-guest).
ATTESTATION_GAPS = {
    "azure-snp": ("snp", "no az-snp-vtpm attester"),
    "azure-tdx": ("tdx", "no az-tdx-vtpm attester"),
    "azure-cvm": ("pods", "no az-snp-vtpm attester"),
}
ATTESTING_STACKS = sorted(set(CLOUD_STACKS) - set(ATTESTATION_GAPS))


class TestPodvmAttestationGaps:
    """coco check says, per cloud peer-pods pool, why pod VMs from the podvm recipe cannot
    attest yet (spec/rules/image.py podvm_attestation), and stays silent where that is not so."""

    @staticmethod
    def _warnings(config: dict) -> list:
        from spec.validate import validate

        _, warnings = validate(config, stack="t", base_dir=str(ROOT))
        return [w for w in warnings if "cannot produce attestation evidence" in w.message]

    @staticmethod
    def _config(stack: str) -> dict:
        from spec import stackfile

        return dict(stackfile.load(stack, ROOT).config)

    @staticmethod
    def _recipe_with(monkeypatch, **changes) -> None:
        real_load = recipe.load

        def changed(name: str) -> recipe.Recipe:
            return dataclasses.replace(real_load(name), **changes)

        monkeypatch.setattr(recipe, "load", changed)

    @pytest.mark.parametrize("stack", sorted(ATTESTATION_GAPS))
    def test_each_azure_stack_is_told_why(self, stack):
        (found,) = self._warnings(self._config(stack))
        pool, gap = ATTESTATION_GAPS[stack]
        assert f"pool '{pool}'" in found.message and gap in found.message
        assert found.path.startswith("coco:nodePools[")
        assert "coco:image.podvmImage" in found.hint
        assert versions.AZURE_COMMUNITY_PODVM_IMAGE in found.hint  # a way that works today

    @pytest.mark.parametrize("stack", ATTESTING_STACKS)
    def test_the_pinned_kernel_and_modules_attest_on_aws_and_gcp(self, stack):
        assert self._warnings(self._config(stack)) == []

    def test_the_podvm_recipe_loads_the_guest_drivers_of_the_pinned_kernel(self):
        loaded = recipe.load("podvm")
        assert loaded.kernel_package == pins.KERNEL_PACKAGE
        assert loaded.kernel_package not in versions.KERNEL_TEE_GUEST_GAPS
        assert set(versions.TEE_GUEST_MODULES.values()) <= set(loaded.modules)

    @pytest.mark.parametrize(
        ("stack", "gap"),
        [("aws-snp", "no SEV guest driver"), ("gcp-tdx", "no TDX guest support")],
    )
    def test_a_kernel_without_tee_guest_support_is_named(self, monkeypatch, stack, gap):
        old = "linux-image-6.1.0-50-cloud-amd64"
        self._recipe_with(monkeypatch, kernel_package=old)
        (found,) = self._warnings(self._config(stack))
        assert f"its kernel {old} has" in found.message and gap in found.message
        assert f"kernel.package = {pins.KERNEL_PACKAGE!r}" in found.hint

    @pytest.mark.parametrize(
        ("stack", "module"), [("aws-snp", "sev-guest"), ("gcp-tdx", "tdx-guest")]
    )
    def test_a_recipe_that_does_not_load_the_guest_driver_is_named(
        self, monkeypatch, stack, module
    ):
        modules = tuple(m for m in recipe.load("podvm").modules if m != module)
        self._recipe_with(monkeypatch, modules=modules)
        (found,) = self._warnings(self._config(stack))
        assert f"does not load the {module} kernel module" in found.message
        assert f"add {module!r} to kernel.modules" in found.hint

    def test_the_community_image_the_hint_names_is_accepted_and_silences_it(self):
        from spec.validate import validate

        config = self._config("azure-snp")
        config["coco:image"] = {"podvmImage": versions.AZURE_COMMUNITY_PODVM_IMAGE}
        spec, warnings = validate(config, stack="t", base_dir=str(ROOT))
        assert spec.image.podvm_image == versions.AZURE_COMMUNITY_PODVM_IMAGE
        assert not [w for w in warnings if "cannot produce attestation evidence" in w.message]
        assert versions.AZURE_COMMUNITY_PODVM_IMAGE.endswith(
            "/Versions/" + versions.CLOUD_API_ADAPTOR_VERSION.removeprefix("v")
        )

    def test_silent_when_the_recipe_has_another_kernel(self, monkeypatch):
        self._recipe_with(monkeypatch, kernel_package="linux-image-6.12-amd64")
        assert self._warnings(self._config("gcp-snp")) == []
        # the Azure gap is the attestation agent's, not the kernel's: still reported
        assert len(self._warnings(self._config("azure-snp"))) == 1
