"""The bare-metal host check: the program coco-stack ships to each host, and its verdict.

`coco_host_check.py` is the program (one stdlib-only file, run on the host with python3; its
docstring says why Python and not sh). This package gives the Pulumi wiring what it needs around
it: the script's path and source, the command line that runs it on a host, and the JSON verdict
parsed into frozen dataclasses, with one message naming the host and every failing check.

Non-goals here: SSH, Pulumi resources, k3s and node labels (the rest of the bare-metal issue).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from components.hostcheck.coco_host_check import TEES, explain
from spec.errors import CocoError

SCRIPT = Path(__file__).with_name("coco_host_check.py")
# Where the wiring copies the script on a host; under /var/lib so it survives a reboot of the
# host between `pulumi up` runs (the check is rerun, never trusted from a previous run).
REMOTE_PATH = "/var/lib/coco-stack/coco-host-check.py"

__all__ = [
    "REMOTE_PATH",
    "SCRIPT",
    "TEES",
    "HostCheck",
    "HostNotReady",
    "Verdict",
    "VerdictError",
    "parse_verdict",
    "remote_command",
    "script_source",
]


class VerdictError(CocoError):
    """The host check's output is not a verdict (the program failed or python3 is missing)."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"host {host}: the host check gave no verdict: {message}")
        self.hint = "run it by hand: python3 -I " + REMOTE_PATH + " --tee TEE"


class HostNotReady(CocoError):
    """A host failed its TEE readiness checks; the message names the host and every failure."""

    def __init__(self, verdict: Verdict, address: str) -> None:
        super().__init__(verdict.explain(address))
        self.verdict = verdict
        self.hint = "fix the host and rerun `pulumi up`; details in docs/bare-metal.md"


@dataclass(frozen=True)
class HostCheck:
    name: str
    ok: bool
    reason: str
    fix: str


@dataclass(frozen=True)
class Verdict:
    host: str
    tee: str
    ready: bool
    checks: tuple[HostCheck, ...]

    @property
    def failures(self) -> tuple[HostCheck, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def explain(self, address: str) -> str:
        """One message for `pulumi up`: the host (address and name), the TEE, each failure."""
        if self.ready:
            return f"host {address} ({self.host}) is ready for tee {self.tee}"
        failures = [(c.name, c.reason, c.fix) for c in self.failures]
        return explain(address, self.host, self.tee, failures)


def script_source() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def remote_command(
    tee: str, path: str = REMOTE_PATH, root: str | None = None, address: str | None = None
) -> str:
    """The shell command that runs the check on a host (`root`: a fake tree, for tests).

    It fails (exit 1) on a host that is not ready, with the explanation naming `address`, each
    failing check and its fix on stderr: pulumi-command then reports the error and records no
    state for the check, so the next `pulumi up` runs it again (a command that succeeded is not
    rerun while its inputs are unchanged; pulumi-command v1.2.1
    provider/pkg/provider/remote/commandController.go)."""
    if tee not in TEES:
        raise ValueError(f"unknown tee {tee!r}; expected one of {', '.join(TEES)}")
    argv = ["python3", "-I", path, "--tee", tee]
    argv += ["--root", root] if root else []
    argv += ["--address", address] if address else []
    return shlex.join(argv)


def parse_verdict(text: str, address: str) -> Verdict:
    """Parse the program's stdout; raises VerdictError when it is not a verdict."""
    try:
        data = json.loads(text)
        checks = tuple(
            HostCheck(str(c["name"]), bool(c["ok"]), str(c["reason"]), str(c["fix"]))
            for c in data["checks"]
        )
        verdict = Verdict(str(data["host"]), str(data["tee"]), bool(data["ready"]), checks)
    except (ValueError, KeyError, TypeError) as error:
        raise VerdictError(address, f"{error!s}: {text[:200]!r}") from None
    if verdict.ready != all(check.ok for check in checks):
        raise VerdictError(address, "ready flag disagrees with the checks")
    return verdict
