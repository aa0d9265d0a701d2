"""The loopback cluster harness (tools/cluster.py), tested against the real control plane:
readiness, the default nodes as coco-stack labels them, Pod Security admission, scheduling onto
TEE nodes by their extended resources, storage, the CLI, and that stopping leaves nothing."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import build  # tools/build.py: tools/ is on sys.path (conftest)
import cluster as harness  # tools/cluster.py
import pytest

from spec import labels
from spec.runtime_plan import KATA_RUNTIME_READY, NFD_LABELS

from .conftest import eventually, pod_ready, require_binaries

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WORKER = "worker-0"

RESTRICTED_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "registry.k8s.io/pause:3.10",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
}
RESTRICTED_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": RESTRICTED_POD_SECURITY,
            "containers": [RESTRICTED_CONTAINER],
            **spec,
        },
    }


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind]
    return found[0] if found else {}


def test_api_server_ready(cluster: harness.Cluster, api: harness.Api) -> None:
    assert api.raw("GET", "/readyz").decode() == "ok"
    assert api.get("/version")["gitVersion"] == harness.KUBERNETES_VERSION
    assert cluster.ready_seconds is not None and cluster.ready_seconds < cluster.timeout
    # the admin kubeconfig names the same server and authenticates as system:masters
    config = json.loads(cluster.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == cluster.server
    review = api.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "*", "resource": "*", "group": "*"}},
        },
    )
    assert review["status"]["allowed"] is True
    # every component listens on loopback only
    assert set(cluster.pids()) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    for port in cluster.ports.values():
        with socket.create_connection((harness.LOOPBACK, port), timeout=2):
            pass


def test_default_nodes_labelled_as_the_stack_labels_them(api: harness.Api) -> None:
    nodes = {n["metadata"]["name"]: n for n in api.get("/api/v1/nodes")["items"]}
    assert set(nodes) == {WORKER, "snp-0", "tdx-0"}
    for name, node in nodes.items():
        assert condition(node, "Ready").get("status") == "True", name
        assert node["metadata"]["annotations"][harness.KWOK_ANNOTATION] == "fake"
        # kwok renews each node's lease: what keeps the node lifecycle controller content
        lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
        assert lease["spec"]["leaseDurationSeconds"] == 40 and lease["spec"]["renewTime"]

    worker = nodes[WORKER]
    assert worker["metadata"]["labels"][labels.WORKER] == ""
    assert not [t for t in worker["spec"].get("taints", []) if t["key"] == labels.TEE]

    for tee, resource, count in (
        ("snp", harness.SNP_RESOURCE, "99"),
        ("tdx", harness.TDX_RESOURCE, "63"),
    ):
        node = nodes[f"{tee}-0"]
        node_labels = node["metadata"]["labels"]
        for key, value in labels.pool_labels(tee, tee).items():
            assert node_labels[key] == value
        assert node_labels[NFD_LABELS[tee]] == "true"
        assert node_labels[KATA_RUNTIME_READY] == "true"
        assert {"key": labels.TEE, "value": tee, "effect": "NoSchedule"} in node["spec"]["taints"]
        assert node["status"]["allocatable"][resource] == count
        assert node["status"]["capacity"][resource] == count


def test_restricted_namespace_runs_compliant_pods_and_refuses_privileged(
    api: harness.Api, namespace: str
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "securityContext": RESTRICTED_POD_SECURITY,
                    "containers": [RESTRICTED_CONTAINER],
                },
            },
        },
    }
    api.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment)
    eventually(
        "Deployment web available with 2 ready replicas",
        lambda: (
            (d := api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web"))["status"].get(
                "availableReplicas"
            )
            == 2
            and condition(d, "Available").get("status") == "True"
        ),
        120,
    )
    pods = api.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3Dweb")["items"]
    assert len(pods) == 2
    for p in pods:
        assert pod_ready(p)
        assert p["status"]["phase"] == "Running"
        # the TEE nodes are tainted: an ordinary pod lands on the worker
        assert p["spec"]["nodeName"] == WORKER
        assert ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network(harness.POD_CIDR)

    privileged = pod(
        "privileged",
        containers=[
            {
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "securityContext": {"privileged": True},
            }
        ],
    )
    del privileged["spec"]["securityContext"]
    with pytest.raises(harness.ApiError) as refused:
        api.create(f"/api/v1/namespaces/{namespace}/pods", privileged)
    assert refused.value.code == 403
    assert 'violates PodSecurity "restricted:latest"' in str(refused.value)
    assert "privileged" in str(refused.value)


@pytest.mark.parametrize(
    ("tee", "resource"), [("snp", harness.SNP_RESOURCE), ("tdx", harness.TDX_RESOURCE)]
)
def test_tee_pods_schedule_by_taint_selector_and_extended_resource(
    api: harness.Api, namespace: str, tee: str, resource: str
) -> None:
    tee_spec: dict[str, Any] = {
        "nodeSelector": {labels.TEE: tee},
        "tolerations": [
            {"key": labels.TEE, "operator": "Equal", "value": tee, "effect": "NoSchedule"}
        ],
    }
    fits = pod("fits", **tee_spec)
    fits["spec"]["containers"] = [
        {**RESTRICTED_CONTAINER, "resources": {"limits": {resource: "1"}}}
    ]
    too_many = pod("too-many", **tee_spec)
    too_many["spec"]["containers"] = [
        {**RESTRICTED_CONTAINER, "resources": {"limits": {resource: "1000"}}}
    ]
    untolerated = pod("untolerated", nodeSelector={labels.TEE: tee})
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for p in (fits, too_many, untolerated):
        api.create(pods, p)

    ready = eventually(f"pod fits Ready on {tee}-0", lambda: pod_ready(api.get(f"{pods}/fits")))
    assert ready
    assert api.get(f"{pods}/fits")["spec"]["nodeName"] == f"{tee}-0"
    for name in ("too-many", "untolerated"):

        def scheduled_condition(name: str = name) -> dict[str, Any] | None:
            return condition(api.get(f"{pods}/{name}"), "PodScheduled") or None

        scheduled = eventually(f"pod {name} refused by the scheduler", scheduled_condition)
        assert scheduled["status"] == "False"
        assert scheduled["reason"] == "Unschedulable"
    assert resource in condition(api.get(f"{pods}/too-many"), "PodScheduled")["message"]


def test_claim_binds_to_default_storage_class(
    cluster: harness.Cluster, api: harness.Api, namespace: str
) -> None:
    claims = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    api.create(
        claims,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "512Mi"}},
            },
        },
    )
    claim = eventually(
        "claim data Bound",
        lambda: (c := api.get(f"{claims}/data"))["status"].get("phase") == "Bound" and c,
    )
    assert claim["spec"]["storageClassName"] == harness.STORAGE_CLASS  # the default class
    volume = claim["spec"]["volumeName"]
    assert volume.startswith("local-") and volume.endswith("-1gi")  # the smallest that fits

    pods = f"/api/v1/namespaces/{namespace}/pods"
    api.create(
        pods,
        pod(
            "user",
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            containers=[
                {**RESTRICTED_CONTAINER, "volumeMounts": [{"name": "data", "mountPath": "/d"}]}
            ],
        ),
    )
    eventually("pod user Ready", lambda: pod_ready(api.get(f"{pods}/user")))
    assert api.get(f"{pods}/user")["spec"]["nodeName"] == WORKER  # the volume's node

    # deleting the claim releases the volume; the harness makes it Available again
    api.delete(f"{pods}/user")
    api.delete(f"{claims}/data")
    eventually(
        f"volume {volume} Released",
        lambda: api.get(f"/api/v1/persistentvolumes/{volume}")["status"]["phase"] == "Released",
    )
    assert volume in cluster.recycle_volumes()
    eventually(
        f"volume {volume} Available",
        lambda: api.get(f"/api/v1/persistentvolumes/{volume}")["status"]["phase"] == "Available",
    )


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((harness.LOOPBACK, port)) != 0


def test_stop_leaves_no_process_and_no_open_port(tmp_path: Path) -> None:
    require_binaries()
    run = tmp_path / "run"
    started = time.monotonic()
    with harness.Cluster(run, nodes=[harness.worker_node()], storage=False) as c:
        pids = c.pids()
        ports = dict(c.ports)
        assert len(pids) == 5 and all(os.path.exists(f"/proc/{p}") for p in pids.values())
        assert sorted(_processes_naming(str(run))) == sorted(pids.values())
        print(f"\nstart to ready: {c.ready_seconds:.1f} s {c.timings}")
    print(f"start, ready and stop: {time.monotonic() - started:.1f} s")
    assert _processes_naming(str(run)) == []
    for name, port in ports.items():
        assert _port_closed(port), f"{name} still listens on {port}"
    assert not (run / "pids.json").exists()
    for name in pids:
        assert (run / "logs" / f"{name}.log").stat().st_size > 0


def test_cli_up_detach_and_down(tmp_path: Path) -> None:
    require_binaries()
    run = tmp_path / "cli"
    cli = [sys.executable, str(ROOT / "tools" / "cluster.py")]
    up = subprocess.run(
        [*cli, "up", "--dir", str(run), "--nodes", "worker", "--no-storage", "--detach"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={run / 'kubeconfig'}" in up.stdout.splitlines()
        attached = harness.Cluster.attach(run)
        assert all(p.running() for p in attached.processes)
        nodes = attached.api.get("/api/v1/nodes")["items"]
        assert [n["metadata"]["name"] for n in nodes] == [WORKER]
        # a second `up` in the same directory is refused while the first runs
        again = subprocess.run(
            [*cli, "up", "--dir", str(run), "--nodes", ""], capture_output=True, text=True
        )
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = subprocess.run(
            [*cli, "down", "--dir", str(run)], capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stderr
    assert _processes_naming(str(run)) == []
    assert not (run / "pids.json").exists()


def test_missing_binaries_name_the_build_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "bin_dirs", lambda groups=None: [])
    with pytest.raises(harness.ClusterError, match=r"python3 tools/build\.py etcd"):
        harness.Cluster("/nonexistent/never-made").start()
    assert harness.missing_groups() == ["etcd", "kube", "kwok"]


def test_node_spec() -> None:
    nodes = harness.nodes_from_spec("worker:2,snp")
    assert [n.name for n in nodes] == ["worker-0", "worker-1", "snp-0"]
    assert harness.nodes_from_spec("") == []
    with pytest.raises(harness.ClusterError, match="unknown node kind"):
        harness.nodes_from_spec("gpu")
    tainted = harness.Node("n", kwok_taint=True).to_json()
    assert {"key": harness.KWOK_TAINT, "value": "fake", "effect": "NoSchedule"} in tainted["spec"][
        "taints"
    ]
