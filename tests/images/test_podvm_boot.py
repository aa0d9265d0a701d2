"""The podvm image boots (marker `image`): QEMU TCG + OVMF + swtpm, with a config disk standing
in for the cloud's user data.

What is real and what is a stand-in:
- REAL: the podvm recipe, its Debian root, kernel, initramfs, UKI and dm-verity layout, our
  systemd units, and cloud-api-adaptor's agent-protocol-forwarder and process-user-data built
  with Go from tools/go/caa (the committed go.sum);
- STAND-IN: the kata-static archive (a small zstd tar with the real layout: an ext4 guest image
  at the pinned offset behind the real member name), and in it kata-agent, attestation-agent,
  confidential-data-hub and api-server-rest replaced by small static Go programs
  (fixtures/podvm-standins) that listen where the real ones do and report on the console. The
  real archive (1.9 GB from GitHub) is not reachable from the test machines;
- STAND-IN: the cloud's user data, as a NoCloud-style ISO 9660 disk labelled cidata holding
  `user-data`, the source process-user-data v0.21.0/v0.22.0 reads without any cloud
  (/media/cidata/user-data, pkg/userdata FileUserDataProvider).

The boot and its wait are `coco image boot`'s own (images.boot.check with the recipe's [boot]
section: the verity root mounted, then agent-protocol-forwarder's TLS on 15150 through a QEMU
user-net forward, with the peer-pod user data of images/userdata.py).

The boot shows: process-user-data wrote the forwarder's config (apf.json: the forwarder then
serves TLS with the key from it, seen from the host through a forwarded port) and the initdata
(aa.toml unpacked from it, its digest written and extended into PCR 8); agent-protocol-forwarder
listens on 15150; the PCRs the build predicted are what the guest measured (the KBS reference
values); one flipped byte in the root stops the boot in the initramfs. A second boot, on a copy
of the disk grown by 1 GiB with the scratch marker in the user data, shows the encrypted scratch
space mounted where image-rs keeps layers before the data hub and the agent start (or, while the
recipe does not load dm-crypt and dm-integrity, the failure naming the missing modules).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from images import boot, recipe, userdata
from images.userdata import AA_TOML, INITDATA_TOML
from tests.images.conftest import _require_tools
from tests.images.podvm_standins import build_podvm_with_standins

pytestmark = pytest.mark.image

SCRATCH_MOUNTED = "coco-podvm: scratch: mounted /run/kata-containers/image"
SCRATCH_FAILED = "coco-podvm: scratch: FAILED"

@dataclass(frozen=True)
class PodVm:
    out: Path
    measurements: dict[str, Any]


@dataclass(frozen=True)
class Booted:
    result: boot.BootResult
    served_cert: bytes  # DER of the certificate the forwarder presented, b"" if none
    cert: bytes  # DER of the certificate the user data gave it


def _require_go_and_e2fsprogs() -> None:
    missing = [t for t in ("go",) if shutil.which(t) is None]
    missing += [
        t
        for t in ("debugfs", "mkfs.ext4")
        if shutil.which(t, path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) is None
    ]
    if missing:
        message = f"needs {', '.join(missing)} (Go 1.25+ from go.dev, e2fsprogs)"
        if os.environ.get("COCO_REQUIRE_IMAGE_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def podvm(tmp_path_factory: pytest.TempPathFactory) -> PodVm:
    _require_tools()
    _require_go_and_e2fsprogs()
    base = tmp_path_factory.mktemp("podvm")
    old = os.environ.get("COCO_IMAGE_CACHE")
    # an outer COCO_IMAGE_CACHE (CI's warm cache) is kept; else a fresh one
    os.environ["COCO_IMAGE_CACHE"] = old or str(base / "cache")
    try:
        measurements = build_podvm_with_standins(base / "out", base / "work")
    finally:
        if old is None:
            os.environ.pop("COCO_IMAGE_CACHE", None)
    return PodVm(base / "out", measurements)


@pytest.fixture(scope="session")
def booted(podvm: PodVm, tmp_path_factory: pytest.TempPathFactory) -> Booted:
    work = tmp_path_factory.mktemp("podvm-boot")
    tls = userdata.self_signed()
    check = recipe.load("podvm").boot
    assert (check.ready, check.port, check.tls, check.user_data) == ("tcp", 15150, True, "peer-pod")
    # the stand-in attestation agent's report reaches the serial console through the journal
    # and may come after the forwarder listens: wait for it as well
    result = boot.check(
        podvm.out / "disk.raw",
        check,
        workdir=work / "run",
        tls=tls,
        progress=print,
        also=lambda console: "COCO-STANDIN attestation-agent aa.toml-sha256=" in console,
    )
    print(f"podvm boot: {result.seconds:.1f} s to a forwarder serving TLS")
    return Booted(result, result.served_cert, tls.cert_der)


def _standin_reports(console: str, role: str) -> list[dict[str, str]]:
    """Every `COCO-STANDIN ROLE key=value ...` report on the console: the stand-in writes each
    to the console directly and through the journal, and a kernel message can land in the middle
    of the direct one, so a test looks for one whole report among them."""
    marker = f"COCO-STANDIN {role} "
    reports = []
    for line in console.splitlines():
        if marker in line:
            fields = line.split(marker, 1)[1].split()
            report = dict(field.split("=", 1) for field in fields if "=" in field)
            if report:
                reports.append(report)
    return reports


class TestPodVmBoots:
    """process-user-data configures the pod VM from the config disk, and the forwarder listens."""

    def test_forwarder_serves_tls_with_the_key_from_apf_json(self, booted: Booted):
        console = booted.result.console
        assert booted.result.stopped and booted.result.booted, console[-4000:]
        assert booted.served_cert == booted.cert

    def test_initdata_unpacked_digest_written_and_extended_into_pcr8(self, booted: Booted):
        digest = hashlib.sha256(INITDATA_TOML.encode()).hexdigest()
        expected = {
            "aa.toml-sha256": hashlib.sha256(AA_TOML.encode()).hexdigest(),
            "initdata-digest": digest,
            "pcr8": hashlib.sha256(bytes(32) + bytes.fromhex(digest)).hexdigest(),
        }
        reports = _standin_reports(booted.result.console, "attestation-agent")
        assert expected in reports, reports

    def test_components_started_in_order(self, booted: Booted):
        console = booted.result.console
        order = [
            console.index("COCO-STANDIN attestation-agent listening"),
            console.index("COCO-STANDIN confidential-data-hub listening"),
            console.index("COCO-STANDIN kata-agent listening /run/kata-containers/agent.sock"),
        ]
        assert order == sorted(order)

    def test_predicted_pcrs_are_the_booted_ones(self, booted: Booted, podvm: PodVm):
        """The KBS reference values (tpm_pcr4, tpm_pcr11 from measurements.json) are what the
        pod VM measured."""
        for pcr in ("4", "11"):
            predicted = podvm.measurements["tpm"]["pcrs"][pcr]
            assert booted.result.pcrs[pcr] == predicted
            assert podvm.measurements["reference_values"][f"tpm_pcr{pcr}"] == [predicted]


class TestPodVmKernel:
    """The pod VM boots the pinned TEE-capable kernel, and its initramfs brings the guest
    drivers the attestation agent reads evidence from (spec/versions.py KERNEL_PACKAGE,
    TEE_GUEST_MODULES). Without a TEE, sev-guest and tdx-guest refuse to load (ENODEV); their
    dependencies tsm and configfs load."""

    def test_the_pinned_kernel_booted(self, booted: Booted, podvm: PodVm):
        from spec import versions

        release = versions.KERNEL_PACKAGE.removeprefix("linux-image-")
        assert podvm.measurements["inputs"]["kernel_package"] == versions.KERNEL_PACKAGE
        assert f"Linux version {release} " in booted.result.console

    def test_tee_guest_drivers_are_tried_and_their_dependencies_load(self, booted: Booted):
        from spec import versions

        console = booted.result.console
        for module in sorted(versions.TEE_GUEST_MODULES.values()):
            assert f"coco: insmod {module}.ko failed (hardware absent?)" in console
        for dependency in ("tsm.ko", "configfs.ko"):
            assert f"coco: insmod {dependency} failed" not in console
        assert "coco: insmod" in console  # the initramfs reports what it could not load


class TestPodVmTamperedRoot:
    """One flipped byte in the podvm root partition stops the boot in the initramfs."""

    def test_fails_with_verity_error(self, podvm: PodVm, tmp_path_factory):
        work = tmp_path_factory.mktemp("podvm-tamper")
        measurements = podvm.measurements
        root = next(p for p in measurements["disk"]["partitions"] if p["name"] == "coco-root")
        offset = root["start"] + measurements["dm_verity"]["data_blocks"] * 4096 // 2 + 123
        boot.tamper_copy(podvm.out / "disk.raw", work / "tampered.raw", offset)
        result = boot.boot(work / "tampered.raw", workdir=work / "run")
        assert not result.root_mounted, result.console[-3000:]
        assert "dm-verity" in result.failure


@dataclass(frozen=True)
class ScratchBoot:
    result: boot.BootResult
    disk: Path  # the grown copy of disk.raw the VM booted (and partitioned)


@pytest.fixture(scope="session")
def booted_scratch(podvm: PodVm, tmp_path_factory: pytest.TempPathFactory) -> ScratchBoot:
    """The pod VM on a disk 1 GiB larger than the image, its user data asking for scratch space:
    a sparse copy of disk.raw (the build output stays as built), grown at the end the way a
    cloud disk larger than the image is."""
    work = tmp_path_factory.mktemp("podvm-scratch")
    data = userdata.peer_pod_user_data(userdata.self_signed(), scratch=True)
    iso = userdata.cidata_iso(work / "cidata.iso", data)
    disk = work / "grown.raw"
    shutil.copyfile(podvm.out / "disk.raw", disk)
    with disk.open("r+b") as grown:
        grown.truncate(disk.stat().st_size + 1024 * 1024 * 1024)

    def ready(console: str) -> bool:
        return ("COCO-STANDIN kata-agent listening" in console
                and (SCRATCH_MOUNTED in console or SCRATCH_FAILED in console))

    result = boot.boot(
        disk,
        workdir=work / "run",
        timeout=900,
        extra=[
            "-drive", f"if=none,id=cidata,format=raw,readonly=on,file={iso}",
            "-device", "virtio-blk-pci,drive=cidata,addr=0x10",
            "-netdev", "user,id=net0",
            "-device", "virtio-net-pci,netdev=net0,romfile=,addr=0x11",
        ],
        until=ready,
    )
    print(f"podvm scratch boot: {result.seconds:.1f} s to the kata agent")
    return ScratchBoot(result, disk)


def _gpt_partition(disk: Path, name: str) -> tuple[int, int]:
    """(start, size) in bytes of the GPT partition called `name`, read with sfdisk --json."""
    out = subprocess.run(["sfdisk", "--json", str(disk)], check=True, capture_output=True,
                         text=True).stdout
    table = json.loads(out)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    for part in table["partitions"]:
        if part.get("name") == name:
            return int(part["start"]) * sector, int(part["size"]) * sector
    raise AssertionError(f"no partition {name!r} in {[p.get('name') for p in table['partitions']]}")


class TestPodVmScratch:
    """With the scratch marker in the user data and free space on the boot disk, the pod VM
    mounts an encrypted, integrity-protected ext4 where image-rs keeps image layers, before the
    data hub and the kata agent start; without the kernel modules for it the failure says which
    are missing and the pod still starts (images in memory)."""

    def test_mounted_before_the_hub_and_the_agent(self, booted_scratch: ScratchBoot):
        console = booted_scratch.result.console
        assert booted_scratch.result.stopped, console[-4000:]
        assert SCRATCH_FAILED not in console, console[console.index(SCRATCH_FAILED):][:2000]
        line = console[console.index(SCRATCH_MOUNTED):].splitlines()[0]
        assert "ext4 on /dev/mapper/coco-scratch" in line
        assert "LUKS2 aes-xts-plain64 + hmac(sha256)" in line
        mounted = console.index(SCRATCH_MOUNTED)
        assert mounted < console.index("COCO-STANDIN confidential-data-hub listening")
        assert mounted < console.index("COCO-STANDIN kata-agent listening")

    def test_host_sees_luks2_with_integrity_on_the_new_partition(
        self, booted_scratch: ScratchBoot, podvm: PodVm
    ):
        """What the host can read of the scratch partition: a LUKS2 header whose segment is
        aes-xts-plain64 with hmac(sha256) integrity, in space the image did not use."""
        start, size = _gpt_partition(booted_scratch.disk, "coco-scratch")
        image_end = max(p["start"] + p["size"] for p in podvm.measurements["disk"]["partitions"])
        assert start >= image_end
        assert size >= 512 * 1024 * 1024
        with booted_scratch.disk.open("rb") as raw:
            raw.seek(start)
            header = raw.read(16 * 1024)
        assert header[:6] == b"LUKS\xba\xbe" and int.from_bytes(header[6:8], "big") == 2
        metadata = json.loads(header[4096:].split(b"\0", 1)[0])
        (segment,) = metadata["segments"].values()
        assert segment["encryption"] == "aes-xts-plain64"
        assert segment["integrity"]["type"] == "hmac(sha256)"
