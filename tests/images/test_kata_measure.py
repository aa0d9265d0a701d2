"""Bare-metal SNP reference values: the kata guest's launch measurement equals what the
sev-snp-measure CLI computes on its own from the same inputs, every input is recorded and
matters, and the stack hands the result to the KBS as snp_launch_measurement.

Fixture provenance: the firmware is synthesized, not a real OVMF. It carries the structures
sev-snp-measure reads from an AmdSev OVMF (sevsnpmeasure/ovmf.py 0.0.13, after edk2
OvmfPkg/ResetVector): the footer table (GUID 96b582de-...) ending 32 bytes before the end, with
the SEV-ES reset block, the SEV metadata offset ("ASEV" header, sections SNP_SEC_MEM,
SNP_SECRETS, CPUID and SNP_KERNEL_HASHES) and the SEV hashes table entry. The kernel and initrd
are seeded random bytes. Real kata artifacts are large and not available offline.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zstandard

from cli import render
from images import kata as kata_measure
from spec import versions
from spec.errors import SpecError
from spec.model import KataGuest
from spec.validate import validate
from spec.versions import ReleaseArtifact
from tests.conftest import ROOT, one

CMDLINE = "console=hvc0 root=/dev/vda1 rootflags=data=ordered agent.log=debug"
FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"
RESET_BLOCK = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
METADATA = "dc886566-984a-4798-a75e-5585a7bf67cc"
HASHES_TABLE = "7255371f-3a3b-4b04-927b-1da6efa8d454"


def fake_amdsev_firmware(path: Path, *, hashes: bool = True, size: int = 0x10000) -> Path:
    data = bytearray(random.Random(1).randbytes(size))
    sections = [(0x800000, 0x1000, 1), (0x801000, 0x1000, 2), (0x802000, 0x1000, 3)]
    if hashes:
        sections.append((0x803000, 0x1000, 0x10))
    meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections))
    meta += b"".join(struct.pack("<III", *s) for s in sections)
    data[size - 0x1000 : size - 0x1000 + len(meta)] = meta

    def entry(guid: str, payload: bytes) -> bytes:
        return payload + struct.pack("<H", len(payload) + 18) + uuid.UUID(guid).bytes_le

    table = entry(RESET_BLOCK, struct.pack("<I", 0xFFFFF000))
    table += entry(METADATA, struct.pack("<I", 0x1000))
    if hashes:
        table += entry(HASHES_TABLE, struct.pack("<II", 0x803C00, 0x400))
    table += struct.pack("<H", len(table) + 18) + uuid.UUID(FOOTER).bytes_le
    data[size - 32 - len(table) : size - 32] = table
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, Path]:
    kernel = tmp_path / "vmlinuz.container"
    kernel.write_bytes(random.Random(2).randbytes(40000))
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(random.Random(3).randbytes(3000))
    return {
        "firmware": fake_amdsev_firmware(tmp_path / "AMDSEV.fd"),
        "kernel": kernel,
        "initrd": initrd,
    }


def _guest(artifacts: dict[str, Path], **overrides: Any) -> KataGuest:
    values: dict[str, Any] = {
        "firmware": str(artifacts["firmware"]),
        "kernel": str(artifacts["kernel"]),
        "initrd": str(artifacts["initrd"]),
        "cmdline": CMDLINE,
        "vcpus": [1, 2, 4],
    }
    return KataGuest.model_validate(values | overrides)


def _cli(guest: KataGuest, vcpus: int) -> str:
    tool = shutil.which("sev-snp-measure") or str(Path(sys.executable).parent / "sev-snp-measure")
    argv = [tool, "--mode", "snp", "--vcpus", str(vcpus), "--vcpu-type", guest.cpu_model,
            "--vmm-type", "QEMU", "--ovmf", guest.firmware, "--kernel", guest.kernel,
            "--append", guest.cmdline, "--guest-features", guest.guest_features,
            "--output-format", "hex"]
    if guest.initrd:
        argv += ["--initrd", guest.initrd]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


# Known answers for the fixture above (1 and 4 vCPUs), recorded once with the sev-snp-measure
# 0.0.13 CLI (`_cli`) on 2026-11-27. `test_equals_the_cli` runs the same library twice; these
# constants catch a change of either (a library upgrade, a changed input order) that moves the
# digest the KBS would trust.
KNOWN_DIGESTS = {
    1: "649daae2fb23eb578904842db747a580ae3ca995770b90c338cd4a58a07dc341"
    "67f84bc2259e0a7a678b8310505323ed",
    4: "25df425e1710f5d7f444f9d36c6247b6d9a571789fc1d29e11fa8f237d8ff0b8"
    "76387ac266bc65d15dad6418b699514c",
}


class TestLaunchMeasurement:
    """The digest is sev-snp-measure's, per vCPU count, over every recorded input."""

    def test_known_answers(self, artifacts, tmp_path):
        measured = dict(kata_measure.measure(_guest(artifacts), tmp_path).measurements)
        assert {v: measured[v] for v in KNOWN_DIGESTS} == KNOWN_DIGESTS

    def test_equals_the_cli(self, artifacts, tmp_path):
        guest = _guest(artifacts)
        measured = kata_measure.measure(guest, tmp_path)
        assert [v for v, _ in measured.measurements] == [1, 2, 4]
        for vcpus, digest in measured.measurements:
            assert digest == _cli(guest, vcpus)
        assert measured.reference_values() == {
            "snp_launch_measurement": sorted(d for _, d in measured.measurements)
        }

    def test_without_initrd_equals_the_cli(self, artifacts, tmp_path):
        guest = _guest(artifacts, initrd=None, vcpus=[2])
        assert kata_measure.measure(guest, tmp_path).measurements[0][1] == _cli(guest, 2)

    @pytest.mark.parametrize(
        "change",
        [{"cmdline": CMDLINE + " x"}, {"initrd": None}, {"cpuModel": "EPYC-Genoa"},
         {"guestFeatures": "0x21"}, {"vcpus": [3]}],
    )
    def test_every_input_matters(self, artifacts, tmp_path, change):
        base = kata_measure.measure(_guest(artifacts, vcpus=[1]), tmp_path).measurements
        other = kata_measure.measure(_guest(artifacts, **{"vcpus": [1], **change}), tmp_path)
        assert other.measurements[0][1] != base[0][1]

    def test_kernel_bytes_matter(self, artifacts, tmp_path):
        before = kata_measure.measure(_guest(artifacts, vcpus=[1]), tmp_path).measurements
        artifacts["kernel"].write_bytes(b"another kernel")
        after = kata_measure.measure(_guest(artifacts, vcpus=[1]), tmp_path).measurements
        assert before != after

    def test_record_names_every_input(self, artifacts, tmp_path):
        record = kata_measure.measure(_guest(artifacts), tmp_path).record()
        for key in ("firmware", "kernel", "initrd"):
            path = artifacts[key]
            assert record[key] == {
                "path": str(path),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        assert (record["cmdline"], record["vcpu_type"], record["guest_features"]) == (
            CMDLINE, "EPYC-v4", "0x1")
        assert (record["mode"], record["vmm_type"]) == ("snp", "QEMU")
        assert json.loads(json.dumps(record)) == record  # JSON-ready

    def test_relative_paths_from_the_project(self, artifacts, tmp_path):
        guest = _guest(artifacts, firmware="AMDSEV.fd", kernel="vmlinuz.container",
                       initrd="initrd.img")
        absolute = kata_measure.measure(_guest(artifacts), tmp_path)
        relative = kata_measure.measure(guest, tmp_path)
        assert relative.measurements == absolute.measurements
        assert relative.firmware.path == "AMDSEV.fd"


class TestProblems:
    """What cannot be measured is named by key, with what to use instead."""

    def test_generic_ovmf_refused(self, artifacts, tmp_path):
        fake_amdsev_firmware(artifacts["firmware"], hashes=False)
        found = kata_measure.problems(_guest(artifacts), tmp_path)
        assert [key for key, _, _ in found] == ["firmware"]
        assert "AMDSEV.fd" in found[0][2]
        with pytest.raises(ValueError, match="firmware"):
            kata_measure.measure(_guest(artifacts), tmp_path)

    def test_missing_file_and_unknown_cpu(self, artifacts, tmp_path):
        guest = _guest(artifacts, kernel=str(tmp_path / "nope"), cpuModel="EPYC-v9")
        assert [k for k, _, _ in kata_measure.problems(guest, tmp_path)] == ["kernel", "cpuModel"]


def _stack(artifacts: dict[str, Path], **kata: Any) -> dict[str, Any]:
    return {
        "coco:cluster": {"provider": "existing", "context": "lab"},
        "coco:nodePools": [{"name": "snp", "tee": "snp", "mode": "bare-metal",
                            "nodeSelector": {"coco-stack.io/tee": "snp"}}],
        "coco:kbs": {
            "referenceValues": {"snp_launch_measurement": ["00" * 48]},
            "kataGuest": {"firmware": str(artifacts["firmware"]),
                          "kernel": str(artifacts["kernel"]), "cmdline": CMDLINE, **kata},
        },
    }


class TestStack:
    """The stack's KBS trusts the measured kata guest, next to the spec's own values."""

    def test_reference_value_reaches_the_kbs(self, artifacts, render_config, tmp_path):
        result = render_config(_stack(artifacts, vcpus=[1, 2]))
        files = render.unwrap(
            one(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values").inputs
        )["data"]
        stored = json.loads(files["snp_launch_measurement"])
        guest = KataGuest.model_validate(_stack(artifacts, vcpus=[1, 2])["coco:kbs"]["kataGuest"])
        expected = sorted([_cli(guest, 1), _cli(guest, 2), "00" * 48])
        assert stored["value"] == expected

    def test_missing_firmware_is_an_error(self, artifacts):
        artifacts["firmware"].unlink()
        with pytest.raises(SpecError) as info:
            validate(_stack(artifacts), stack="t", base_dir=str(ROOT))
        errors = [i.path for i in info.value.issues if i.severity == "error"]
        assert errors == ["coco:kbs.kataGuest.firmware"]

    def test_without_a_bare_metal_snp_pool_it_warns(self, artifacts):
        config = _stack(artifacts)
        config["coco:nodePools"][0]["tee"] = "tdx"
        _, warnings = validate(config, stack="t", base_dir=str(ROOT))
        assert "coco:kbs.kataGuest" in {w.path for w in warnings}


KERNEL_MEMBER = "./opt/kata/share/kata-containers/vmlinuz-6.18.35-200"


def _release_tarball(path: Path, firmware: bytes, kernel: bytes) -> Path:
    """Laid out like kata-static: the kernel through the vmlinuz.container link."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        link = tarfile.TarInfo("./opt/kata/share/kata-containers/vmlinuz.container")
        link.type, link.linkname = tarfile.SYMTYPE, "vmlinuz-6.18.35-200"
        archive.addfile(link)
        for name, data in (("./opt/kata/share/ovmf/AMDSEV.fd", firmware), (KERNEL_MEMBER, kernel)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


class TestFromRelease:
    """Without firmware and kernel, the guest is measured from the pinned kata release's members:
    fetched over HTTP, checked against the pinned sha256, links followed."""

    @pytest.fixture
    def pinned(self, server, artifacts, monkeypatch, tmp_path) -> ReleaseArtifact:
        monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
        name = "kata-static-4.0.0-amd64.tar.zst"
        data = _release_tarball(server.root / name, artifacts["firmware"].read_bytes(),
                                artifacts["kernel"].read_bytes()).read_bytes()
        artifact = ReleaseArtifact("kata-static", "4.0.0", server.url(name),
                                   hashlib.sha256(data).hexdigest(), len(data))
        monkeypatch.setattr(versions, "KATA_STATIC", artifact)
        return artifact

    def test_measures_the_release_members(self, pinned, artifacts, tmp_path):
        from_release = kata_measure.measure(KataGuest(cmdline=CMDLINE, vcpus=[1, 4]), tmp_path)
        from_files = kata_measure.measure(_guest(artifacts, initrd=None, vcpus=[1, 4]), tmp_path)
        assert from_release.measurements == from_files.measurements
        assert from_release.firmware == kata_measure.Artifact(
            f"{pinned.filename}:opt/kata/share/ovmf/AMDSEV.fd", from_files.firmware.sha256)
        assert from_release.kernel.path == (
            f"{pinned.filename}:opt/kata/share/kata-containers/vmlinuz.container")
        assert from_release.record()["release"] == {"url": pinned.url, "sha256": pinned.sha256}
        assert from_files.record()["release"] is None

    def test_a_named_kernel_replaces_only_the_kernel(self, pinned, artifacts, tmp_path):
        other = tmp_path / "other-kernel"
        other.write_bytes(b"another kernel" * 100)
        mixed = kata_measure.measure(KataGuest(cmdline=CMDLINE, kernel=str(other)), tmp_path)
        files = kata_measure.measure(_guest(artifacts, initrd=None, kernel=str(other),
                                            vcpus=[1]), tmp_path)
        assert mixed.measurements == files.measurements
        assert mixed.firmware.path.startswith(pinned.filename)
        assert mixed.kernel.path == str(other)

    def test_a_mirror_is_used_and_checked(self, pinned, server, tmp_path):
        (server.root / "copy.tar.zst").write_bytes((server.root / pinned.filename).read_bytes())
        guest = KataGuest(cmdline=CMDLINE, mirror=server.url("copy.tar.zst"))
        measured = kata_measure.measure(guest, tmp_path)
        assert server.requests == ["/copy.tar.zst"]
        assert measured.record()["release"]["url"] == server.url("copy.tar.zst")

    @pytest.mark.parametrize(
        ("given", "key"),
        [({}, "firmware"), ({"firmware": "FW"}, "kernel"), ({"mirror": "MIRROR"}, "mirror")],
    )
    def test_other_bytes_are_an_error_at_the_key_that_fetched(
        self, pinned, artifacts, monkeypatch, server, given, key
    ):
        monkeypatch.setattr(versions, "KATA_STATIC", replace(pinned, sha256="0" * 64))
        config = _stack(artifacts, vcpus=[1], cpuModel="EPYC-v99")
        guest = config["coco:kbs"]["kataGuest"]
        del guest["firmware"], guest["kernel"]
        replacements = {"FW": str(artifacts["firmware"]), "MIRROR": pinned.url}
        guest.update({k: replacements[v] for k, v in given.items()})
        # what `pulumi up` (and `coco fetch`) run: the download, checked against the pin
        found = kata_measure.problems(
            KataGuest.model_validate(guest), ROOT, offline=False
        )
        errors = [(f"coco:kbs.kataGuest.{key}", message) for key, message, _ in found]
        # the download failure, and the other mistake too: every problem, not the first
        assert sorted(path for path, _ in errors) == sorted(
            [f"coco:kbs.kataGuest.{key}", "coco:kbs.kataGuest.cpuModel"])
        assert "the pin is " + "0" * 64 in dict(errors)[f"coco:kbs.kataGuest.{key}"]

    def test_mirror_with_credentials_is_refused(self, artifacts):
        config = _stack(artifacts, mirror="https://user:token@mirror.example/kata.tar.zst")
        with pytest.raises(SpecError) as info:
            validate(config, stack="t", base_dir=str(ROOT))
        (issue,) = [i for i in info.value.issues if i.severity == "error"]
        assert issue.path == "coco:kbs.kataGuest.mirror"
        assert "netrc" in issue.hint and "token" not in issue.hint

    def test_an_unused_mirror_warns(self, artifacts):
        config = _stack(artifacts, mirror="https://mirror.example/kata.tar.zst")
        _, warnings = validate(config, stack="t", base_dir=str(ROOT))
        assert "coco:kbs.kataGuest.mirror" in {w.path for w in warnings}

    def test_download_progress_goes_to_stderr(self, pinned, tmp_path, capsys):
        kata_measure.measure(KataGuest(cmdline=CMDLINE), tmp_path)
        err = capsys.readouterr().err
        assert f"coco: download {pinned.filename}: 100%" in err
        kata_measure.measure(KataGuest(cmdline=CMDLINE), tmp_path)
        assert capsys.readouterr().err == ""  # the members came from the cache
