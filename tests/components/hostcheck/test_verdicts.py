"""The host check against fake sysfs/proc/dmesg trees: every TEE, ready and the three ways a
host is not (feature off in the BIOS, module parameter off, kernel too old), exact verdicts."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from components import hostcheck
from components.hostcheck import SCRIPT
from tests.components.hostcheck import trees

NAMES = {
    "snp": ["kernel-version", "kvm-module", "snp-bios", "sev-parameter", "snp-parameter",
            "snp-firmware", "kvm-device", "sev-device", "vhost-vsock"],
    "tdx": ["kernel-version", "kvm-module", "tdx-bios", "tdx-parameter", "tdx-module",
            "kvm-device", "vhost-vsock"],
    "se": ["arch", "kernel-version", "se-ultravisor", "se-cmdline", "se-host", "kvm-device",
           "vhost-vsock"],
    "none": ["kernel-version", "virtualization", "kvm-module", "kvm-device", "vhost-vsock"],
}

SNP_PARAM = "/sys/module/kvm_amd/parameters/sev_snp"
TDX_PARAM = "/sys/module/kvm_intel/parameters/tdx"
PVH = "/sys/firmware/uv/prot_virt_host"

# (tee, case) -> {failing check: (reason, fix)}. For tee none there is no module parameter:
# its "parameter-off" case is the KVM module not loaded.
FAILURES: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("snp", "bios-off"): {
        "snp-bios": (
            "kernel log: 'SEV-SNP: Memory for the RMP table has not been reserved by BIOS': "
            "SEV-SNP is off in the BIOS",
            "enable in the BIOS: SMEE (secure memory encryption), IOMMU, SEV-SNP and SNP memory "
            "coverage (RMP table), then reboot; `snphost ok` lists what is missing",
        ),
        "snp-parameter": (
            f"{SNP_PARAM} = N because SEV-SNP is off in the BIOS (see snp-bios)",
            "fix snp-bios first; KVM turns sev_snp on by default once the BIOS enables it",
        ),
    },
    ("snp", "parameter-off"): {
        "snp-parameter": (
            f"{SNP_PARAM} = N: the kvm_amd module parameter is off",
            "boot with kvm_amd.sev_snp=1 (or `options kvm_amd sev_snp=1` in "
            "/etc/modprobe.d/kvm.conf and reload kvm_amd)",
        ),
    },
    ("snp", "kernel-too-old"): {
        "kernel-version": (
            "kernel 6.8.0-45-generic is older than 6.11, the first with KVM SEV-SNP host support",
            "boot a host kernel >= 6.11 (for snp see docs/bare-metal.md)",
        ),
        "snp-parameter": (
            f"{SNP_PARAM} missing: this kernel's kvm_amd has no sev_snp parameter",
            "boot a kernel with SEV-SNP host support (see kernel-version)",
        ),
    },
    ("tdx", "bios-off"): {
        "tdx-bios": (
            "no 'virt/tdx: BIOS enabled: private KeyID range' in the kernel log and no "
            "tdx_host_platform CPU flag: TDX is off in the BIOS",
            "enable in the BIOS: TME, TME-MT (multi-tenant), TDX, TDX key split (non-zero TDX "
            "KeyIDs) and the SEAM loader, then reboot (Canonical canonical/tdx, 'Enable Intel "
            "TDX in the host BIOS')",
        ),
        "tdx-parameter": (
            f"{TDX_PARAM} = N because TDX is off in the BIOS (see tdx-bios)",
            "fix tdx-bios first, then boot with kvm_intel.tdx=1",
        ),
        "tdx-module": (
            "no 'virt/tdx: module initialized' in the kernel log because of tdx-bios",
            "fix tdx-bios first",
        ),
    },
    ("tdx", "parameter-off"): {
        "tdx-parameter": (
            f"{TDX_PARAM} = N: the kvm_intel module parameter is off",
            "boot with kvm_intel.tdx=1 nohibernate on the kernel command line (or `options "
            "kvm_intel tdx=1` in /etc/modprobe.d/kvm.conf and reload kvm_intel)",
        ),
        "tdx-module": (
            "no 'virt/tdx: module initialized' in the kernel log because of tdx-parameter",
            "fix tdx-parameter first",
        ),
    },
    ("tdx", "kernel-too-old"): {
        "kernel-version": (
            "kernel 6.2.0-39-generic is older than 6.16, the first with KVM TDX host support",
            "boot a host kernel >= 6.16 (for tdx see docs/bare-metal.md)",
        ),
        "tdx-parameter": (
            f"{TDX_PARAM} missing: this kernel's kvm_intel has no TDX support",
            "boot a kernel with KVM TDX host support (see kernel-version)",
        ),
        "tdx-module": (
            "no 'virt/tdx: module initialized' in the kernel log because of tdx-parameter",
            "fix tdx-parameter first",
        ),
    },
    ("se", "bios-off"): {
        "se-ultravisor": (
            "/sys/firmware/uv does not exist: no Ultravisor, Secure Execution is not available",
            "run on IBM z15 / LinuxONE III or later with Secure Execution enabled for the LPAR",
        ),
        "se-host": (f"{PVH} is missing because of se-ultravisor", "fix se-ultravisor first"),
    },
    ("se", "parameter-off"): {
        "se-cmdline": (
            "/proc/cmdline has no prot_virt=: Secure Execution host mode is off",
            "add prot_virt=1 to the kernel command line (zipl.conf parameters, or "
            "`grubby --update-kernel=ALL --args=prot_virt=1`), run zipl and reboot",
        ),
        "se-host": (f"{PVH} is 0 because of se-cmdline", "fix se-cmdline first"),
    },
    ("se", "kernel-too-old"): {
        "kernel-version": (
            "kernel 5.4.0-42-generic is older than 5.7, the first with KVM Secure Execution "
            "(prot_virt) host support",
            "boot a host kernel >= 5.7 (for se see docs/bare-metal.md)",
        ),
        "se-host": (
            f"{PVH} missing: this kernel does not report Secure Execution host support",
            "boot a newer kernel (see kernel-version)",
        ),
    },
    ("none", "bios-off"): {
        "virtualization": (
            "neither vmx nor svm in /proc/cpuinfo: hardware virtualization is off in the BIOS",
            "enable Intel VT-x or AMD-V (SVM mode) in the BIOS, then reboot",
        ),
        "kvm-module": (
            "kvm_intel is not loaded because of virtualization",
            "fix virtualization first, then modprobe kvm_intel",
        ),
        "kvm-device": (
            "/dev/kvm does not exist: KVM is not available",
            "load the KVM module for this CPU (kvm_amd, kvm_intel or kvm on s390x) and fix the "
            "other failing checks",
        ),
    },
    ("none", "parameter-off"): {
        "kvm-module": (
            "kvm_intel is not loaded (no /sys/module/kvm_intel)",
            "modprobe kvm_intel and add it to /etc/modules-load.d/",
        ),
        "kvm-device": (
            "/dev/kvm does not exist: KVM is not available",
            "load the KVM module for this CPU (kvm_amd, kvm_intel or kvm on s390x) and fix the "
            "other failing checks",
        ),
    },
    ("none", "kernel-too-old"): {
        "kernel-version": (
            "kernel 4.4.0-210-generic is older than 4.8, the first with vhost-vsock, which kata "
            "needs",
            "boot a host kernel >= 4.8 (for none see docs/bare-metal.md)",
        ),
        "vhost-vsock": (
            "/dev/vhost-vsock does not exist: the vhost_vsock module is missing",
            "modprobe vhost_vsock (and add vhost_vsock to /etc/modules-load.d/)",
        ),
    },
}

HOSTNAMES = {"snp": "node-snp", "tdx": "node-tdx", "se": "node-se", "none": "node-dev"}


class TestVerdicts:
    """Each TEE x case gives exactly the expected verdict: the ready flag, the exit code, every
    check in order, and for each failure its exact reason and fix."""

    @pytest.mark.parametrize("case", trees.CASES)
    @pytest.mark.parametrize("tee", sorted(trees.BUILDERS))
    def test_verdict(self, tmp_path: Path, tee: str, case: str) -> None:
        code, stdout, verdict = trees.run(trees.build(tmp_path, tee, case), tee)
        failures = FAILURES.get((tee, case), {})
        assert (code, verdict["ready"]) == ((0, True) if case == "ready" else (1, False))
        assert verdict["host"] == HOSTNAMES[tee]
        assert verdict["tee"] == tee
        assert [c["name"] for c in verdict["checks"]] == NAMES[tee]
        found = {c["name"]: (c["reason"], c["fix"]) for c in verdict["checks"] if not c["ok"]}
        assert found == failures
        for check in verdict["checks"]:
            assert sorted(check) == ["fix", "name", "ok", "reason"]
            assert check["reason"], check
            assert (check["fix"] == "") == check["ok"], check
        # One line of JSON with sorted keys: the machine-readable contract.
        assert stdout == json.dumps(verdict, sort_keys=True) + "\n"

    def test_ready_snp_golden(self, tmp_path: Path) -> None:
        _, stdout, _ = trees.run(trees.build(tmp_path, "snp", "ready"), "snp")
        ok = [
            ("kernel-version", "kernel 6.11.0-26-generic >= 6.11"),
            ("kvm-module", "module kvm_amd is loaded"),
            ("snp-bios", "CPU flag sev_snp present: SEV-SNP enabled in the BIOS"),
            ("sev-parameter", "/sys/module/kvm_amd/parameters/sev = Y"),
            ("snp-parameter", "/sys/module/kvm_amd/parameters/sev_snp = Y"),
            ("snp-firmware", "kernel log: 'SEV-SNP API:1.55 build:21': SNP initialised; "
             "SEV firmware in /lib/firmware/amd: amd_sev_fam19h_model1xh.sbin"),
            ("kvm-device", "/dev/kvm exists"),
            ("sev-device", "/dev/sev exists"),
            ("vhost-vsock", "/dev/vhost-vsock exists"),
        ]
        checks = [{"fix": "", "name": n, "ok": True, "reason": r} for n, r in ok]
        expected = {"checks": checks, "host": "node-snp", "ready": True, "tee": "snp"}
        assert stdout == json.dumps(expected, sort_keys=True) + "\n"


class TestSignals:
    """The alternative signals each check accepts, and what it says when it cannot know."""

    def test_tdx_backported_kernel_is_ready(self, tmp_path: Path) -> None:
        tree = trees.tdx("ready") | {"proc/sys/kernel/osrelease": "6.8.0-1014-intel\n"}
        code, _, verdict = trees.run(trees.write(tmp_path, tree), "tdx")
        assert code == 0
        assert verdict["checks"][0]["reason"] == (
            "kernel 6.8.0-1014-intel < 6.16, but it has the TEE support backported"
        )

    def test_tdx_cpu_flag_is_enough_for_bios(self, tmp_path: Path) -> None:
        tree = trees.tdx("ready") | {
            "proc/cpuinfo": trees.cpuinfo("GenuineIntel", trees.INTEL_FLAGS + " tdx_host_platform"),
            "var/log/dmesg": trees.TDX_MODULE,
        }
        code, _, _ = trees.run(trees.write(tmp_path, tree), "tdx")
        assert code == 0

    def test_dmesg_option_overrides_the_tree(self, tmp_path: Path) -> None:
        root = trees.build(tmp_path / "root", "tdx", "bios-off")
        log = tmp_path / "dmesg.txt"
        log.write_text(trees.TDX_BIOS + trees.TDX_MODULE)
        _, _, verdict = trees.run(root, "tdx", "--dmesg", str(log))
        failing = [c["name"] for c in verdict["checks"] if not c["ok"]]
        assert failing == ["tdx-parameter"]

    def test_unreadable_kernel_log_says_so(self, tmp_path: Path) -> None:
        root = trees.build(tmp_path, "tdx", "ready")
        _, _, verdict = trees.run(root, "tdx", "--dmesg", str(tmp_path / "absent"))
        failing = {c["name"]: c for c in verdict["checks"] if not c["ok"]}
        # tdx-module passes on kvm_intel.tdx = Y; tdx-bios needs the log or the CPU flag
        assert sorted(failing) == ["tdx-bios"]
        assert failing["tdx-bios"]["reason"] == "cannot read the kernel log (dmesg)"
        assert "--dmesg" in failing["tdx-bios"]["fix"]

    def test_tdx_module_by_parameter_after_log_wrapped(self, tmp_path: Path) -> None:
        """A long-running host: the boot lines rotated out of the kernel log, kvm_intel.tdx = Y
        (KVM sets it only after the TDX module initialised) decides."""
        tree = trees.tdx("ready") | {
            "proc/cpuinfo": trees.cpuinfo("GenuineIntel", trees.INTEL_FLAGS + " tdx_host_platform"),
            "var/log/dmesg": "kvm: some later line\n",
        }
        code, _, verdict = trees.run(trees.write(tmp_path, tree), "tdx")
        assert code == 0, verdict
        module = next(c for c in verdict["checks"] if c["name"] == "tdx-module")
        assert module["reason"] == (
            f"{TDX_PARAM} = Y: KVM enables TDX only after the TDX module initialised"
        )

    def test_tdx_module_by_log_without_parameter(self, tmp_path: Path) -> None:
        """Without the kvm_intel.tdx parameter the kernel log line is still what tdx-module
        reads (and its absence fails it)."""
        log = trees.TDX_BIOS + trees.TDX_MODULE
        with_line = trees.tdx("kernel-too-old") | {"var/log/dmesg": log}
        _, _, verdict = trees.run(trees.write(tmp_path / "a", with_line), "tdx")
        module = next(c for c in verdict["checks"] if c["name"] == "tdx-module")
        assert module["ok"] is True
        assert module["reason"] == "kernel log: 'virt/tdx: module initialized'"
        without = trees.tdx("kernel-too-old")
        _, _, verdict = trees.run(trees.write(tmp_path / "b", without), "tdx")
        module = next(c for c in verdict["checks"] if c["name"] == "tdx-module")
        assert module["ok"] is False

    def test_snp_on_intel_cpu(self, tmp_path: Path) -> None:
        tree = trees.snp("ready") | {"proc/cpuinfo": trees.cpuinfo("GenuineIntel", "vmx")}
        _, _, verdict = trees.run(trees.write(tmp_path, tree), "snp")
        bios = next(c for c in verdict["checks"] if c["name"] == "snp-bios")
        assert bios["reason"] == (
            "CPU vendor GenuineIntel: AMD SEV-SNP needs AMD EPYC Milan or later"
        )

    def test_snp_flag_missing_without_log(self, tmp_path: Path) -> None:
        tree = trees.snp("ready") | {"proc/cpuinfo": trees.cpuinfo("AuthenticAMD", "svm")}
        _, _, verdict = trees.run(trees.write(tmp_path, tree), "snp")
        failing = {c["name"]: c["reason"] for c in verdict["checks"] if not c["ok"]}
        assert failing == {
            "snp-bios": "CPU flag sev_snp missing from /proc/cpuinfo: SEV-SNP is off in the "
            "BIOS (or the CPU is older than EPYC Milan)"
        }

    def test_snp_firmware_from_the_bios(self, tmp_path: Path) -> None:
        """No firmware file, but the kernel log shows SNP initialised (the BIOS's firmware):
        ready."""
        tree = trees.snp("ready") | {"lib/firmware/amd/amd_sev_fam19h_model1xh.sbin": None}
        code, _, verdict = trees.run(trees.write(tmp_path, tree), "snp")
        assert code == 0, verdict
        firmware = next(c for c in verdict["checks"] if c["name"] == "snp-firmware")
        assert firmware["reason"] == (
            "kernel log: 'SEV-SNP API:1.55 build:21': SNP initialised; no SEV firmware file in "
            "/lib/firmware/amd (the BIOS's firmware is used)"
        )

    def test_snp_firmware_file_missing_is_information(self, tmp_path: Path) -> None:
        """No file and no SNP line in the log (older kernels do not print it): reported, not a
        failure; snp-parameter and sev-device decide."""
        tree = trees.snp("ready") | {
            "lib/firmware/amd/amd_sev_fam19h_model1xh.sbin": None, "var/log/dmesg": "",
        }
        code, _, verdict = trees.run(trees.write(tmp_path, tree), "snp")
        assert code == 0, verdict
        firmware = next(c for c in verdict["checks"] if c["name"] == "snp-firmware")
        assert firmware["ok"] is True
        assert firmware["reason"].startswith(
            "no SEV firmware file in /lib/firmware/amd (the BIOS's firmware is used); no "
            "'SEV-SNP API:' line in the kernel log"
        )

    def test_se_on_x86(self, tmp_path: Path) -> None:
        tree = trees.se("ready") | {"proc/sys/kernel/arch": "x86_64\n"}
        _, _, verdict = trees.run(trees.write(tmp_path, tree), "se")
        assert verdict["checks"][0] == {
            "fix": "put this host in a pool with a TEE of its architecture (snp, tdx or none)",
            "name": "arch",
            "ok": False,
            "reason": "architecture x86_64: IBM Secure Execution needs s390x",
        }

    def test_se_cmdline_kstrtobool(self, tmp_path: Path) -> None:
        tree = trees.se("ready") | {"proc/cmdline": "prot_virt=0 root=/dev/dasda1 prot_virt=on\n"}
        code, _, _ = trees.run(trees.write(tmp_path, tree), "se")
        assert code == 0

    def test_none_on_amd_names_kvm_amd(self, tmp_path: Path) -> None:
        tree = trees.none("parameter-off") | {"proc/cpuinfo": trees.cpuinfo("AuthenticAMD", "svm")}
        _, _, verdict = trees.run(trees.write(tmp_path, tree), "none")
        module = next(c for c in verdict["checks"] if c["name"] == "kvm-module")
        assert module["fix"] == "modprobe kvm_amd and add it to /etc/modules-load.d/"

    def test_none_on_s390x_needs_kvm(self, tmp_path: Path) -> None:
        tree = trees.se("ready") | {"sys/module/kvm/": ""}
        code, _, verdict = trees.run(trees.write(tmp_path, tree), "none")
        assert code == 0, verdict


class TestExplanation:
    """A host that is not ready exits 1 and explains itself on stderr (the text pulumi-command
    shows when the check command fails): the host by address and name, each failure, its fix."""

    def test_stderr(self, tmp_path: Path) -> None:
        root = trees.build(tmp_path, "se", "parameter-off")
        result = subprocess.run(
            [sys.executable, "-I", str(SCRIPT), "--root", str(root), "--tee", "se",
             "--address", "10.0.0.7"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 1
        assert json.loads(result.stdout)["ready"] is False
        assert result.stderr.splitlines() == [
            "host 10.0.0.7 (node-se) is not ready for tee se",
            "  se-cmdline: /proc/cmdline has no prot_virt=: Secure Execution host mode is off",
            "    fix: add prot_virt=1 to the kernel command line (zipl.conf parameters, or "
            "`grubby --update-kernel=ALL --args=prot_virt=1`), run zipl and reboot",
            f"  se-host: {PVH} is 0 because of se-cmdline",
            "    fix: fix se-cmdline first",
        ]


class TestUsage:
    """Exit 2 on bad usage, nothing on stdout."""

    @pytest.mark.parametrize(
        "argv",
        [[], ["--tee", "sgx"], ["--tee", "snp", "--root", "/nonexistent-root"], ["--bogus"]],
    )
    def test_bad_usage(self, argv: list[str]) -> None:
        result = subprocess.run(
            [sys.executable, "-I", str(SCRIPT), *argv],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 2
        assert result.stdout == ""
        assert "usage: coco-host-check" in result.stderr


class TestPackage:
    """What the Pulumi wiring uses: the command line and the verdict parser."""

    def test_remote_command(self) -> None:
        assert hostcheck.remote_command("snp") == (
            "python3 -I /var/lib/coco-stack/coco-host-check.py --tee snp"
        )
        assert hostcheck.remote_command("se", "/tmp/a b", root="/r", address="fd00::7") == (
            "python3 -I '/tmp/a b' --tee se --root /r --address fd00::7"
        )
        with pytest.raises(ValueError, match="unknown tee 'sgx'"):
            hostcheck.remote_command("sgx")

    def test_parse_and_explain(self, tmp_path: Path) -> None:
        _, stdout, _ = trees.run(trees.build(tmp_path, "se", "parameter-off"), "se")
        verdict = hostcheck.parse_verdict(stdout, "10.0.0.7")
        assert not verdict.ready
        assert [c.name for c in verdict.failures] == ["se-cmdline", "se-host"]
        error = hostcheck.HostNotReady(verdict, "10.0.0.7")
        assert str(error).splitlines() == [
            "host 10.0.0.7 (node-se) is not ready for tee se",
            "  se-cmdline: /proc/cmdline has no prot_virt=: Secure Execution host mode is off",
            "    fix: add prot_virt=1 to the kernel command line (zipl.conf parameters, or "
            "`grubby --update-kernel=ALL --args=prot_virt=1`), run zipl and reboot",
            f"  se-host: {PVH} is 0 because of se-cmdline",
            "    fix: fix se-cmdline first",
        ]

    @pytest.mark.parametrize(
        "text",
        ["", "python3: not found", '{"host": "x"}',
         '{"checks": [], "host": "x", "ready": false, "tee": "snp"}'],
    )
    def test_not_a_verdict(self, text: str) -> None:
        with pytest.raises(hostcheck.VerdictError, match=r"host 10\.0\.0\.7: the host check gave"):
            hostcheck.parse_verdict(text, "10.0.0.7")

    def test_script_is_stdlib_only(self) -> None:
        """The script runs on hosts with a bare python3: only standard-library imports."""
        source = hostcheck.script_source()
        imports = sorted(
            line.split()[1].split(".")[0] for line in source.splitlines()
            if line.startswith(("import ", "from "))
        )
        assert set(imports) <= set(sys.stdlib_module_names) | {"__future__"}, imports
        # Hosts may run an older python3 than the project: the grammar stays 3.8's.
        ast.parse(source, feature_version=(3, 8))
