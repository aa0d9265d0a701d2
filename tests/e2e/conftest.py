"""The e2e tier: a real Kubernetes control plane on loopback (tools/cluster.py).

Every test under tests/e2e is marked `e2e`. The session-scoped `cluster` fixture starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the tools/build.py groups
etcd, kube and kwok, with the default nodes (a worker, an SNP and a TDX node) and the default
StorageClass. Without those binaries the tests skip with one line naming the build command,
unless COCO_REQUIRE_E2E_TESTS=1, which builds them (build.ensure) and fails if that fails.
The API is reached with urllib and the admin client certificate (`cluster.api`), no client
library.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parent.parent / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import cluster as harness  # noqa: E402

T = TypeVar("T")

REQUIRE = "COCO_REQUIRE_E2E_TESTS"
NOT_BUILT = f"e2e: kube/etcd/kwok not built ({harness.BUILD_COMMAND})"
NO_GO = (
    f"e2e: go not on PATH and kube/etcd/kwok not built (install Go, then {harness.BUILD_COMMAND})"
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of tests/e2e `e2e` (before tests/conftest.py marks the rest `unit`)."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def require_binaries() -> None:
    """Skip (or, under COCO_REQUIRE_E2E_TESTS=1, build and fail on error) the cluster binaries."""
    if os.environ.get(REQUIRE) == "1":
        try:
            harness.find_binaries(build_missing=True)
        except harness.ClusterError as e:
            pytest.fail(f"e2e: {e}")
        return
    if harness.missing_groups():
        pytest.skip(NOT_BUILT if shutil.which("go") else NO_GO)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Cluster]:
    require_binaries()
    running = harness.Cluster(tmp_path_factory.mktemp("cluster"), nodes=harness.default_nodes())
    running.start()
    print(f"\ncluster ready in {running.ready_seconds:.1f} s: {running.timings}")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def api(cluster: harness.Cluster) -> harness.Api:
    return cluster.api


@pytest.fixture
def namespace(api: harness.Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace enforcing the `restricted` Pod Security Standard."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:8]}"
    api.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
    )
    # pods need the namespace's `default` ServiceAccount, made by the controller manager
    harness.wait_for(
        f"ServiceAccount {name}/default",
        lambda: api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        60,
    )
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    """probe() until it returns something truthy; fails the test with `what` on timeout."""
    try:
        return harness.wait_for(what, probe, timeout)
    except harness.ClusterError as e:
        pytest.fail(str(e))


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def elapsed(start: float) -> float:
    return round(time.monotonic() - start, 2)
