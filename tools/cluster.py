#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, with fake (kwok) nodes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as child processes of
this harness, bound to 127.0.0.1 only, on free ports, with TLS and client certificates
everywhere, state and logs in one directory. kwok makes Node objects look like live kubelets
and moves the pods scheduled onto them to Running/Ready; no container ever runs. Used by the e2e
test tier (tests/e2e) and by contributors trying the stack without a cloud (docs/local-cluster.md).

    python3 tools/cluster.py up --dir DIR [--nodes worker,snp,tdx] [--detach]
    python3 tools/cluster.py down --dir DIR

From Python (`tools/` on sys.path):

    with cluster.Cluster(dir, nodes=cluster.default_nodes()) as c:
        c.api.get("/api/v1/nodes"); os.environ["KUBECONFIG"] = str(c.kubeconfig)

Binaries come from tools/build.py groups etcd, kube and kwok (never built here unless asked:
`build_missing=True`, `up --build`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
for _path in (str(ROOT), str(TOOLS)):  # tools/ first: its build.py
    if _path not in sys.path:
        sys.path.insert(0, _path)

import build  # noqa: E402

from spec import labels  # noqa: E402

# binaries the harness runs, by tools/build.py group
GROUPS: dict[str, tuple[str, ...]] = {
    "etcd": ("etcd",),
    "kube": ("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    "kwok": ("kwok", "kwok-stages"),
}
BUILD_COMMAND = "python3 tools/build.py kube etcd kwok"

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
POD_CIDR = "10.244.0.0/16"  # the pod IPs kwok hands out
KUBERNETES_VERSION = "v1.34.4"  # tools/go/kube/tools.toml
CONTEXT = "coco-local"

# kwok manages the nodes that carry this annotation (kwok docs: "kwok.x-k8s.io/node: fake");
# the taint of the same name is opt-in (Node.kwok_taint): tolerating it is not what real pods do.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_TAINT = "kwok.x-k8s.io/node"
# extended resources that Node Feature Discovery advertises for TEE hosts and that kata-deploy
# adds to the overhead of its snp and tdx RuntimeClasses when NFD is on (kata-deploy
# adjust_runtimeclass_for_nfd: "sev-snp.amd.com/esids" 1, "tdx.intel.com/keys" 1)
SNP_RESOURCE = "sev-snp.amd.com/esids"
TDX_RESOURCE = "tdx.intel.com/keys"
# label of the pre-made PersistentVolumes, so the harness finds (and recycles) only its own
LOCAL_PV_LABEL = f"{labels.PREFIX}/local-cluster"
STORAGE_CLASS = "standard"
# sizes of the pre-made PersistentVolumes: a claim binds the smallest that fits
PV_SIZES = ("1Gi", "1Gi", "1Gi", "2Gi", "5Gi", "10Gi", "10Gi")

T = TypeVar("T")


class ClusterError(RuntimeError):
    """The cluster could not be started or stopped; the message says what to do."""


class ApiError(RuntimeError):
    """A non-2xx answer of the API server."""

    def __init__(self, code: int, method: str, path: str, body: str) -> None:
        self.code, self.method, self.path, self.body = code, method, path, body
        try:
            self.status: dict[str, Any] = json.loads(body)
        except ValueError:
            self.status = {}
        message = self.status.get("message") or body.strip()[:500]
        super().__init__(f"{method} {path}: HTTP {code}: {message}")


# ---------------------------------------------------------------------------------------------
# Binaries


def missing_groups() -> list[str]:
    """Groups of GROUPS that are not built (all of them when `go` is not on PATH); never builds."""
    try:
        built = {d.parent.name.rsplit("-", 1)[0] for d in build.bin_dirs(list(GROUPS))}
    except build.BuildError:
        return list(GROUPS)
    return [g for g in GROUPS if g not in built]


def find_binaries(build_missing: bool = False) -> dict[str, Path]:
    """{binary name: path} of every binary the harness runs.

    Raises ClusterError naming the tools/build.py command when a group is not built (or, with
    build_missing, when building it fails)."""
    if build_missing:
        try:
            paths = build.ensure(list(GROUPS))
        except build.BuildError as e:
            raise ClusterError(f"building the cluster binaries failed: {e}") from e
        return {name: paths[name] for names in GROUPS.values() for name in names}
    paths = {}
    for group, names in GROUPS.items():
        try:
            dirs = build.bin_dirs([group])
        except build.BuildError as e:
            raise ClusterError(
                f"cannot locate the {group} binaries ({e}); build them: python3 tools/build.py "
                f"{group}"
            ) from e
        if not dirs:
            raise ClusterError(
                f"{', '.join(names)} not built (group {group}): run python3 tools/build.py "
                f"{group} (all cluster binaries: {BUILD_COMMAND})"
            )
        for name in names:
            path = dirs[0] / name
            if not os.access(path, os.X_OK):
                raise ClusterError(f"{path} missing: run python3 tools/build.py {group}")
            paths[name] = path
    return paths


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class _Pair:
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    """Write a key or credential 0600 from its creation (never readable by others, not even
    between a write and a chmod); an existing file is made 0600 before a byte is written, and
    a link in its place is not followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


class _Pki:
    """The certificates of one cluster, in DIR/pki; made once, reused when DIR is restarted."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str) -> Path:
        return self.dir / name

    def ensure(self) -> None:
        if (self.dir / "complete").is_file():
            return
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        until = now + datetime.timedelta(days=365)
        pem = serialization.Encoding.PEM
        keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        certs: dict[str, x509.Certificate] = {}

        def save(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
            keys[name], certs[name] = key, cert
            _write_private(
                self.path(f"{name}.key"),
                key.private_bytes(
                    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ),
            )
            self.path(f"{name}.crt").write_bytes(cert.public_bytes(pem))

        def name_of(cn: str, org: str | None) -> x509.Name:
            attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
            if org:
                attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
            return x509.Name(attrs)

        def ca(name: str, cn: str) -> None:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = name_of(cn, None)
            cert = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(until + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            save(name, key, cert)

        def leaf(
            name: str,
            issuer: str,
            cn: str,
            *,
            org: str | None = None,
            server: bool = False,
            client: bool = False,
            dns: Sequence[str] = (),
            ips: Sequence[str] = (),
        ) -> None:
            key = ec.generate_private_key(ec.SECP256R1())
            usages = []
            if server:
                usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            if client:
                usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
            builder = (
                x509.CertificateBuilder()
                .subject_name(name_of(cn, org))
                .issuer_name(certs[issuer].subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(until)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(keys[issuer].public_key()),
                    critical=False,
                )
            )
            if dns or ips:
                alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
                alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
                builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
            save(name, key, builder.sign(keys[issuer], hashes.SHA256()))

        ca("ca", "coco-local-ca")
        leaf(
            "apiserver",
            "ca",
            "kube-apiserver",
            server=True,
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=(LOOPBACK, SERVICE_IP),
        )
        leaf("admin", "ca", "kubernetes-admin", org="system:masters", client=True)
        leaf("controller-manager", "ca", "system:kube-controller-manager", client=True)
        leaf("scheduler", "ca", "system:kube-scheduler", client=True)
        ca("front-proxy-ca", "coco-local-front-proxy-ca")
        leaf("front-proxy-client", "front-proxy-ca", "front-proxy-client", client=True)
        ca("etcd-ca", "coco-local-etcd-ca")
        leaf(
            "etcd-server",
            "etcd-ca",
            "etcd",
            server=True,
            client=True,  # the peer listener authenticates itself with it too
            dns=("localhost",),
            ips=(LOOPBACK,),
        )
        leaf("apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client", client=True)
        sa = ec.generate_private_key(ec.SECP256R1())
        _write_private(
            self.path("sa.key"),
            sa.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        self.path("sa.pub").write_bytes(
            sa.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        (self.dir / "complete").write_text("")

    def pair(self, name: str) -> _Pair:
        return _Pair(self.path(f"{name}.crt"), self.path(f"{name}.key"))


def _kubeconfig(server: str, ca: Path, client: _Pair, user: str) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert),
                    "client-key-data": b64(client.key),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


# ---------------------------------------------------------------------------------------------
# API client (urllib + ssl; no kubernetes client dependency)


class Api:
    """Minimal JSON client of the API server, authenticated with a client certificate."""

    def __init__(self, server: str, ca: Path, client: _Pair) -> None:
        self.server = server.rstrip("/")
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(client.cert), str(client.key))
        # never through an HTTP(S)_PROXY of the environment: the server is on loopback
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.context)
        )

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self.server + path, data=data, method=method, headers=headers
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, method, path, e.read().decode(errors="replace")) from None

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        raw = self.raw(method, path, body, **kw)
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, obj: Mapping[str, Any], *, exist_ok: bool = False) -> Any:
        """POST obj to the collection `path`; with exist_ok an existing object is returned."""
        try:
            return self.request("POST", path, obj)
        except ApiError as e:
            if e.code == 409 and exist_ok:
                return self.get(f"{path}/{obj['metadata']['name']}")
            raise

    def patch(self, path: str, patch: Mapping[str, Any]) -> Any:
        """JSON merge patch."""
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str, *, missing_ok: bool = True) -> Any:
        try:
            return self.request("DELETE", path)
        except ApiError as e:
            if e.code == 404 and missing_ok:
                return None
            raise


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.25,
    check: Callable[[], None] | None = None,
) -> T:
    """Call probe until it returns something not None (or False); exceptions count as not yet.

    `check` runs between tries and may raise to give up early (a process died)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = probe()
            if result is not None and result is not False:
                return result
        except (OSError, ApiError, ValueError, KeyError, ssl.SSLError) as e:
            last = e
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}: {last}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Nodes


@dataclass(frozen=True, order=True)
class Taint:
    key: str
    value: str
    effect: str  # NoSchedule, PreferNoSchedule or NoExecute

    def to_json(self) -> dict[str, str]:
        taint = {"key": self.key, "effect": self.effect}
        if self.value:
            taint["value"] = self.value
        return taint


DEFAULT_RESOURCES = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}


@dataclass(frozen=True)
class Node:
    """A kwok-managed Node: its labels, taints and allocatable resources (capacity the same)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    resources: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    kwok_taint: bool = False  # also taint kwok.x-k8s.io/node=fake:NoSchedule

    def to_json(self) -> dict[str, Any]:
        node_labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            **self.labels,
        }
        taints = [t.to_json() for t in self.taints]
        if self.kwok_taint:
            taints.append(Taint(KWOK_TAINT, "fake", "NoSchedule").to_json())
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": node_labels,
                "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"taints": taints} if taints else {},
            # a Node's status may be set on create; kwok's node-initialize stage keeps
            # allocatable, capacity and nodeInfo as given and adds conditions and addresses
            "status": {
                "allocatable": dict(self.resources),
                "capacity": dict(self.resources),
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": KUBERNETES_VERSION,
                },
            },
        }


