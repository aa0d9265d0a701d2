"""The boot test: QEMU (TCG, no KVM) with OVMF and swtpm boots a built disk; systemd-stub
measures the UKI, the initramfs opens the dm-verity root, reads it whole, prints the guest's
PCR values and switches to the root. What "booted" means then is the recipe's [boot] section
(images.recipe.BootCheck), checked by `check`: the minimal image's init prints the image marker
and powers off (`marker`); a systemd image such as podvm never prints it and never powers off,
so it is booted when the root is mounted and a guest TCP port answers through a QEMU user-net
forward (`tcp`, a TLS handshake for the podvm's agent-protocol-forwarder on 15150, with the
peer-pod user data of images/userdata.py on a config disk), and the VM is stopped then.

Fixed machine so PCR 4 matches the prediction's boot path (images.measure): q35, -nodefaults (no
default DVD drive the firmware would try first), the disk as the only boot device, OVMF_CODE_4M
read-only plus a fresh copy of OVMF_VARS_4M per run (no boot variables carried over), swtpm over a
socket as tpm-tis. /dev/kvm exists on the CI machines but fails; -accel tcg is explicit.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import pins, userdata
from .recipe import BootCheck
from .run import run, spawn

IMAGE_MARKER = "COCO-IMAGE-BOOTED"
ROOT_MARKER = "COCO-VERITY-ROOT-MOUNTED"
FAIL_MARKER = "COCO-BOOT-FAIL"
_PCR = re.compile(r"^COCO-PCR sha256 (\d+) ([0-9A-Fa-f]{64})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class BootResult:
    booted: bool  # the root's init printed the image marker
    root_mounted: bool
    failure: str  # the initramfs's COCO-BOOT-FAIL reason, if any
    pcrs: dict[str, str] = field(default_factory=dict)  # "4" -> lowercase hex
    console: str = ""
    seconds: float = 0.0
    stopped: bool = False  # `until` was met and the VM was stopped (an init that never powers off)
    served_cert: bytes = b""  # tcp + tls check: DER of the certificate the guest port presented


def parse_console(text: str, seconds: float = 0.0, stopped: bool = False) -> BootResult:
    fail = re.search(rf"{FAIL_MARKER}: (.*)", text)
    return BootResult(
        stopped=stopped,
        booted=IMAGE_MARKER in text,
        root_mounted=ROOT_MARKER in text,
        failure=fail.group(1).strip() if fail else "",
        pcrs={n: v.lower() for n, v in _PCR.findall(text)},
        console=text,
        seconds=seconds,
    )


def qemu_argv(
    disk: Path, vars_copy: Path, tpm_socket: Path, console: Path, extra: Sequence[str] = ()
) -> list[str]:
    """The fixed machine; `extra` appends devices after the boot disk (a config disk, a NIC),
    which the firmware tries only after it (the boot path PCR 4 assumes stays the same)."""
    return [
        "qemu-system-x86_64",
        "-nodefaults",
        "-accel",
        "tcg",
        "-machine",
        "q35",
        "-m",
        "1024",
        "-smp",
        "1",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{console}",
        "-drive",
        f"if=pflash,format=raw,unit=0,readonly=on,file={pins.OVMF_CODE}",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={vars_copy}",
        "-drive",
        f"if=virtio,format=raw,file={disk}",
        "-chardev",
        f"socket,id=chrtpm,path={tpm_socket}",
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        "tpm-tis,tpmdev=tpm0",
        *extra,
    ]


def boot(
    disk: Path,
    *,
    timeout: float = 300.0,
    workdir: Path | None = None,
    extra: Sequence[str] = (),
    until: Callable[[str], bool] | None = None,
) -> BootResult:
    """Boot `disk` once (it is not modified: QEMU writes nothing to a read-only root, and the
    run uses its own VARS and TPM state). Returns what the console showed. `until` (for images
    whose init keeps running, such as systemd) is asked about twice a second with the console so
    far; when it returns True the VM is stopped and the result says `stopped`."""
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="coco-boot-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    vars_copy, state = work / "OVMF_VARS_4M.fd", work / "tpm"
    socket, console = work / "swtpm.sock", work / "console.log"
    shutil.copyfile(pins.OVMF_VARS, vars_copy)
    state.mkdir(exist_ok=True)
    swtpm = spawn(
        [
            "swtpm",
            "socket",
            "--tpm2",
            "--tpmstate",
            f"dir={state}",
            "--ctrl",
            f"type=unixio,path={socket}",
            "--terminate",
        ],
        log=work / "swtpm.log",
    )
    started = time.perf_counter()
    try:
        for _ in range(100):
            if socket.exists():
                break
            time.sleep(0.05)
        qemu = spawn(qemu_argv(disk, vars_copy, socket, console, extra), log=work / "qemu.log")
        stopped = False
        try:
            if until is None:
                qemu.wait(timeout=timeout)
            else:
                deadline = time.monotonic() + timeout
                while qemu.poll() is None:
                    text = console.read_text(errors="replace") if console.exists() else ""
                    if until(text):
                        stopped = True
                        break
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
        text = console.read_text(errors="replace") if console.exists() else ""
        return parse_console(text, time.perf_counter() - started, stopped)
    finally:
        if swtpm.poll() is None:
            swtpm.terminate()
            swtpm.wait(timeout=10)
        if own:
            shutil.rmtree(work, ignore_errors=True)


# the config disk and the NIC sit in PCI slots after the boot disk's, so the firmware still boots
# the disk first and PCR 4 stays the predicted one (no other boot option is tried)
_CIDATA_SLOT, _NIC_SLOT = "0x10", "0x11"
PROGRESS_EVERY = 30.0  # seconds between "still waiting" lines


def free_port() -> int:
    """A loopback TCP port free now (for the host end of the QEMU user-net forward)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tls_peer(port: int, timeout: float = 2.0) -> bytes:
    """DER of the certificate whatever listens behind loopback `port` presents, b"" when no TLS
    handshake completes there (yet). Not verified: the caller compares it with what it expects."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname="podvm") as tls,
        ):
            return tls.getpeercert(binary_form=True) or b""
    except (OSError, ssl.SSLError):
        return b""


def tcp_answers(port: int, timeout: float = 1.0) -> bool:
    """Something in the guest accepted a connection forwarded to it. QEMU's user-net accepts on
    the host at once and closes that connection when the guest refuses, so an accepted
    connection proves nothing; one still open after `timeout` (or sending data) does."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            return conn.recv(1) != b""
    except TimeoutError:
        return True  # open and silent: a server waiting for the client to speak
    except OSError:
        return False


