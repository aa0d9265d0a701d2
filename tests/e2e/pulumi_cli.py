"""The real Pulumi CLI for the e2e tier: where it comes from, the environment it runs in, and
one way of running it, shared by every e2e test that drives it.

The CLI, the language hosts and the provider plugins come from tools/build.py (groups pulumi and
pulumi-providers); state is a local file backend under the test's temporary directory, secrets
use the passphrase provider, plugins come only from PATH, and the cluster is the loopback
control plane of tests/e2e/conftest.py: nothing is downloaded and no user state is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import build  # noqa: E402
import cluster as harness  # noqa: E402

__all__ = ["GROUPS", "PASSPHRASE", "ROOT", "Cli", "bin_dirs", "build", "cli_env", "harness"]

GROUPS = ("pulumi", "pulumi-providers")
PASSPHRASE = "e2e passphrase, not a secret"


def bin_dirs(*, need_go: bool = False) -> list[Path]:
    """The directories of the built CLI and plugins. Without them (or without `go` when the
    test needs it) the test skips with one line, unless COCO_REQUIRE_E2E_TESTS=1, which builds
    what is missing and fails when it cannot."""
    required = os.environ.get("COCO_REQUIRE_E2E_TESTS") == "1"
    if need_go and shutil.which("go") is None:
        message = "e2e: go not on PATH (the Go program and its language host need it)"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    if required:
        try:
            build.ensure(list(GROUPS))
        except build.BuildError as e:
            pytest.fail(f"e2e: {e}")
        return build.bin_dirs(GROUPS)
    found = build.bin_dirs(GROUPS)
    if len(found) < len(GROUPS):
        pytest.skip(
            "e2e: the Pulumi CLI and plugins are not built (python3 tools/build.py "
            "pulumi pulumi-providers)"
        )
    return found


def cli_env(
    tmp: Path, bins: list[Path], cluster: harness.Cluster, **extra: str
) -> dict[str, str]:
    """The CLI's environment: the caller's without any PULUMI_* or KUBE* variable, the built
    binaries first on PATH, a private PULUMI_HOME and file backend under `tmp`, the cluster's
    kubeconfig, plus `extra`."""
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBE"))},
        "PATH": os.pathsep.join([*map(str, bins), os.environ.get("PATH", "")]),
        "PULUMI_HOME": str(tmp / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "1",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "1",
        "KUBECONFIG": str(cluster.kubeconfig),
        **extra,
    }


@dataclass
class Cli:
    """`pulumi ARGS --non-interactive` in `dir` with `env` (and `--stack` when `stack` is set);
    a non-zero exit fails the test with the tail of both streams unless ok=False."""

    dir: Path
    env: dict[str, str]
    stack: str | None = None
    timeout: float = 600

    def run(
        self, *args: str, ok: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        stack = ["--stack", self.stack] if self.stack else []
        done = subprocess.run(
            ["pulumi", *args, *stack, "--non-interactive"],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
        )
        if ok and done.returncode != 0:
            pytest.fail(
                f"pulumi {' '.join(args)} exited {done.returncode}\n"
                f"stdout:\n{done.stdout[-6000:]}\nstderr:\n{done.stderr[-6000:]}"
            )
        return done