def worker_node(name: str = "worker-0") -> Node:
    """An ordinary node: the dev stack's pool selects node.kubernetes.io/worker=""."""
    return Node(name, {labels.WORKER: ""})


def tee_node(tee: str, name: str | None = None, pool: str | None = None) -> Node:
    """A TEE node as coco-stack labels and taints the nodes of a bare-metal pool it manages
    (spec.labels.pool_labels, components.clouds.pool_nodes), after kata-deploy finished: the
    runtime-ready label set, the startup taint removed. Also the Node Feature Discovery label
    and, for snp and tdx, the extended resource kata-deploy's RuntimeClasses request with NFD.
    """
    from spec.runtime_plan import KATA_RUNTIME_READY, NFD_LABELS

    node_labels = dict(labels.pool_labels(pool or tee, tee))
    if tee in NFD_LABELS:
        node_labels[NFD_LABELS[tee]] = "true"
    node_labels[KATA_RUNTIME_READY] = "true"
    resources = dict(DEFAULT_RESOURCES)
    if tee == "snp":
        resources[SNP_RESOURCE] = "99"
    elif tee == "tdx":
        resources[TDX_RESOURCE] = "63"
    return Node(
        name or f"{tee}-0",
        node_labels,
        (Taint(labels.TEE, tee, "NoSchedule"),),
        resources,
    )


