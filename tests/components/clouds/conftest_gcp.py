"""GCP test support: what real providers would compute for the GCP resources and invokes the
stack registers, so tests can follow ids, emails and keys from resource outputs."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import patch_provider_outputs

PROJECT = "my-coco-project"
ENDPOINT = "203.0.113.10"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----\n").decode()
# a service-account key file as the IAM API returns it (the private key is a marker string)
KEY_MATERIAL = "GCP-KEY-MATERIAL-DO-NOT-LEAK"
KEY_FILE = json.dumps(
    {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123abcd",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{KEY_MATERIAL}\n-----END PRIVATE KEY-----\n",
        "client_email": f"caa@{PROJECT}.iam.gserviceaccount.com",
    },
    sort_keys=True,
)
# The GuestImage build's stdout (`coco image build --json`, images/report.py) in tests
BUILT = {
    "artifacts": {
        "disk.raw": {"sha256": "a" * 64, "size": 1},
        "disk.raw.tar.gz": {"sha256": "b" * 64, "size": 1},
    },
    "dm_verity": {"root_hash": "r" * 64},
    "reference_values": {"snp_launch_measurement": ["m" * 96], "tpm_pcr11": ["p" * 64]},
}
# An existing cluster as gcp.container.getCluster and gcp.compute.getSubnetwork return it
ATTACHED = {
    "name": "prod-gke",
    "endpoint": "198.51.100.7",
    "masterAuths": [{"clusterCaCertificate": CA}],
    "network": f"projects/{PROJECT}/global/networks/prod-vpc",
    "subnetwork": f"projects/{PROJECT}/regions/europe-west4/subnetworks/prod-nodes",
}
ATTACHED_SUBNET = {
    "id": ATTACHED["subnetwork"],
    "ipCidrRange": "10.64.0.0/20",
}


def gcp_outputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """Provider-computed state of the GCP resources (and the image build) the stack creates."""
    if typ == "gcp:serviceaccount/account:Account":
        email = f"{inputs['accountId']}@{inputs['project']}.iam.gserviceaccount.com"
        name = f"projects/{inputs['project']}/serviceAccounts/{email}"
        return {**inputs, "email": email, "name": name}
    if typ == "gcp:serviceaccount/key:Key":
        return {**inputs, "privateKey": base64.b64encode(KEY_FILE.encode()).decode()}
    if typ == "gcp:container/cluster:Cluster":
        return {**inputs, "endpoint": ENDPOINT, "masterAuth": {"clusterCaCertificate": CA}}
    if typ == "gcp:projects/iAMCustomRole:IAMCustomRole":
        return {**inputs, "name": f"projects/{inputs['project']}/roles/{inputs['roleId']}"}
    if typ == "command:local:Command":
        return {**inputs, "stdout": json.dumps(BUILT)}
    return None


class _InvokeMocks:
    """Answers the getCluster / getSubnetwork invokes of attach mode; the rest as before."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def new_resource(self, args: Any) -> Any:
        return self.inner.new_resource(args)

    def call(self, args: Any) -> Any:
        self.calls.append(args.token)
        if args.token == "gcp:container/getCluster:getCluster":
            return {**dict(args.args), **ATTACHED}
        if args.token == "gcp:compute/getSubnetwork:getSubnetwork":
            return {**dict(args.args), **ATTACHED_SUBNET}
        return self.inner.call(args)


def install(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make later renders use provider outputs for GCP resources and answer attach-mode invokes;
    returns the list of invoke tokens called (filled in while a render runs)."""
    patch_provider_outputs(monkeypatch, gcp_outputs)
    import pulumi.runtime.mocks as mocks

    patched = mocks.set_mocks
    calls: list[str] = []

    def set_mocks(the_mocks: Any, *a: Any, **kw: Any) -> None:
        wrapped = _InvokeMocks(the_mocks)
        wrapped.calls = calls
        if kw.get("monitor") is not None:
            kw["monitor"].mocks = wrapped
        patched(wrapped, *a, **kw)

    monkeypatch.setattr(mocks, "set_mocks", set_mocks)
    return calls
