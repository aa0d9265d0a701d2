"""Fake host trees for the host check: what a ready host of each TEE shows under /proc, /sys,
/dev, /lib/firmware and in its kernel log, and the four ways it goes wrong.

Provenance of the contents: the paths and values are the ones the program's comments cite
(kata's kvm parameter reads, Linux's kernel log lines and sysfs attributes, Canonical's TDX
and IBM's SE host guides); they are hand-written, not captured from a real host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from components.hostcheck import SCRIPT

Tree = dict[str, str | None]  # path under the root -> contents; None: absent; "/" suffix: dir

CASES = ("ready", "bios-off", "parameter-off", "kernel-too-old")

AMD_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep svm sme sev sev_es"
INTEL_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep vmx"


def cpuinfo(vendor: str, flags: str) -> str:
    return f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {flags}\n\nprocessor\t: 1\n"


def common(hostname: str, release: str, arch: str) -> Tree:
    return {
        "proc/sys/kernel/hostname": hostname + "\n",
        "proc/sys/kernel/osrelease": release + "\n",
        "proc/sys/kernel/arch": arch + "\n",
        "dev/kvm": "",
        "dev/vhost-vsock": "",
    }


def snp(case: str) -> Tree:
    tree = common("node-snp", "6.11.0-26-generic", "x86_64") | {
        "proc/cpuinfo": cpuinfo("AuthenticAMD", AMD_FLAGS + " sev_snp"),
        "sys/module/kvm_amd/parameters/sev": "Y\n",
        "sys/module/kvm_amd/parameters/sev_snp": "Y\n",
        "lib/firmware/amd/amd_sev_fam19h_model1xh.sbin": "",
        "dev/sev": "",
        "var/log/dmesg": "ccp 0000:01:00.5: SEV-SNP API:1.55 build:21\n",
    }
    if case == "bios-off":
        tree |= {
            "proc/cpuinfo": cpuinfo("AuthenticAMD", AMD_FLAGS),
            "sys/module/kvm_amd/parameters/sev_snp": "N\n",
            "var/log/dmesg": "SEV-SNP: Memory for the RMP table has not been reserved by BIOS\n",
        }
    elif case == "parameter-off":
        tree["sys/module/kvm_amd/parameters/sev_snp"] = "N\n"
    elif case == "kernel-too-old":
        tree["proc/sys/kernel/osrelease"] = "6.8.0-45-generic\n"
        tree["sys/module/kvm_amd/parameters/sev_snp"] = None
    return tree


TDX_BIOS = "virt/tdx: BIOS enabled: private KeyID range [32, 64)\n"
TDX_MODULE = (
    "virt/tdx: TDX module: attributes 0x0, vendor_id 0x8086\n"
    "virt/tdx: module initialized\n"
)


def tdx(case: str) -> Tree:
    tree = common("node-tdx", "6.16.0-061600-generic", "x86_64") | {
        "proc/cpuinfo": cpuinfo("GenuineIntel", INTEL_FLAGS),
        "sys/module/kvm_intel/parameters/tdx": "Y\n",
        "var/log/dmesg": TDX_BIOS + TDX_MODULE,
    }
    if case == "bios-off":
        tree |= {"sys/module/kvm_intel/parameters/tdx": "N\n", "var/log/dmesg": ""}
    elif case == "parameter-off":
        tree |= {"sys/module/kvm_intel/parameters/tdx": "N\n", "var/log/dmesg": TDX_BIOS}
    elif case == "kernel-too-old":
        tree |= {
            "proc/sys/kernel/osrelease": "6.2.0-39-generic\n",
            "sys/module/kvm_intel/parameters/tdx": None,
            "sys/module/kvm_intel/": "",
            "var/log/dmesg": TDX_BIOS,
        }
    return tree


def se(case: str) -> Tree:
    tree = common("node-se", "6.8.0-31-generic", "s390x") | {
        "proc/cpuinfo": "vendor_id       : IBM/S390\nfeatures\t: esan3 zarch stfle msa sie\n",
        "proc/cmdline": "root=/dev/disk/by-path/ccw-0.0.0100-part1 prot_virt=1 crashkernel=196M\n",
        "sys/firmware/uv/prot_virt_host": "1\n",
        "sys/firmware/uv/prot_virt_guest": "0\n",
    }
    if case == "bios-off":
        tree |= {"sys/firmware/uv/prot_virt_host": None, "sys/firmware/uv/prot_virt_guest": None}
    elif case == "parameter-off":
        tree |= {
            "proc/cmdline": "root=/dev/disk/by-path/ccw-0.0.0100-part1 crashkernel=196M\n",
            "sys/firmware/uv/prot_virt_host": "0\n",
        }
    elif case == "kernel-too-old":
        tree |= {"proc/sys/kernel/osrelease": "5.4.0-42-generic\n",
                 "sys/firmware/uv/prot_virt_host": None}
    return tree


def none(case: str) -> Tree:
    tree = common("node-dev", "6.1.0-28-amd64", "x86_64") | {
        "proc/cpuinfo": cpuinfo("GenuineIntel", INTEL_FLAGS),
        "sys/module/kvm_intel/parameters/nested": "Y\n",
    }
    if case == "bios-off":
        tree |= {
            "proc/cpuinfo": cpuinfo("GenuineIntel", INTEL_FLAGS.replace(" vmx", "")),
            "sys/module/kvm_intel/parameters/nested": None,
            "dev/kvm": None,
        }
    elif case == "parameter-off":
        tree |= {"sys/module/kvm_intel/parameters/nested": None, "dev/kvm": None}
    elif case == "kernel-too-old":
        tree |= {"proc/sys/kernel/osrelease": "4.4.0-210-generic\n", "dev/vhost-vsock": None}
    return tree


BUILDERS = {"snp": snp, "tdx": tdx, "se": se, "none": none}


def write(root: Path, tree: Tree) -> Path:
    for relative, contents in sorted(tree.items()):
        if contents is None:
            continue
        path = root / relative
        if relative.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(contents)
    return root


def build(root: Path, tee: str, case: str) -> Path:
    return write(root, BUILDERS[tee](case))


def run(root: Path, tee: str, *extra: str) -> tuple[int, str, dict[str, Any]]:
    """Run the shipped script as the host would (isolated python3); (exit code, stdout, JSON).
    A ready host writes nothing on stderr; one that is not writes its explanation there."""
    result = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--root", str(root), "--tee", tee, *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )
    verdict = json.loads(result.stdout)
    if verdict["ready"]:
        assert result.stderr == "", result.stderr
    else:
        assert result.stderr.startswith(f"host {verdict['host']} is not ready for tee {tee}\n")
    return result.returncode, result.stdout, verdict
