"""Reference values for bare-metal SNP pools: the launch measurement of the kata guest.

Scope: given the artifacts the pinned kata release's qemu-snp shim boots (firmware, kernel,
optional initrd, kernel command line), and the shim's vCPU counts and CPU model, compute the
SEV-SNP launch measurement with sev-snp-measure, the library the images issue measures with
(images/measure.py), and record every input with its sha256. The KBS component turns the result
into the reference value `snp_launch_measurement` the KBS trusts.

What the measurement covers (sev-snp-measure guest.py, mode snp, VMM QEMU): the firmware pages,
the SEV hashes table (sha256 of kernel, initrd, command line: QEMU direct boot with an OVMF built
with that table, the AmdSev build kata ships as AMDSEV.fd), one VMSA per vCPU (so the vCPU count,
the CPU model's signature and the guest features matter). The kata root image is a disk, not
part of it: it is bound through the dm-verity root hash in the command line
(kernel_verity_params, configuration-qemu-snp.toml.in@4.0.0).

The firmware and kernel are local files when the spec names them; otherwise they are the members
the shim boots (versions.KATA_SNP_MEMBERS) of the pinned release tarball (versions.KATA_STATIC,
about 1.9 GB), downloaded once into the image cache, checked against its sha256 and kept with
its extracted members (images.release). Only `pulumi up` and `coco fetch` download: `coco check`,
`coco render` and `pulumi preview` read the cache only (`offline`), and say what would be
fetched (`not_fetched`, images.release.NotFetched) when it is not there. The command line
always comes from the spec: the Go shim assembles it at run time (kernel_params, the dm-verity
parameters kata-deploy writes, the agent's own), so it is read off a host rather than predicted.

Non-goals: the guest policy, TCB and platform values (separate reference values); TDX
(MRTD/RTMRs are not computed here); IBM SE (the SE image header built by pvimg is the
measurement: components.kbs.se_verifier, docs/secure-execution.md).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spec import versions
from spec.errors import CocoError
from spec.model import KataGuest

if TYPE_CHECKING:
    from images.release import NotFetched

REFERENCE_VALUE = "snp_launch_measurement"
VMM = "QEMU"  # kata runs SNP guests with QEMU


@dataclass(frozen=True)
class Artifact:
    path: str  # as written in the spec
    sha256: str


@dataclass(frozen=True)
class KataMeasurement:
    """Every input of the computation, and one launch measurement per vCPU count."""

    firmware: Artifact
    kernel: Artifact
    initrd: Artifact | None
    cmdline: str
    cpu_model: str
    guest_features: str
    measurements: tuple[tuple[int, str], ...]  # (vcpus, hex digest), sorted by vcpus
    release: dict[str, str] | None = None  # url and sha256 of the release tarball, when used

    def reference_values(self) -> dict[str, list[str | int | bool]]:
        return {REFERENCE_VALUE: sorted({digest for _, digest in self.measurements})}

    def record(self) -> dict[str, Any]:
        """JSON-ready, for outputs and reports."""
        return {
            "mode": "snp",
            "vmm_type": VMM,
            "firmware": vars(self.firmware),
            "kernel": vars(self.kernel),
            "initrd": vars(self.initrd) if self.initrd else None,
            "release": self.release,
            "cmdline": self.cmdline,
            "vcpu_type": self.cpu_model,
            "guest_features": self.guest_features,
            "launch_digests": [
                {"vcpus": vcpus, REFERENCE_VALUE: digest} for vcpus, digest in self.measurements
            ],
        }


def _path(base: Path, value: str) -> Path:
    return Path(value) if Path(value).is_absolute() else base / value


def problems(
    guest: KataGuest, base: Path, *, offline: bool = True
) -> list[tuple[str, str, str]]:
    """(key, message, hint) for every input that cannot be measured; [] when all can. Offline
    (the default: `coco check`), release members not in the cache are not a problem: they are
    fetched by `pulumi up` (see `not_fetched`)."""
    return inspect(guest, base, offline=offline)[0]


def not_fetched(guest: KataGuest) -> NotFetched | None:
    """What `pulumi up` (or `coco fetch`) would download for this guest, when the cache does not
    hold it yet; None when nothing is needed or it is cached. Never touches the network."""
    from images import release

    try:
        release_files(guest, offline=True)
    except release.NotFetched as exc:
        return exc
    except CocoError:
        return None  # a damaged cache entry: `problems` reports it
    return None


def inspect(
    guest: KataGuest, base: Path, *, offline: bool = True
) -> tuple[list[tuple[str, str, str]], NotFetched | None]:
    """`problems`, and the release download still pending when offline."""
    from sevsnpmeasure import vcpu_types
    from sevsnpmeasure.ovmf import OVMF, SectionType

    from images.release import NotFetched as _NotFetched

    found = []
    pending: NotFetched | None = None
    released: dict[str, Path] = {}
    try:
        released = release_files(guest, offline=offline)
    except _NotFetched as exc:
        pending = exc  # not a mistake: measured once `pulumi up` has it
    except CocoError as exc:
        # the key of what the download serves: the mirror, else the first file left out
        key = "mirror" if guest.mirror else ("firmware" if guest.firmware is None else "kernel")
        found.append((key, str(exc), exc.hint))
    for key in ("firmware", "kernel", "initrd"):
        value = getattr(guest, key)
        if value is not None and not _path(base, value).is_file():
            found.append(
                (
                    key,
                    f"file {value!r} does not exist",
                    "copy it from a host running the pinned kata-deploy (paths are relative to "
                    "the project directory), or leave out firmware and kernel to take them from "
                    "the pinned kata release",
                )
            )
    if guest.cpu_model not in vcpu_types.CPU_SIGS:
        found.append(
            (
                "cpuModel",
                f"{guest.cpu_model!r} is not a CPU model sev-snp-measure knows",
                f"use one of: {', '.join(sorted(vcpu_types.CPU_SIGS))}",
            )
        )
    firmware = released.get("firmware") or _path(base, guest.firmware or "")
    if firmware.is_file():
        try:
            ovmf = OVMF(str(firmware))
            hashes = ovmf.has_metadata_section(SectionType.SNP_KERNEL_HASHES)
        except (RuntimeError, ValueError):
            hashes = False
        if not hashes:
            found.append(
                (
                    "firmware",
                    f"{_label(guest, 'firmware')!r} has no SEV kernel hashes table, so the kernel, "
                    "initrd and command line cannot be part of the launch measurement",
                    "use the AmdSev firmware kata ships (share/ovmf/AMDSEV.fd), not a generic "
                    "OVMF",
                )
            )
    return found, pending


def _label(guest: KataGuest, key: str) -> str:
    value: str | None = getattr(guest, key)
    if value is not None:
        return value
    return f"{versions.KATA_STATIC.filename}:{versions.KATA_SNP_MEMBERS[key]}"


def release_files(guest: KataGuest, *, offline: bool = False) -> dict[str, Path]:
    """The firmware and kernel the spec leaves out, from the pinned kata release (fetched and
    checked on first use, then read from the cache). Raises images.errors.ImageError; with
    `offline`, images.release.NotFetched when the cache does not hold the release."""
    keys = [key for key in ("firmware", "kernel") if getattr(guest, key) is None]
    if not keys:
        return {}
    from images import release

    names = [versions.KATA_SNP_MEMBERS[key] for key in keys]
    files = release.members(
        versions.KATA_STATIC, names, guest.mirror, progress=_Report(), offline=offline
    )
    return {key: files[versions.KATA_SNP_MEMBERS[key]] for key in keys}


class _Report:
    """Progress of the release download on stderr, every 10 percent (Pulumi shows a program's
    stderr as it runs)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def __call__(self, what: str, done: int, total: int | None) -> None:
        if not total:
            return
        step = done * 10 // total
        if step > self.last.get(what, 0):
            self.last[what] = step
            print(f"coco: {what}: {step * 10}% of {total >> 20} MiB", file=sys.stderr, flush=True)