PRESETS = ("worker", "snp", "tdx", "se", "none")


def nodes_from_spec(spec: str) -> list[Node]:
    """`worker,snp,tdx` (the default), `worker:3,snp`, or `` for no nodes."""
    nodes: list[Node] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, _, count_text = part.partition(":")
        if kind not in PRESETS:
            raise ClusterError(f"unknown node kind {kind!r} in {spec!r} (kinds: {PRESETS})")
        try:
            count = int(count_text) if count_text else 1
        except ValueError:
            raise ClusterError(f"bad count in {part!r}: want KIND or KIND:COUNT") from None
        for i in range(count):
            if kind == "worker":
                nodes.append(worker_node(f"worker-{i}"))
            else:
                nodes.append(tee_node(kind, f"{kind}-{i}"))
    return nodes


def default_nodes() -> list[Node]:
    """One worker node, one SNP node and one TDX node."""
    return nodes_from_spec("worker,snp,tdx")


# ---------------------------------------------------------------------------------------------
# Processes


def _free_ports(count: int, wanted: Sequence[int] = ()) -> list[int]:
    """`count` distinct free loopback ports; the `wanted` ones (a restart's) where still free."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            try:
                if i < len(wanted) and wanted[i]:
                    # as Go's listeners do: a port with connections in TIME_WAIT is free
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((LOOPBACK, wanted[i]))
                else:
                    raise OSError
            except OSError:
                s.bind((LOOPBACK, 0))
            ports.append(s.getsockname()[1])
    finally:
        for s in held:
            s.close()
    return ports


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGTERM the child when the harness dies (Linux
    prctl PR_SET_PDEATHSIG); resolved in the parent, so the child only calls it."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): a pid's identity across reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class _Process:
    name: str
    argv: list[str]
    log: Path
    pid: int = 0
    start_time: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _alive(self.pid) and _start_time(self.pid) == self.start_time

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 20) -> None:
        if not self.running():
            if self.popen is not None:
                self.popen.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while self.running() and time.monotonic() < kill_deadline:
                time.sleep(0.05)
        if self.popen is not None:
            self.popen.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """A control plane on loopback with kwok nodes; state, logs and kubeconfig in `directory`.

    `start()` (or `with Cluster(...)`) starts etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler and kwok in that order, waits until each is ready, then adds `nodes` and, with
    `storage`, a default StorageClass `standard` with pre-made local PersistentVolumes on the
    first worker node. `stop()` stops the processes in reverse order and waits for each.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        nodes: Sequence[Node] | None = None,
        storage: bool = True,
        build_missing: bool = False,
        die_with_parent: bool = True,
        timeout: float = 180,
    ) -> None:
        self.dir = Path(directory).resolve()
        self.nodes = list(default_nodes() if nodes is None else nodes)
        self.storage = storage
        self.build_missing = build_missing
        self.die_with_parent = die_with_parent
        self.timeout = timeout
        self.pki = _Pki(self.dir / "pki")
        self.logs = self.dir / "logs"
        self.kubeconfig = self.dir / "kubeconfig"
        self.pids_file = self.dir / "pids.json"
        self.processes: list[_Process] = []
        self.ports: dict[str, int] = {}
        self.ready_seconds: float | None = None
        self.timings: dict[str, float] = {}
        self._api: Api | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports['apiserver']}"

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.server, self.pki.path("ca.crt"), self.pki.pair("admin"))
        return self._api

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        binaries = find_binaries(self.build_missing)
        self._refuse_running()
        try:
            self._start(binaries, started)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop every process in reverse start order (SIGTERM, then SIGKILL after 20 s)."""
        errors = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{process.name}: {e}")
        self.processes = []
        with contextlib.suppress(FileNotFoundError):
            self.pids_file.unlink()
        if errors:
            raise ClusterError("stopping the cluster: " + "; ".join(errors))

    def add_nodes(self, nodes: Iterable[Node], *, wait: bool = True) -> None:
        """Create kwok-managed Node objects (existing ones are left as they are) and wait
        until kwok reports them Ready."""
        nodes = list(nodes)
        for node in nodes:
            self.api.create("/api/v1/nodes", node.to_json(), exist_ok=True)
        if wait:
            for node in nodes:
                wait_for(
                    f"node {node.name} Ready (kwok; log {self.logs / 'kwok.log'})",
                    lambda n=node.name: self.node_ready(n),  # type: ignore[misc]
                    self.timeout,
                    check=self.check_processes,
                )

    def node_ready(self, name: str) -> bool:
        node = self.api.get(f"/api/v1/nodes/{name}")
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def check_processes(self) -> None:
        """Raise ClusterError (with the end of its log) when a process has exited."""
        for process in self.processes:
            if not process.running():
                code = process.popen.poll() if process.popen is not None else "?"
                raise ClusterError(
                    f"{process.name} exited (status {code}); end of {process.log}:\n"
                    f"{process.tail()}"
                )

    def recycle_volumes(self) -> list[str]:
        """Make the harness's Released PersistentVolumes Available again (the claim was
        deleted): what a provisioner's delete and re-create would do. Returns their names."""
        found = self.api.get(f"/api/v1/persistentvolumes?labelSelector={LOCAL_PV_LABEL}%3Dtrue")
        recycled = []
        for pv in found.get("items", []):
            if pv.get("status", {}).get("phase") == "Released":
                name = pv["metadata"]["name"]
                self.api.patch(f"/api/v1/persistentvolumes/{name}", {"spec": {"claimRef": None}})
                recycled.append(name)
        return recycled

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes}

    def detach(self) -> None:
        """Leave the processes running after this Python process exits (`up --detach`)."""
        for process in self.processes:
            process.popen = None  # no wait() on exit; `down` finds them by pid and start time

    @classmethod
    def attach(cls, directory: Path | str) -> Cluster:
        """The cluster that `up --detach` left running in `directory` (from DIR/pids.json)."""
        cluster = cls(directory, nodes=[])
        try:
            saved = json.loads(cluster.pids_file.read_text())
        except FileNotFoundError:
            raise ClusterError(f"no cluster started with --detach in {cluster.dir}") from None
        cluster.ports = dict(saved["ports"])
        for entry in saved["processes"]:
            cluster.processes.append(
                _Process(
                    entry["name"],
                    entry["argv"],
                    Path(entry["log"]),
                    entry["pid"],
                    entry["start_time"],
                )
            )
        return cluster

    # -- start ------------------------------------------------------------------------------

    def _refuse_running(self) -> None:
        if self.pids_file.is_file():
            other = Cluster.attach(self.dir)
            if any(p.running() for p in other.processes):
                raise ClusterError(
                    f"a cluster is already running in {self.dir} (pids {other.pids()}): "
                    f"python3 tools/cluster.py down --dir {self.dir}"
                )
            self.pids_file.unlink()

    def _mark(self, what: str, since: float) -> None:
        self.timings[what] = round(time.monotonic() - since, 2)

    def _start(self, binaries: Mapping[str, Path], started: float) -> None:
        for sub in (self.dir, self.logs):
            sub.mkdir(parents=True, exist_ok=True)
        self.pki.ensure()
        self._mark("certificates", started)
        self._choose_ports()
        pki = self.pki
        ca = pki.path("ca.crt")

        configs = {
            "kubeconfig": ("admin", "kubernetes-admin"),
            "controller-manager.kubeconfig": (
                "controller-manager",
                "system:kube-controller-manager",
            ),
            "scheduler.kubeconfig": ("scheduler", "system:kube-scheduler"),
        }
        for file, (pair, user) in configs.items():
            path = self.dir / file
            _write_private(
                path,
                json.dumps(_kubeconfig(self.server, ca, pki.pair(pair), user), indent=2).encode(),
            )

        # etcd ------------------------------------------------------------------------------
        etcd_client = f"https://{LOOPBACK}:{self.ports['etcd']}"
        etcd_peer = f"https://{LOOPBACK}:{self.ports['etcd-peer']}"
        server = pki.pair("etcd-server")
        self._spawn(
            "etcd",
            binaries["etcd"],
            [
                "--name=default",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={etcd_client}",
                f"--advertise-client-urls={etcd_client}",
                f"--listen-peer-urls={etcd_peer}",
                f"--initial-advertise-peer-urls={etcd_peer}",
                f"--initial-cluster=default={etcd_peer}",
                "--initial-cluster-token=coco-local",
                f"--cert-file={server.cert}",
                f"--key-file={server.key}",
                f"--trusted-ca-file={pki.path('etcd-ca.crt')}",
                "--client-cert-auth=true",
                f"--peer-cert-file={server.cert}",
                f"--peer-key-file={server.key}",
                f"--peer-trusted-ca-file={pki.path('etcd-ca.crt')}",
                "--peer-client-cert-auth=true",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        etcd_context = ssl.create_default_context(cafile=str(pki.path("etcd-ca.crt")))
        etcd_pair = pki.pair("apiserver-etcd-client")
        etcd_context.load_cert_chain(str(etcd_pair.cert), str(etcd_pair.key))
        self._wait_http("etcd", f"{etcd_client}/health", etcd_context, '"health":"true"')
        self._mark("etcd", started)

        # kube-apiserver --------------------------------------------------------------------
        apiserver = pki.pair("apiserver")
        proxy = pki.pair("front-proxy-client")
        self._spawn(
            "kube-apiserver",
            binaries["kube-apiserver"],
            [
                f"--etcd-servers={etcd_client}",
                f"--etcd-cafile={pki.path('etcd-ca.crt')}",
                f"--etcd-certfile={etcd_pair.cert}",
                f"--etcd-keyfile={etcd_pair.key}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={apiserver.cert}",
                f"--tls-private-key-file={apiserver.key}",
                f"--client-ca-file={ca}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.path('sa.pub')}",
                f"--service-account-signing-key-file={pki.path('sa.key')}",
                "--authorization-mode=Node,RBAC",
                # kata-deploy and other node agents of the stack run privileged; PodSecurity
                # admission (on by default) still refuses them in restricted namespaces
                "--allow-privileged=true",
                f"--requestheader-client-ca-file={pki.path('front-proxy-ca.crt')}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
                f"--proxy-client-cert-file={proxy.cert}",
                f"--proxy-client-key-file={proxy.key}",
                "--profiling=false",
            ],
        )
        self._wait_http("kube-apiserver", f"{self.server}/readyz", self.api.context, "ok")
        self._mark("kube-apiserver", started)

        # controller manager, scheduler, kwok -----------------------------------------------
        kcm_kubeconfig = self.dir / "controller-manager.kubeconfig"
        self._spawn(
            "kube-controller-manager",
            binaries["kube-controller-manager"],
            [
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.ports['controller-manager']}",
                f"--cert-dir={self.dir / 'controller-manager-certs'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.path('sa.key')}",
                f"--root-ca-file={ca}",
                f"--cluster-signing-cert-file={ca}",
                f"--cluster-signing-key-file={pki.path('ca.key')}",
                f"--flex-volume-plugin-dir={self.dir / 'flexvolume'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
                "--profiling=false",
            ],
        )
        sched_kubeconfig = self.dir / "scheduler.kubeconfig"
        self._spawn(
            "kube-scheduler",
            binaries["kube-scheduler"],
            [
                f"--kubeconfig={sched_kubeconfig}",
                f"--authentication-kubeconfig={sched_kubeconfig}",
                f"--authorization-kubeconfig={sched_kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.ports['scheduler']}",
                f"--cert-dir={self.dir / 'scheduler-certs'}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        kwok_config = self.dir / "kwok.yaml"
        kwok_config.write_text(self._kwok_config(binaries["kwok-stages"]))
        self._spawn(
            "kwok",
            binaries["kwok"],
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={kwok_config}",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--server-address={LOOPBACK}:{self.ports['kwok']}",
                f"--cidr={POD_CIDR}",
                f"--node-ip={LOOPBACK}",
                # kwok renews a Lease per node: what keeps the nodes Ready (the heartbeat stage
                # with leases updates node conditions only every 10 minutes); kwokctl's value
                "--node-lease-duration-seconds=40",
            ],
        )
        # the secure ports of the controller manager and scheduler answer /healthz without
        # authentication (--authorization-always-allow-paths); their certificates are
        # self-signed in memory, so only the answer is checked, not the certificate
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        self._wait_http(
            "kube-controller-manager",
            f"https://{LOOPBACK}:{self.ports['controller-manager']}/healthz",
            insecure,
            "ok",
        )
        self._wait_http(
            "kube-scheduler",
            f"https://{LOOPBACK}:{self.ports['scheduler']}/healthz",
            insecure,
            "ok",
        )
        self._wait_http("kwok", f"http://{LOOPBACK}:{self.ports['kwok']}/healthz", None, "ok")
        # pods need their namespace's `default` ServiceAccount (ServiceAccount admission):
        # created by the controller manager once its controllers run
        wait_for(
            "the default ServiceAccount (kube-controller-manager)",
            lambda: self.api.get("/api/v1/namespaces/default/serviceaccounts/default"),
            self.timeout,
            check=self.check_processes,
        )
        self._mark("controllers", started)

        if self.storage:
            self._add_storage()
        if self.nodes:
            self.add_nodes(self.nodes)
        self._mark("nodes", started)
        self._save_pids()

    def _choose_ports(self) -> None:
        names = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok")
        saved: dict[str, int] = {}
        ports_file = self.dir / "ports.json"
        with contextlib.suppress(FileNotFoundError, ValueError):
            saved = json.loads(ports_file.read_text())
        # keep a restarted cluster's ports (its kubeconfig stays valid) where still free
        ports = _free_ports(len(names), [saved.get(n, 0) for n in names])
        self.ports = dict(zip(names, ports, strict=True))
        self._api = None
        ports_file.write_text(json.dumps(self.ports, indent=2))

    def _kwok_config(self, kwok_stages: Path) -> str:
        """kwok's default node and pod Stages (node-initialize, node-heartbeat-with-lease,
        pod-ready, pod-complete, pod-delete), printed by kwok-stages from kwok's own embeds."""
        return subprocess.run([str(kwok_stages)], check=True, capture_output=True, text=True).stdout

    def _spawn(self, name: str, binary: Path, args: list[str]) -> None:
        log = self.logs / f"{name}.log"
        argv = [str(binary), *args]
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        env["NO_PROXY"] = env["no_proxy"] = ",".join(
            x for x in (env.get("NO_PROXY"), LOOPBACK, "localhost") if x
        )
        with open(log, "ab") as out:
            out.write(f"\n==> {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the harness, which stops them in order
                preexec_fn=_die_with_parent_hook() if self.die_with_parent else None,
            )
        self.processes.append(_Process(name, argv, log, popen.pid, _start_time(popen.pid), popen))
        self._save_pids()

    def _save_pids(self) -> None:
        saved = {
            "ports": self.ports,
            "kubeconfig": str(self.kubeconfig),
            "processes": [
                {
                    "name": p.name,
                    "pid": p.pid,
                    "start_time": p.start_time,
                    "argv": p.argv,
                    "log": str(p.log),
                }
                for p in self.processes
            ],
        }
        self.pids_file.write_text(json.dumps(saved, indent=2))

    def _wait_http(self, name: str, url: str, context: ssl.SSLContext | None, expect: str) -> None:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

        def probe() -> bool:
            with opener.open(url, timeout=5) as response:
                return expect in response.read().decode(errors="replace")

        wait_for(f"{name} ({url})", probe, self.timeout, check=self.check_processes)

    def _add_storage(self) -> None:
        """Default StorageClass `standard` (no provisioner, Immediate binding) and local
        PersistentVolumes pinned to the first worker node: a claim binds at once."""
        workers = [n for n in self.nodes if labels.WORKER in n.labels] or self.nodes
        if not workers:
            raise ClusterError("storage needs a node to pin its volumes to: add a worker node")
        node = workers[0].name
        self.api.create(
            "/apis/storage.k8s.io/v1/storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                    "labels": {LOCAL_PV_LABEL: "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "Immediate",
                "reclaimPolicy": "Retain",
            },
            exist_ok=True,
        )
        for i, size in enumerate(PV_SIZES):
            name = f"local-{i}-{size.lower()}"
            self.api.create(
                "/api/v1/persistentvolumes",
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "labels": {LOCAL_PV_LABEL: "true"}},
                    "spec": {
                        "capacity": {"storage": size},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": STORAGE_CLASS,
                        "volumeMode": "Filesystem",
                        # nothing is ever mounted: kwok runs no kubelet
                        "local": {"path": f"/var/lib/coco-local/{name}"},
                        "nodeAffinity": {
                            "required": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "kubernetes.io/hostname",
                                                "operator": "In",
                                                "values": [node],
                                            }
                                        ]
                                    }
                                ]
                            }
                        },
                    },
                },
                exist_ok=True,
            )


