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

import base64
import datetime
import gzip
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from images import boot
from tests.images.conftest import _require_tools
from tests.images.podvm_standins import build_podvm_with_standins, cidata_iso

pytestmark = pytest.mark.image

INITDATA_TOML = """algorithm = "sha256"
version = "0.1.0"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://kbs.coco-stack.invalid:8080"
'''
"""
AA_TOML = '[token_configs.kbs]\nurl = "http://kbs.coco-stack.invalid:8080"\n'
SCRATCH_MARKER = "/run/peerpod/scratch-space.marker"
SCRATCH_MODULES = ("dm_crypt", "dm_integrity", "authenc", "xts", "ecb", "algif_skcipher")
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
    missing += [t for t in ("debugfs", "mkfs.ext4")
                if shutil.which(t, path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) is None]
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


def _self_signed() -> tuple[str, str, bytes]:
    """(key PEM, cert PEM, cert DER) for the forwarder's TLS server."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podvm")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("podvm")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), cert.public_bytes(
        serialization.Encoding.DER
    )


def user_data(key_pem: str, cert_pem: str, *, scratch: bool = False) -> bytes:
    """The cloud-config CAA sends a pod VM (write_files, parsed strictly by process-user-data):
    the forwarder's config with its TLS material and a pod network (VXLAN to the worker node),
    and the initdata (gzip + base64 of the TOML, pkg/initdata@v0.21.0); with `scratch`, the empty
    marker the v0.22.0 daemon adds when it runs with ENABLE_SCRATCH_SPACE=true
    (pkg/adaptor/cloud/cloud.go, pkg/paths ScratchSpacePath@v0.22.0)."""
    apf = {
        "pod-network": {
            "podip": "10.244.1.5/32",
            "pod-hw-addr": "0a:58:0a:f4:01:05",
            "interface": "eth0",
            "worker-node-ip": "10.0.2.2/24",
            "tunnel-type": "vxlan",
            "routes": [],
            "neighbors": [],
            "mtu": 1450,
            "index": 0,
            "vxlan-port": 4789,
            "vxlan-id": 555000,
            "dedicated": False,
            "external-net-via-pod-vm": False,
        },
        "pod-namespace": "/run/netns/podns",
        "pod-name": "stand-in",
        "tls-server-key": key_pem,
        "tls-server-cert": cert_pem,
    }
    initdata = base64.b64encode(gzip.compress(INITDATA_TOML.encode(), mtime=0)).decode()
    config = {
        "write_files": [
            {"path": "/run/peerpod/apf.json", "content": json.dumps(apf)},
            {"path": "/run/peerpod/initdata", "content": initdata},
        ]
    }
    if scratch:
        config["write_files"].append({"path": SCRATCH_MARKER, "content": ""})
    return ("#cloud-config\n" + yaml.safe_dump(config, sort_keys=True)).encode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tls_peer(port: int) -> bytes:
    """The certificate whatever listens behind the forwarded port presents, b"" if nothing
    completes a TLS handshake there yet."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                context.wrap_socket(raw, server_hostname="podvm") as tls:
            return tls.getpeercert(binary_form=True) or b""
    except (OSError, ssl.SSLError):
        return b""


@pytest.fixture(scope="session")
def booted(podvm: PodVm, tmp_path_factory: pytest.TempPathFactory) -> Booted:
    work = tmp_path_factory.mktemp("podvm-boot")
    key_pem, cert_pem, cert_der = _self_signed()
    iso = cidata_iso(work / "cidata.iso", user_data(key_pem, cert_pem))
    port = _free_port()
    served: list[bytes] = []

    def ready(console: str) -> bool:
        if "COCO-STANDIN attestation-agent aa.toml-sha256=" not in console:
            return False
        peer = _tls_peer(port)
        if peer:
            served.append(peer)
        return bool(peer)

    result = boot.boot(
        podvm.out / "disk.raw",
        workdir=work / "run",
        timeout=900,
        extra=[
            "-drive", f"if=none,id=cidata,format=raw,readonly=on,file={iso}",
            # PCI slots after the boot disk's, so the firmware still boots it first and PCR 4
            # stays the predicted one (no other boot option is tried)
            "-device", "virtio-blk-pci,drive=cidata,addr=0x10",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:15150",
            "-device", "virtio-net-pci,netdev=net0,romfile=,addr=0x11",
        ],
        until=ready,
    )
    print(f"podvm boot: {result.seconds:.1f} s to a forwarder serving TLS")
    return Booted(result, served[-1] if served else b"", cert_der)


def _standin_line(console: str, role: str) -> dict[str, str]:
    for line in console.splitlines():
        if line.startswith(f"COCO-STANDIN {role} ") and "=" in line:
            return dict(field.split("=", 1) for field in line.split()[2:] if "=" in field)
    return {}


class TestPodVmBoots:
    """process-user-data configures the pod VM from the config disk, and the forwarder listens."""

    def test_forwarder_serves_tls_with_the_key_from_apf_json(self, booted: Booted):
        console = booted.result.console
        assert booted.result.stopped, console[-4000:]
        assert booted.served_cert == booted.cert

    def test_initdata_unpacked_digest_written_and_extended_into_pcr8(self, booted: Booted):
        seen = _standin_line(booted.result.console, "attestation-agent")
        digest = hashlib.sha256(INITDATA_TOML.encode()).hexdigest()
        assert seen["aa.toml-sha256"] == hashlib.sha256(AA_TOML.encode()).hexdigest()
        assert seen["initdata-digest"] == digest
        assert seen["pcr8"] == hashlib.sha256(bytes(32) + bytes.fromhex(digest)).hexdigest()

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
    modules: bool  # the recipe loads every kernel module the scratch space needs


@pytest.fixture(scope="session")
def booted_scratch(podvm: PodVm, tmp_path_factory: pytest.TempPathFactory) -> ScratchBoot:
    """The pod VM on a disk 1 GiB larger than the image, its user data asking for scratch space:
    a sparse copy of disk.raw (the build output stays as built), grown at the end the way a
    cloud disk larger than the image is."""
    from images import recipe

    work = tmp_path_factory.mktemp("podvm-scratch")
    key_pem, cert_pem, _ = _self_signed()
    iso = cidata_iso(work / "cidata.iso", user_data(key_pem, cert_pem, scratch=True))
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
    modules = set(recipe.load("podvm").modules)
    return ScratchBoot(result, disk, set(SCRATCH_MODULES) <= modules)


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
        if not booted_scratch.modules:
            failed = console[console.index(SCRATCH_FAILED):].splitlines()[0]
            assert "kernel module(s) not loaded" in failed and "dm_crypt" in failed, failed
            assert SCRATCH_MOUNTED not in console
            return
        assert SCRATCH_FAILED not in console, console[-4000:]
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
        if not booted_scratch.modules:
            pytest.skip("the podvm recipe does not load " + ", ".join(SCRATCH_MODULES))
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