def _artifact(label: str, path: Path) -> Artifact:
    return Artifact(label, hashlib.sha256(path.read_bytes()).hexdigest())


def measure(guest: KataGuest, base: Path, *, offline: bool = False) -> KataMeasurement:
    """The launch measurement for each vCPU count. Raises ValueError when `problems` has any;
    with `offline`, images.release.NotFetched when the release is not in the cache (nothing is
    downloaded)."""
    from sevsnpmeasure import guest as snp
    from sevsnpmeasure import vcpu_types, vmm_types
    from sevsnpmeasure.sev_mode import SevMode

    found, pending = inspect(guest, base, offline=offline)
    if found:
        raise ValueError("; ".join(f"{key}: {message}" for key, message, _ in found))
    if pending is not None:
        raise pending
    released = release_files(guest, offline=offline)
    firmware = released.get("firmware") or _path(base, guest.firmware or "")
    kernel = released.get("kernel") or _path(base, guest.kernel or "")
    initrd = _path(base, guest.initrd) if guest.initrd else None
    digests = tuple(
        (
            vcpus,
            snp.calc_launch_digest(
                SevMode.SEV_SNP,
                vcpus,
                vcpu_types.CPU_SIGS[guest.cpu_model],
                str(firmware),
                str(kernel),
                str(initrd) if initrd else None,
                guest.cmdline,
                int(guest.guest_features, 16),
                vmm_type=vmm_types.VMMType.QEMU,
            ).hex(),
        )
        for vcpus in sorted(set(guest.vcpus))
    )
    return KataMeasurement(
        firmware=_artifact(_label(guest, "firmware"), firmware),
        kernel=_artifact(_label(guest, "kernel"), kernel),
        initrd=_artifact(guest.initrd, initrd) if guest.initrd and initrd else None,
        release=(
            {"url": guest.mirror or versions.KATA_STATIC.url, "sha256": versions.KATA_STATIC.sha256}
            if released
            else None
        ),
        cmdline=guest.cmdline,
        cpu_model=guest.cpu_model,
        guest_features=guest.guest_features,
        measurements=digests,
    )