# ---------------------------------------------------------------------------------------------
# CLI


def _up(args: argparse.Namespace) -> int:
    nodes = nodes_from_spec(args.nodes)
    cluster = Cluster(
        args.dir,
        nodes=nodes,
        storage=not args.no_storage,
        build_missing=args.build,
        die_with_parent=not args.detach,
        timeout=args.timeout,
    )
    stopping = False

    def terminate(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    try:
        cluster.start()
    except KeyboardInterrupt:
        print("interrupted; stopped", file=sys.stderr)
        return 130
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"cluster ready in {cluster.ready_seconds:.1f} s ({cluster.server}, Kubernetes "
        f"{KUBERNETES_VERSION}, nodes: {', '.join(n.name for n in nodes) or 'none'}); "
        f"logs in {cluster.logs}",
        file=sys.stderr,
    )
    print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
    if args.detach:
        cluster.detach()
        print(
            f"detached; stop with: python3 tools/cluster.py down --dir {cluster.dir}",
            file=sys.stderr,
        )
        return 0
    print("Ctrl-C stops it", file=sys.stderr)
    code = 0
    try:
        while True:
            cluster.check_processes()
            if cluster.storage:
                with contextlib.suppress(ApiError, OSError):
                    cluster.recycle_volumes()
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    print("stopping", file=sys.stderr)
    cluster.stop()
    return code


