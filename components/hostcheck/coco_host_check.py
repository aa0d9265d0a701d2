#!/usr/bin/env python3
"""coco-host-check: is this host ready to run Confidential Containers for one TEE?

Shipped by coco-stack to every bare-metal host of a pool (copied over SSH, run with `python3 -I`)
and run before the host is labelled. It prints one JSON object on stdout, keys sorted:

    {"checks": [{"fix": "", "name": "kernel-version", "ok": true, "reason": "..."}, ...],
     "host": "node-1", "ready": false, "tee": "snp"}

and exits 0 when the host is ready, 1 when it is not, 2 on bad usage. Every failing check says
why (`reason`) and what to do (`fix`); when the host is not ready the same is written for a person
on stderr, naming the host (`--address ADDR`: how the caller reached it, shown before the host
name). The Pulumi wiring relies on both: exit 1 fails the check command, so nothing is recorded
for the host, and the provider's error shows the explanation. It only reads files (and `dmesg`
on a real host); it never changes the host.

Why a single-file, stdlib-only Python script and not POSIX sh: the verdict is JSON that carries
free text (kernel log lines, file contents), and escaping that correctly in sh is fragile; here
`json.dumps` does it. The same file is type-checked (mypy --strict) and linted with the project
and imported by the unit tests. python3 is on every distribution the upstream host guides use
(Ubuntu for Canonical's TDX, the SNP host kernels of AMD's guides, RHEL/SLES/Ubuntu on IBM Z).
It runs on python3 >= 3.8 (no match statements, no 3.9+ str/dict methods).

`--root DIR` reads every path under DIR instead of `/` (the tests point it at fake sysfs/proc
trees). The kernel log comes from `--dmesg FILE`, else `DIR/var/log/dmesg` when `--root` is not
`/`, else the `dmesg` command (needs root or kernel.dmesg_restrict=0), else /var/log/dmesg.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

DESCRIPTION = "Is this host ready to run Confidential Containers for one TEE?"
TEES = ("snp", "tdx", "se", "none")

# Minimum host kernels.
# SNP: kata's "Kata Containers with AMD SEV-SNP VMs" guide
# (kata-containers docs/how-to/how-to-run-kata-containers-with-SNP-VMs.md): ">= 6.11", the first
# upstream kernel with KVM SEV-SNP host support.
# TDX: KVM TDX host support is upstream from 6.16; distribution kernels (Canonical canonical/tdx)
# backport it, so an older kernel passes when kvm_intel has the tdx parameter.
# SE: KVM protected virtualization (prot_virt) host support is upstream from 5.7.
# none: kata needs vhost_vsock (kata-ctl/kata-check required modules), upstream from 4.8.
MIN_KERNEL = {"snp": (6, 11), "tdx": (6, 16), "se": (5, 7), "none": (4, 8)}
KERNEL_FEATURE = {
    "snp": "KVM SEV-SNP host support",
    "tdx": "KVM TDX host support",
    "se": "KVM Secure Execution (prot_virt) host support",
    "none": "vhost-vsock, which kata needs",
}

TRUE_VALUES = ("y", "1")  # kata reads the kvm parameters "expecting Y or 1" (clouds-tee.md)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str
    fix: str = ""


class Host:
    """Read access to one host's files, rooted at `root`, and its kernel log."""

    def __init__(self, root: str, dmesg: str | None) -> None:
        self.root = root
        self._dmesg_path = dmesg
        self._log: str | None = None
        self._log_read = False

    def path(self, absolute: str) -> str:
        return os.path.join(self.root, absolute.lstrip("/"))

    def exists(self, absolute: str) -> bool:
        return os.path.exists(self.path(absolute))

    def read(self, absolute: str) -> str | None:
        try:
            with open(self.path(absolute), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    def value(self, absolute: str) -> str | None:
        text = self.read(absolute)
        return None if text is None else text.strip()

    def listdir(self, absolute: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(absolute)))
        except OSError:
            return []

    def kernel_log(self) -> str | None:
        """The kernel log, or None when it cannot be read."""
        if not self._log_read:
            self._log_read = True
            self._log = self._read_log()
        return self._log

    def _read_log(self) -> str | None:
        if self._dmesg_path is not None:
            try:
                with open(self._dmesg_path, encoding="utf-8", errors="replace") as handle:
                    return handle.read()
            except OSError:
                return None
        if os.path.realpath(self.root) != "/":
            return self.read("/var/log/dmesg")
        try:
            result = subprocess.run(
                ["dmesg"], capture_output=True, text=True, errors="replace", timeout=30,
                check=False,
            )
            if result.returncode == 0:
                return result.stdout
        except (OSError, subprocess.SubprocessError):
            pass
        return self.read("/var/log/dmesg")

    def cpu_flags(self) -> list[str]:
        """Flags of the first CPU in /proc/cpuinfo (x86 `flags`, s390x `features`)."""
        for line in (self.read("/proc/cpuinfo") or "").splitlines():
            key, _, rest = line.partition(":")
            if key.strip() in ("flags", "features"):
                return rest.split()
        return []

    def cpu_vendor(self) -> str:
        for line in (self.read("/proc/cpuinfo") or "").splitlines():
            key, _, rest = line.partition(":")
            if key.strip() == "vendor_id":
                return rest.strip()
        return "unknown"

    def arch(self) -> str:
        # /proc/sys/kernel/arch is the kernel's own `uname -m`; read through --root so tests can
        # fake it; fall back to uname on a real root with an older kernel.
        found = self.value("/proc/sys/kernel/arch")
        if found:
            return found
        return platform.machine() if os.path.realpath(self.root) == "/" else "unknown"

    def hostname(self) -> str:
        return self.value("/proc/sys/kernel/hostname") or platform.node() or "unknown"

    def osrelease(self) -> str | None:
        return self.value("/proc/sys/kernel/osrelease")


