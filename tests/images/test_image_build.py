"""Real builds and boots of the minimal recipe (marker `image`; about 5 minutes on 2 cores).

Each class protects one promise of the guest-image issue: predicted PCRs are what a real boot
measures, a tampered root does not boot, clean builds are bit-identical, the cache keeps rebuilds
identical, the outputs are what the clouds import, and the SNP launch digest is what
sev-snp-measure computes on its own from the recorded parameters.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pefile
import pytest

from images import boot
from images.build import OUTPUT_FILES
from tests.images.conftest import Built

pytestmark = pytest.mark.image
MIB = 1 << 20


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def booted(minimal: Built, tmp_path_factory: pytest.TempPathFactory) -> boot.BootResult:
    return boot.boot(minimal.out / "disk.raw", workdir=tmp_path_factory.mktemp("boot"))


@pytest.fixture(scope="session")
def tampered(minimal: Built, tmp_path_factory: pytest.TempPathFactory) -> boot.BootResult:
    work = tmp_path_factory.mktemp("tamper")
    root = next(p for p in minimal.measurements["disk"]["partitions"] if p["name"] == "coco-root")
    data_bytes = minimal.measurements["dm_verity"]["data_blocks"] * 4096
    # middle of the erofs data (file contents, not the superblock): only a full read finds it
    offset = root["start"] + data_bytes // 2 + 123
    boot.tamper_copy(minimal.out / "disk.raw", work / "tampered.raw", offset)
    return boot.boot(work / "tampered.raw", workdir=work / "run")


class TestBootMatchesPrediction:
    """The PCR 4 and PCR 11 values in measurements.json are what swtpm holds after a real boot."""

    def test_boots_to_marker_on_the_verity_root(self, booted: boot.BootResult, minimal: Built):
        assert booted.booted, booted.console[-3000:]
        root_hash = minimal.measurements["dm_verity"]["root_hash"]
        assert f"{boot.ROOT_MARKER} {root_hash}" in booted.console

    @pytest.mark.parametrize("pcr", ["4", "11"])
    def test_predicted_pcr_equals_booted(self, booted: boot.BootResult, minimal: Built, pcr):
        predicted = minimal.measurements["tpm"]["pcrs"][pcr]
        assert booted.pcrs[pcr] == predicted
        assert minimal.measurements["reference_values"][f"tpm_pcr{pcr}"] == [predicted]

    def test_pcr12_untouched(self, booted: boot.BootResult):
        """The initramfs refuses to boot when the firmware's load options replaced the UKI's
        command line (measured into PCR 12); a normal boot leaves PCR 12 zero."""
        assert booted.pcrs["12"] == "0" * 64

    def test_coco_image_boot_command(self, minimal: Built, capsys: pytest.CaptureFixture[str]):
        """The user-facing check: `coco image boot DIR` boots and compares PCR 4 and 11."""
        from cli.image import main

        assert main(["image", "boot", str(minimal.out)]) == 0
        out = capsys.readouterr().out
        assert out.count("predicted") == 2

    def test_pcr11_equals_systemd_measure(self, minimal: Built, tmp_path: Path):
        """systemd 252's own calculator, fed the sections pefile reads from the UKI."""
        tool = Path("/usr/lib/systemd/systemd-measure")
        if not tool.exists():
            pytest.skip("systemd-measure not installed (package systemd)")
        pe = pefile.PE(str(minimal.out / "uki.efi"))
        args = []
        for section in pe.sections:
            name = section.Name.rstrip(b"\0").decode()
            if name in (".linux", ".osrel", ".cmdline", ".initrd"):
                path = tmp_path / name[1:]
                path.write_bytes(section.get_data()[: section.Misc_VirtualSize])
                args.append(f"--{name[1:]}={path}")
        out = subprocess.run(
            [str(tool), "calculate", *args, "--bank=sha256", "--phase=", "--json=short"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        values = json.loads(out)["sha256"]
        assert [v["hash"] for v in values] == [minimal.measurements["tpm"]["pcrs"]["11"]]


class TestKernelAuthenticode:
    """The kernel's Authenticode digest (PCR 4's second application event) equals the digest
    Debian signed into the kernel (golden vector, fixtures/README.md) and osslsigncode's."""

    def test_equals_debian_signature(self, minimal: Built, tmp_path: Path):
        from images.measure import authenticode_sha256, uki_sections

        kernel = uki_sections((minimal.out / "uki.efi").read_bytes())[".linux"].data
        golden = json.loads((Path(__file__).parent / "fixtures" / "authenticode.json").read_text())
        vector = golden["kernel"]
        ours = authenticode_sha256(kernel).hex()
        if hashlib.sha256(kernel).hexdigest() == vector["file_sha256"]:
            assert ours == vector["authenticode_sha256"]
            assert minimal.measurements["inputs"]["kernel_release"] == vector["release"]
        tool = shutil.which("osslsigncode")
        if tool is None:
            pytest.skip("osslsigncode not installed: checked against the golden vector only")
        (tmp_path / "vmlinuz").write_bytes(kernel)
        out = subprocess.run(
            [tool, "verify", "-in", str(tmp_path / "vmlinuz")], capture_output=True, text=True
        ).stdout
        signed = next(
            line.split(":", 1)[1].strip().lower()
            for line in out.splitlines()
            if line.startswith("Current message digest")
        )
        assert ours == signed


class TestTamperedRootFailsBoot:
    """One flipped byte in the root partition stops the boot in the initramfs."""

    def test_fails_with_verity_error(self, tampered: boot.BootResult):
        assert not tampered.booted, tampered.console[-3000:]
        assert not tampered.root_mounted
        assert "dm-verity" in tampered.failure

    def test_untampered_copy_boots(self, booted: boot.BootResult):
        # the control: the same disk without the flipped byte reaches the marker
        assert booted.booted and not booted.failure


class TestReproducible:
    """Two clean builds (separate outputs, separate empty caches) are bit-identical."""

    def test_every_artifact_identical(self, minimal: Built, minimal_again: Built):
        names = sorted(p.name for p in minimal.out.iterdir())
        assert names == sorted(p.name for p in minimal_again.out.iterdir())
        assert "measurements.json" in names and "disk.raw" in names
        for name in names:
            assert _sha256(minimal.out / name) == _sha256(minimal_again.out / name), name

    def test_both_builds_were_cold(self, minimal: Built, minimal_again: Built):
        cold = {"rootfs": False, "boot-tree": False, "initramfs": False}
        assert minimal.cache_hits == cold
        assert minimal_again.cache_hits == cold


class TestCache:
    """A warm rebuild uses the cached stages and produces the same bytes."""

    def test_warm_rebuild_hits_and_is_identical(self, minimal: Built, minimal_warm: Built):
        assert minimal_warm.cache_hits == {"rootfs": True, "boot-tree": True, "initramfs": True}
        assert minimal_warm.measurements == minimal.measurements


class TestOutputs:
    """The formats are what QEMU, Azure and GCP import, and the digests describe them."""

    def test_recorded_digests(self, minimal: Built):
        for name, artifact in minimal.measurements["artifacts"].items():
            path = minimal.out / name
            assert artifact == {"sha256": _sha256(path), "size": path.stat().st_size}
        assert set(minimal.measurements["artifacts"]) == {"uki.efi", *OUTPUT_FILES.values()}

    def test_raw_size(self, minimal: Built):
        size = (minimal.out / "disk.raw").stat().st_size
        assert size <= 512 * MIB and size % MIB == 0

    @pytest.mark.parametrize(("name", "fmt"), [("disk.qcow2", "qcow2"), ("disk.vhd", "vpc")])
    def test_qemu_reads_virtual_size(self, minimal: Built, name, fmt):
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "-f", fmt, "--output=json", str(minimal.out / name)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert info["format"] == fmt
        assert info["virtual-size"] == (minimal.out / "disk.raw").stat().st_size

    def test_qcow2_content_equals_raw(self, minimal: Built):
        result = subprocess.run(
            [
                "qemu-img",
                "compare",
                "-f",
                "qcow2",
                "-F",
                "raw",
                str(minimal.out / "disk.qcow2"),
                str(minimal.out / "disk.raw"),
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_vhd_is_raw_plus_fixed_footer(self, minimal: Built):
        vhd = (minimal.out / "disk.vhd").read_bytes()
        raw = (minimal.out / "disk.raw").read_bytes()
        assert vhd[:-512] == raw
        footer = vhd[-512:]
        assert footer[:8] == b"conectix" and int.from_bytes(footer[60:64], "big") == 2

    def test_gcp_tar_holds_disk_raw(self, minimal: Built):
        """disk.raw grown to whole GiB, its partitions those of disk.raw: the GPT, the partition
        bytes and a boot of it are checked in test_disk_gcp.py (TestBuiltImage)."""
        with gzip.open(minimal.out / "disk.raw.tar.gz") as gz, tarfile.open(fileobj=gz) as tar:
            members = tar.getmembers()
            assert [m.name for m in members] == ["disk.raw"]
            assert members[0].size % (1 << 30) == 0
            assert members[0].size >= (minimal.out / "disk.raw").stat().st_size


class TestSnpLaunchDigest:
    """measurements.json's SNP digests equal sev-snp-measure's CLI run on the recorded inputs."""

    def test_cli_agrees_for_every_vcpu_count(self, minimal: Built):
        snp = minimal.measurements["snp"]
        assert _sha256(Path(snp["firmware"]["path"])) == snp["firmware"]["sha256"]
        tool = shutil.which("sev-snp-measure") or str(
            Path(sys.executable).parent / "sev-snp-measure"
        )
        assert len(snp["launch_digests"]) == 3
        for entry in snp["launch_digests"]:
            out = subprocess.run(
                [
                    tool,
                    "--mode",
                    snp["mode"],
                    "--vcpus",
                    str(entry["vcpus"]),
                    "--vcpu-type",
                    snp["vcpu_type"],
                    "--vmm-type",
                    snp["vmm_type"],
                    "--ovmf",
                    snp["firmware"]["path"],
                    "--guest-features",
                    snp["guest_features"],
                    "--output-format",
                    "hex",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert out == entry["snp_launch_measurement"]
        reference = minimal.measurements["reference_values"]["snp_launch_measurement"]
        assert sorted(e["snp_launch_measurement"] for e in snp["launch_digests"]) == reference
        assert len(set(reference)) == 3  # the vCPU count changes the digest