def _down(args: argparse.Namespace) -> int:
    try:
        cluster = Cluster.attach(args.dir)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    running = [p.name for p in cluster.processes if p.running()]
    cluster.stop()
    print(f"stopped {', '.join(running) or 'nothing (no process was running)'}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/cluster.py",
        description="A Kubernetes control plane on loopback with kwok (fake) nodes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster; stays in the foreground until Ctrl-C")
    up.add_argument("--dir", type=Path, required=True, help="state, certificates, logs")
    up.add_argument(
        "--nodes",
        default="worker,snp,tdx",
        help=f"comma-separated KIND[:COUNT], kinds {', '.join(PRESETS)}; '' for none "
        "(default: worker,snp,tdx)",
    )
    up.add_argument("--no-storage", action="store_true", help="no default StorageClass and PVs")
    up.add_argument("--detach", action="store_true", help="leave it running (pids in DIR)")
    up.add_argument(
        "--build", action="store_true", help=f"build missing binaries first ({BUILD_COMMAND})"
    )
    up.add_argument("--timeout", type=float, default=180, help="seconds to wait for each step")
    down = sub.add_parser("down", help="stop a cluster started with up --detach")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "up":
        return _up(args)
    return _down(args)


if __name__ == "__main__":
    sys.exit(main())
