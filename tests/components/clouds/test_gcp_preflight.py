"""`coco check --live` for GCP (components.gcp.preflight) against Compute Engine responses
loaded with the SDK's own message classes (fixtures/gcp/README.md says where they come from)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from google.cloud import compute_v1

from components.gcp import preflight
from spec.errors import ConfigIssue, NoCredentials
from spec.validate import validate

FIXTURES = Path(__file__).parent / "fixtures" / "gcp"
PROJECT = "my-coco-project"


class RecordedCompute:
    """ComputeApi answering from the fixtures; records what was asked."""

    default_project: str | None = None

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def machine_types(self, project: str, machine_type: str) -> Iterable[Any]:
        self.asked.append((project, machine_type))
        path = FIXTURES / f"machine_types_{machine_type}.json"
        if not path.exists():  # the API's answer for a name no zone has: every scope warns
            return [compute_v1.MachineTypeAggregatedList.from_json('{"items": {}}')]
        return [compute_v1.MachineTypeAggregatedList.from_json(path.read_text())]

    def zones(self, project: str) -> Iterable[Any]:
        self.asked.append((project, "zones"))
        return [compute_v1.ZoneList.from_json((FIXTURES / "zones.json").read_text())]


def spec_for(tee: str, machine: str, *, zone: str | None = None, region: str | None = None,
             mode: str = "peer-pods") -> Any:
    cluster: dict[str, Any] = {"provider": "gke", "project": PROJECT}
    pool: dict[str, Any] = {"name": "p", "tee": tee, "mode": mode, "instanceType": machine}
    if mode == "peer-pods":
        cluster["zone"] = zone
    else:
        cluster["region"] = region or "europe-west4"
        if zone:
            pool["zone"] = zone
    config = {"coco:cluster": cluster, "coco:nodePools": [pool], "coco:image": {"recipe": "podvm"}}
    if mode == "nodes":
        del config["coco:image"]
    spec, _ = validate(config, stack="t")
    return spec


def check(spec: Any) -> tuple[list[ConfigIssue], RecordedCompute]:
    client = RecordedCompute()
    return preflight.live_check(spec, client=client), client


class TestFixtures:
    """The recorded responses have the SDK's shapes (from_json refuses unknown fields)."""

    def test_shapes(self):
        from google.protobuf.json_format import ParseError

        with pytest.raises(ParseError):
            compute_v1.ZoneList.from_json('{"itemz": []}')
        zones = preflight.cpu_platforms(RecordedCompute().zones(PROJECT))
        assert "AMD Milan" in zones["europe-west4-a"]
        assert "AMD Milan" not in zones["europe-west4-c"]


class TestMachineTypeOffered:
    def test_offered_type_and_platform(self):
        issues, client = check(spec_for("snp", "n2d-standard-2", zone="europe-west4-a"))
        assert issues == []
        assert (PROJECT, "n2d-standard-2") in client.asked

    def test_tdx_offered(self):
        issues, _ = check(spec_for("tdx", "c3-standard-4", zone="us-central1-b"))
        assert issues == []

    def test_zone_without_the_type(self):
        """c3-standard-4 is not offered in europe-west4-c: error on the zone, listing zones of
        the region that have it."""
        issues, _ = check(spec_for("tdx", "c3-standard-4", zone="europe-west4-c"))
        (issue,) = issues
        assert issue.path == "coco:nodePools[0].zone" and issue.severity == "error"
        assert issue.message == "'c3-standard-4' is not offered in europe-west4-c"
        assert "europe-west4-a, europe-west4-b" in issue.hint
        assert "us-central1" in issue.hint

    def test_zone_without_the_cpu_platform(self):
        """n2d-standard-2 exists in europe-west4-c, but SEV-SNP needs AMD Milan, which that
        zone lacks."""
        issues, _ = check(spec_for("snp", "n2d-standard-2", zone="europe-west4-c"))
        (issue,) = issues
        assert issue.path == "coco:nodePools[0].zone"
        assert "does not offer the AMD Milan CPU platform" in issue.message
        assert "europe-west4-a, europe-west4-b" in issue.hint
        assert "europe-west4-c" not in issue.hint

    def test_sev_needs_no_platform(self):
        issues, _ = check(spec_for("sev", "n2d-standard-2", zone="europe-west4-c"))
        assert issues == []

    def test_region_only_nodes_pool(self):
        """A nodes pool without a zone is fine when some zone of its region fits."""
        issues, _ = check(spec_for("snp", "n2d-standard-2", region="europe-west4", mode="nodes"))
        assert issues == []

    def test_unknown_type(self):
        issues, _ = check(spec_for("snp", "n2d-standard-224", zone="europe-west4-a"))
        (issue,) = issues
        assert issue.path == "coco:nodePools[0].instanceType"
        assert "not offered in any zone" in issue.message


class TestCredentials:
    def test_no_credentials(self, monkeypatch):
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        def no_credentials(*a: Any, **k: Any) -> Any:
            raise DefaultCredentialsError("none")

        monkeypatch.setattr(google.auth, "default", no_credentials)
        with pytest.raises(NoCredentials) as info:
            preflight.live_check(spec_for("snp", "n2d-standard-2", zone="europe-west4-a"))
        assert info.value.cloud == "gcp" and "application-default login" in info.value.hint

    def test_no_gcp_pools_no_calls(self):
        spec, _ = validate(
            {"coco:nodePools": [{"name": "b", "tee": "snp", "nodeSelector": {"a": "b"}}]},
            stack="t",
        )
        assert preflight.live_check(spec, client=None) == []
