"""The boot test: QEMU (TCG, no KVM) with OVMF and swtpm boots a built disk; systemd-stub
measures the UKI, the initramfs opens the dm-verity root, reads it whole, prints the guest's
PCR values and switches to the root, whose init prints the image marker and powers off.

Fixed machine so PCR 4 matches the prediction's boot path (images.measure): q35, -nodefaults (no
default DVD drive the firmware would try first), the disk as the only boot device, OVMF_CODE_4M
read-only plus a fresh copy of OVMF_VARS_4M per run (no boot variables carried over), swtpm over a
socket as tpm-tis. /dev/kvm exists on the CI machines but fails; -accel tcg is explicit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import pins
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


def tamper_copy(disk: Path, out: Path, offset: int) -> None:
    """A copy of `disk` with one byte flipped at `offset` (inside the root partition)."""
    run(["cp", "--sparse=always", disk, out])
    with out.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