def parse_version(release: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else None


def is_true(value: str | None) -> bool:
    return value is not None and value.lower() in TRUE_VALUES


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


# ---- checks every TEE shares --------------------------------------------------------------


def kernel_version(host: Host, tee: str, backported: bool = False) -> Check:
    release = host.osrelease()
    want = MIN_KERNEL[tee]
    got = parse_version(release or "")
    if got is None:
        return Check(
            "kernel-version", False,
            "cannot read the kernel version from /proc/sys/kernel/osrelease",
            "run the check on the host itself, with /proc mounted",
        )
    if got >= want:
        return Check("kernel-version", True, f"kernel {release} >= {fmt(want)}")
    if backported:
        return Check(
            "kernel-version", True,
            f"kernel {release} < {fmt(want)}, but it has the TEE support backported",
        )
    return Check(
        "kernel-version", False,
        f"kernel {release} is older than {fmt(want)}, the first with {KERNEL_FEATURE[tee]}",
        f"boot a host kernel >= {fmt(want)} (for {tee} see docs/bare-metal.md)",
    )


def _device(host: Host, name: str, path: str, missing: str, fix: str) -> Check:
    """A device node the TEE runtime opens: present, or why it is not and how to get it."""
    if host.exists(path):
        return Check(name, True, f"{path} exists")
    return Check(name, False, f"{path} does not exist: {missing}", fix)


def kvm_device(host: Host) -> Check:
    # kata-ctl (src/tools/kata-ctl/src/arch/*/mod.rs) requires /dev/kvm on every arch.
    return _device(
        host, "kvm-device", "/dev/kvm", "KVM is not available",
        "load the KVM module for this CPU (kvm_amd, kvm_intel or kvm on s390x) and fix the "
        "other failing checks",
    )


def vhost_vsock(host: Host) -> Check:
    # kata-runtime check lists vhost_vsock among the required host modules: the agent talks to
    # the shim over vsock.
    return _device(
        host, "vhost-vsock", "/dev/vhost-vsock", "the vhost_vsock module is missing",
        "modprobe vhost_vsock (and add vhost_vsock to /etc/modules-load.d/)",
    )


def wrong_vendor(name: str, vendor: str, needs: str) -> Check:
    return Check(
        name, False, f"CPU vendor {vendor}: {needs}",
        "put this host in a pool whose tee matches its CPU (snp: AMD, tdx: Intel, none: any)",
    )


def kvm_module(host: Host, modules: Sequence[str], prerequisite: Check | None = None) -> Check:
    for module in modules:
        if host.exists("/sys/module/" + module):
            return Check("kvm-module", True, f"module {module} is loaded")
    # modules[0] is the one this CPU needs; the others are accepted (tee none only).
    if prerequisite is not None and not prerequisite.ok:
        return Check(
            "kvm-module", False,
            f"{modules[0]} is not loaded because of {prerequisite.name}",
            f"fix {prerequisite.name} first, then modprobe {modules[0]}",
        )
    return Check(
        "kvm-module", False, f"{modules[0]} is not loaded (no /sys/module/{modules[0]})",
        f"modprobe {modules[0]} and add it to /etc/modules-load.d/",
    )


# ---- AMD SEV-SNP ---------------------------------------------------------------------------

SNP_PARAM = "/sys/module/kvm_amd/parameters/sev_snp"
SEV_PARAM = "/sys/module/kvm_amd/parameters/sev"
# Linux arch/x86/virt/svm/sev.c (pr_fmt "SEV-SNP: "), snp_probe_rmptable_info(): printed when
# the BIOS did not reserve the RMP table, i.e. SNP is off in the BIOS.
SNP_BIOS_OFF_LOG = "SEV-SNP: Memory for the RMP table has not been reserved by BIOS"
SNP_BIOS_FIX = (
    "enable in the BIOS: SMEE (secure memory encryption), IOMMU, SEV-SNP and SNP memory "
    "coverage (RMP table), then reboot; `snphost ok` lists what is missing"
)


def snp_bios(host: Host) -> Check:
    # Linux arch/x86/kernel/cpu/amd.c clears X86_FEATURE_SEV_SNP ("sev_snp" in /proc/cpuinfo)
    # when the BIOS has not enabled memory encryption or reserved the RMP table.
    vendor = host.cpu_vendor()
    if vendor not in ("AuthenticAMD", "unknown"):
        return wrong_vendor("snp-bios", vendor, "AMD SEV-SNP needs AMD EPYC Milan or later")
    log = host.kernel_log() or ""
    if "sev_snp" in host.cpu_flags() and SNP_BIOS_OFF_LOG not in log:
        return Check("snp-bios", True, "CPU flag sev_snp present: SEV-SNP enabled in the BIOS")
    if SNP_BIOS_OFF_LOG in log:
        reason = f"kernel log: {SNP_BIOS_OFF_LOG!r}: SEV-SNP is off in the BIOS"
    else:
        reason = (
            "CPU flag sev_snp missing from /proc/cpuinfo: SEV-SNP is off in the BIOS "
            "(or the CPU is older than EPYC Milan)"
        )
    return Check("snp-bios", False, reason, SNP_BIOS_FIX)


def kvm_amd_parameter(host: Host, name: str, path: str, option: str, bios: Check) -> Check:
    # kata (runtime hypervisor_linux_amd64 / runtime-rs cpu.rs) reads these files expecting
    # Y or 1; KVM sets them to N when the platform cannot run such guests.
    value = host.value(path)
    if is_true(value):
        return Check(name, True, f"{path} = {value}")
    if value is None:
        if not host.exists("/sys/module/kvm_amd"):
            return Check(
                name, False, f"{path} missing: kvm_amd is not loaded", "fix kvm-module first"
            )
        return Check(
            name, False, f"{path} missing: this kernel's kvm_amd has no {option} parameter",
            "boot a kernel with SEV-SNP host support (see kernel-version)",
        )
    if not bios.ok:
        return Check(
            name, False, f"{path} = {value} because SEV-SNP is off in the BIOS (see {bios.name})",
            f"fix {bios.name} first; KVM turns {option} on by default once the BIOS enables it",
        )
    return Check(
        name, False, f"{path} = {value}: the kvm_amd module parameter is off",
        f"boot with kvm_amd.{option}=1 (or `options kvm_amd {option}=1` in "
        "/etc/modprobe.d/kvm.conf and reload kvm_amd)",
    )


# Linux drivers/crypto/ccp/sev-dev.c, __sev_snp_init_locked(): once SNP_INIT succeeded the ccp
# driver logs dev_info "SEV-SNP API:<major>.<minor> build:<n>" (e.g. "ccp 0000:01:00.5: SEV-SNP
# API:1.55 build:21"); the line was added in 2024, so older SNP host kernels may not print it.
SNP_INIT_LOG = "SEV-SNP API:"


def snp_firmware(host: Host) -> Check:
    # Informational, never failing. The ccp driver (sev-dev.c, sev_get_firmware) loads
    # amd/amd_sev_fam<family>h_model<model>xh.sbin, else amd/sev.fw, to update the PSP's SEV
    # firmware at boot, and treats a missing file as non-fatal: the firmware the BIOS ships is
    # used then (kata's SNP guide: the firmware "can also be updated via a platform OEM BIOS
    # update"). Whether SNP really initialised shows in the kernel log, and snp-parameter and
    # sev-device fail on a host where it did not.
    log = host.kernel_log() or ""
    found = [
        name for name in host.listdir("/lib/firmware/amd")
        if fnmatch.fnmatch(name, "amd_sev_fam*.sbin*") or fnmatch.fnmatch(name, "sev.fw*")
    ]
    files = (
        "SEV firmware in /lib/firmware/amd: " + ", ".join(found) if found
        else "no SEV firmware file in /lib/firmware/amd (the BIOS's firmware is used)"
    )
    for line in log.splitlines():
        if SNP_INIT_LOG in line:
            api = line[line.index(SNP_INIT_LOG):].strip()
            return Check("snp-firmware", True, f"kernel log: {api!r}: SNP initialised; {files}")
    return Check(
        "snp-firmware", True,
        f"{files}; no {SNP_INIT_LOG!r} line in the kernel log (older kernels do not print it; "
        "SNP needs SEV firmware API >= 1.51, Linux drivers/crypto/ccp/sev-dev.c)",
    )


def sev_device(host: Host) -> Check:
    # /dev/sev is the ccp driver's PSP device; QEMU opens it to launch SEV/SNP guests.
    return _device(
        host, "sev-device", "/dev/sev", "the AMD PSP (ccp) driver is not ready",
        "modprobe ccp; check `dmesg | grep -i -e ccp -e sev` for firmware errors",
    )


def check_snp(host: Host) -> list[Check]:
    bios = snp_bios(host)
    return [
        kernel_version(host, "snp"),
        kvm_module(host, ["kvm_amd"]),
        bios,
        kvm_amd_parameter(host, "sev-parameter", SEV_PARAM, "sev", bios),
        kvm_amd_parameter(host, "snp-parameter", SNP_PARAM, "sev_snp", bios),
        snp_firmware(host),
        kvm_device(host),
        sev_device(host),
        vhost_vsock(host),
    ]


# ---- Intel TDX -----------------------------------------------------------------------------

TDX_PARAM = "/sys/module/kvm_intel/parameters/tdx"
# Linux arch/x86/virt/vmx/tdx/tdx.c (pr_fmt "virt/tdx: "): tdx_init() prints "BIOS enabled:
# private KeyID range [...]" only when the BIOS partitioned TDX private KeyIDs, then sets the
# CPU flag tdx_host_platform; init_tdx_module() prints "module initialized" (Canonical
# canonical/tdx README tells users to look for exactly that line).
TDX_BIOS_LOG = "virt/tdx: BIOS enabled: private KeyID range"
TDX_MODULE_LOG = "virt/tdx: module initialized"
UNREADABLE_LOG = "cannot read the kernel log (dmesg)"
UNREADABLE_LOG_FIX = "run the check as root (dmesg needs CAP_SYSLOG) or pass --dmesg FILE"


def tdx_bios(host: Host) -> Check:
    vendor = host.cpu_vendor()
    if vendor not in ("GenuineIntel", "unknown"):
        return wrong_vendor("tdx-bios", vendor, "Intel TDX needs Intel Xeon 5th gen or later")
    log = host.kernel_log()
    if "tdx_host_platform" in host.cpu_flags() or (log is not None and TDX_BIOS_LOG in log):
        return Check("tdx-bios", True, "TDX private KeyIDs reserved by the BIOS")
    if log is None:
        return Check("tdx-bios", False, UNREADABLE_LOG, UNREADABLE_LOG_FIX)
    return Check(
        "tdx-bios", False,
        f"no {TDX_BIOS_LOG!r} in the kernel log and no tdx_host_platform CPU flag: "
        "TDX is off in the BIOS",
        "enable in the BIOS: TME, TME-MT (multi-tenant), TDX, TDX key split (non-zero TDX "
        "KeyIDs) and the SEAM loader, then reboot (Canonical canonical/tdx, 'Enable Intel TDX "
        "in the host BIOS')",
    )


def tdx_parameter(host: Host, bios: Check) -> Check:
    value = host.value(TDX_PARAM)
    if is_true(value):
        return Check("tdx-parameter", True, f"{TDX_PARAM} = {value}")
    if value is None:
        if not host.exists("/sys/module/kvm_intel"):
            return Check(
                "tdx-parameter", False, f"{TDX_PARAM} missing: kvm_intel is not loaded",
                "fix kvm-module first",
            )
        return Check(
            "tdx-parameter", False,
            f"{TDX_PARAM} missing: this kernel's kvm_intel has no TDX support",
            "boot a kernel with KVM TDX host support (see kernel-version)",
        )
    if not bios.ok:
        return Check(
            "tdx-parameter", False,
            f"{TDX_PARAM} = {value} because TDX is off in the BIOS (see tdx-bios)",
            "fix tdx-bios first, then boot with kvm_intel.tdx=1",
        )
    return Check(
        "tdx-parameter", False, f"{TDX_PARAM} = {value}: the kvm_intel module parameter is off",
        "boot with kvm_intel.tdx=1 nohibernate on the kernel command line (or `options kvm_intel "
        "tdx=1` in /etc/modprobe.d/kvm.conf and reload kvm_intel)",
    )


def tdx_module(host: Host, bios: Check, parameter: Check) -> Check:
    # kvm_intel.tdx reads Y only when KVM brought TDX up, which initialises the TDX module:
    # Linux arch/x86/kvm/vmx/tdx.c (v6.16) tdx_bringup() sets enable_tdx = 0 on any failure.
    # It stays true on a long-running host whose kernel log lost the boot lines, so it decides;
    # the log is read only on kernels without the parameter.
    value = host.value(TDX_PARAM)
    if is_true(value):
        return Check(
            "tdx-module", True,
            f"{TDX_PARAM} = {value}: KVM enables TDX only after the TDX module initialised",
        )
    log = host.kernel_log()
    if log is not None and TDX_MODULE_LOG in log:
        return Check("tdx-module", True, f"kernel log: {TDX_MODULE_LOG!r}")
    if log is None:
        return Check("tdx-module", False, UNREADABLE_LOG, UNREADABLE_LOG_FIX)
    for cause in (bios, parameter):
        if not cause.ok:
            return Check(
                "tdx-module", False,
                f"no {TDX_MODULE_LOG!r} in the kernel log because of {cause.name}",
                f"fix {cause.name} first",
            )
    return Check(
        "tdx-module", False,
        f"no {TDX_MODULE_LOG!r} in the kernel log: the TDX module did not initialise",
        "update the BIOS (it loads the TDX module) and read `dmesg | grep virt/tdx` for the "
        "error; if the log wrapped, pass a saved boot log with --dmesg",
    )


def check_tdx(host: Host) -> list[Check]:
    bios = tdx_bios(host)
    parameter = tdx_parameter(host, bios)
    return [
        kernel_version(host, "tdx", backported=host.exists(TDX_PARAM)),
        kvm_module(host, ["kvm_intel"]),
        bios,
        parameter,
        tdx_module(host, bios, parameter),
        kvm_device(host),
        vhost_vsock(host),
    ]


# ---- IBM Secure Execution ------------------------------------------------------------------

PROT_VIRT_HOST = "/sys/firmware/uv/prot_virt_host"


def se_arch(host: Host) -> Check:
    arch = host.arch()
    if arch == "s390x":
        return Check("arch", True, "architecture s390x")
    return Check(
        "arch", False, f"architecture {arch}: IBM Secure Execution needs s390x",
        "put this host in a pool with a TEE of its architecture (snp, tdx or none)",
    )


def se_ultravisor(host: Host) -> Check:
    # Linux arch/s390/kernel/uv.c, uv_sysfs_init(): /sys/firmware/uv exists only when the
    # machine has the Ultravisor (facility 158): IBM z15 / LinuxONE III or later.
    if host.exists("/sys/firmware/uv"):
        return Check("se-ultravisor", True, "/sys/firmware/uv exists: the Ultravisor is present")
    return Check(
        "se-ultravisor", False,
        "/sys/firmware/uv does not exist: no Ultravisor, Secure Execution is not available",
        "run on IBM z15 / LinuxONE III or later with Secure Execution enabled for the LPAR",
    )


def prot_virt_cmdline(host: Host) -> str | None:
    value: str | None = None
    for word in (host.read("/proc/cmdline") or "").split():
        if word.startswith("prot_virt="):
            value = word[len("prot_virt="):]
    return value


def se_cmdline(host: Host) -> Check:
    # clouds-tee.md: kernel parameter prot_virt=1 (parsed with kstrtobool: 1, y, on are true).
    value = prot_virt_cmdline(host)
    if value is not None and value.lower() in ("1", "y", "yes", "on", "t", "true"):
        return Check("se-cmdline", True, f"/proc/cmdline has prot_virt={value}")
    found = f"prot_virt={value}" if value is not None else "no prot_virt="
    return Check(
        "se-cmdline", False, f"/proc/cmdline has {found}: Secure Execution host mode is off",
        "add prot_virt=1 to the kernel command line (zipl.conf parameters, or "
        "`grubby --update-kernel=ALL --args=prot_virt=1`), run zipl and reboot",
    )


def se_host(host: Host, ultravisor: Check, cmdline: Check) -> Check:
    value = host.value(PROT_VIRT_HOST)
    if value == "1":
        return Check("se-host", True, f"{PROT_VIRT_HOST} = 1")
    for cause in (ultravisor, cmdline):
        if not cause.ok:
            return Check(
                "se-host", False,
                f"{PROT_VIRT_HOST} is {'missing' if value is None else value} "
                f"because of {cause.name}",
                f"fix {cause.name} first",
            )
    if value is None:
        return Check(
            "se-host", False,
            f"{PROT_VIRT_HOST} missing: this kernel does not report Secure Execution host support",
            "boot a newer kernel (see kernel-version)",
        )
    return Check(
        "se-host", False,
        f"{PROT_VIRT_HOST} = {value} although prot_virt=1: the kernel could not enable host mode",
        "read `dmesg | grep -i -e prot_virt -e uv` (e.g. not enough memory for the Ultravisor)",
    )


def check_se(host: Host) -> list[Check]:
    ultravisor = se_ultravisor(host)
    cmdline = se_cmdline(host)
    return [
        se_arch(host),
        kernel_version(host, "se"),
        ultravisor,
        cmdline,
        se_host(host, ultravisor, cmdline),
        kvm_device(host),
        vhost_vsock(host),
    ]


# ---- tee none (kata-qemu-coco-dev) ---------------------------------------------------------


def virtualization(host: Host) -> Check:
    # kata-ctl (src/tools/kata-ctl/src/arch/x86_64/mod.rs) requires the vmx (Intel) or svm (AMD)
    # CPU flag; Linux clears it when the BIOS disabled VT-x / AMD-V (arch/x86/kernel/cpu/feat_ctl.c
    # "VMX (outside TXT) disabled by BIOS").
    arch = host.arch()
    if arch not in ("x86_64", "i686"):
        return Check("virtualization", True, f"architecture {arch}: no CPU flag to check")
    flags = host.cpu_flags()
    for flag in ("vmx", "svm"):
        if flag in flags:
            return Check("virtualization", True, f"CPU flag {flag} present")
    return Check(
        "virtualization", False,
        "neither vmx nor svm in /proc/cpuinfo: hardware virtualization is off in the BIOS",
        "enable Intel VT-x or AMD-V (SVM mode) in the BIOS, then reboot",
    )


def check_none(host: Host) -> list[Check]:
    virt = virtualization(host)
    if host.arch() not in ("x86_64", "i686"):
        modules = ["kvm"]
    elif host.cpu_vendor() == "AuthenticAMD":
        modules = ["kvm_amd", "kvm_intel"]
    else:
        modules = ["kvm_intel", "kvm_amd"]
    return [
        kernel_version(host, "none"),
        virt,
        kvm_module(host, modules, virt),
        kvm_device(host),
        vhost_vsock(host),
    ]


CHECKS: dict[str, Callable[[Host], list[Check]]] = {
    "snp": check_snp,
    "tdx": check_tdx,
    "se": check_se,
    "none": check_none,
}


def verdict(hostname: str, tee: str, checks: Sequence[Check]) -> dict[str, object]:
    return {
        "host": hostname,
        "tee": tee,
        "ready": all(check.ok for check in checks),
        "checks": [asdict(check) for check in checks],
    }


def explain(
    address: str | None, host: str, tee: str, failures: Sequence[tuple[str, str, str]]
) -> str:
    """The not-ready message for a person: the host, the TEE, each failure (name, reason, fix).
    The wiring (components.hostcheck) uses the same text."""
    name = f"{address} ({host})" if address else host
    lines = [f"host {name} is not ready for tee {tee}"]
    for check, reason, fix in failures:
        lines.append(f"  {check}: {reason}")
        lines.append(f"    fix: {fix}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coco-host-check", description=DESCRIPTION)
    parser.add_argument("--tee", required=True, choices=TEES, help="the TEE the pool uses")
    parser.add_argument("--root", default="/", help="read the host's files under DIR (tests)")
    parser.add_argument("--dmesg", default=None, help="read the kernel log from FILE")
    parser.add_argument(
        "--address", default=None, help="how the caller reached this host (shown on stderr)"
    )
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        parser.error(f"--root {args.root} is not a directory")
    host = Host(args.root, args.dmesg)
    checks = CHECKS[args.tee](host)
    result = verdict(host.hostname(), args.tee, checks)
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    if result["ready"]:
        return 0
    failures = [(c.name, c.reason, c.fix) for c in checks if not c.ok]
    sys.stderr.write(explain(args.address, str(result["host"]), args.tee, failures) + "\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