def check(
    disk: Path,
    spec: BootCheck,
    *,
    timeout: float | None = None,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    tls: userdata.TlsMaterial | None = None,
    also: Callable[[str], bool] | None = None,
) -> BootResult:
    """Boot `disk` and wait until it is booted as `spec` says (timeout: `spec.timeout` unless
    given). `booted` in the result: that condition was met (with peer-pod user data: the port
    served the certificate of the user data's key). `progress` gets a line about every
    PROGRESS_EVERY seconds while waiting. `tls`: the key the peer-pod user data gives the
    forwarder (default: a fresh one). `also` (tests): a console condition that must hold too
    before a tcp check probes the port."""
    timeout = spec.timeout if timeout is None else timeout
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="coco-boot-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    started, last = time.monotonic(), [time.monotonic()]

    def report(console: str) -> None:
        now = time.monotonic()
        if progress is not None and now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            root = "verity root mounted" if ROOT_MARKER in console else "root not mounted yet"
            progress(
                f"waiting for {spec.describe()}: {now - started:.0f} s of {timeout:.0f}, {root}"
            )

    try:
        if spec.ready == "marker":

            def never(console: str) -> bool:
                report(console)
                return False  # the init powers off by itself: wait for QEMU to end

            return boot(disk, timeout=timeout, workdir=work, until=never)
        port = free_port()
        extra: list[str] = []
        expected = b""
        if spec.user_data == "peer-pod":
            tls = tls or userdata.self_signed()
            expected = tls.cert_der
            iso = userdata.cidata_iso(work / "cidata.iso", userdata.peer_pod_user_data(tls))
            extra += [
                "-drive",
                f"if=none,id=cidata,format=raw,readonly=on,file={iso}",
                "-device",
                f"virtio-blk-pci,drive=cidata,addr={_CIDATA_SLOT}",
            ]
        extra += [
            "-netdev",
            f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:{spec.port}",
            "-device",
            f"virtio-net-pci,netdev=net0,romfile=,addr={_NIC_SLOT}",
        ]
        served: list[bytes] = []

        def ready(console: str) -> bool:
            report(console)
            if ROOT_MARKER not in console or (also is not None and not also(console)):
                return False
            if not spec.tls:
                return tcp_answers(port)
            peer = tls_peer(port)
            if peer:
                served.append(peer)
            return bool(peer)

        result = boot(disk, timeout=timeout, workdir=work / "run", extra=extra, until=ready)
        cert = served[-1] if served else b""
        if result.stopped and expected and cert != expected:
            failure = (
                f"guest port {spec.port} served another TLS certificate than the one in the "
                "user data"
            )
            return dataclasses.replace(result, booted=False, served_cert=cert, failure=failure)
        return dataclasses.replace(result, booted=result.stopped, served_cert=cert)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def tamper_copy(disk: Path, out: Path, offset: int) -> None:
    """A copy of `disk` with one byte flipped at `offset` (inside the root partition)."""
    run(["cp", "--sparse=always", disk, out])
    with out.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
