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
        issues, client = check(spec_for("snp", "n2d-standard-2", zone="europe-west4-a",
                                        mode="nodes"))
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
        zone lacks (SEV-SNP on GCP is a nodes pool: snp peer pods are refused by the spec)."""
        issues, _ = check(spec_for("snp", "n2d-standard-2", zone="europe-west4-c", mode="nodes"))
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
        issues, _ = check(spec_for("sev", "n2d-standard-224", zone="europe-west4-a"))
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
            preflight.live_check(spec_for("sev", "n2d-standard-2", zone="europe-west4-a"))
        assert info.value.cloud == "gcp" and "application-default login" in info.value.hint

    def test_no_gcp_pools_no_calls(self):
        spec, _ = validate(
            {"coco:nodePools": [{"name": "b", "tee": "snp", "nodeSelector": {"a": "b"}}]},
            stack="t",
        )
        assert preflight.live_check(spec, client=None) == []


class FakeResponse:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self._body = body

    def json(self) -> Any:
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


class FakeOrgPolicy:
    """The HTTP transport of the Org Policy read: answers one canned response (or raises, as
    requests does when the API cannot be reached) and records the URLs asked."""

    def __init__(self, status: int = 200, body: Any = None, error: Exception | None = None,
                 by_constraint: dict[str, tuple[int, Any]] | None = None):
        self.response = FakeResponse(status, body)
        self.error = error
        # answers for one constraint's URL (policies/<constraint>:getEffectivePolicy)
        self.by_constraint = {c: FakeResponse(*a) for c, a in (by_constraint or {}).items()}
        self.urls: list[str] = []

    def get(self, url: str, timeout: float) -> FakeResponse:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        for constraint, response in self.by_constraint.items():
            if f"/policies/{constraint}:" in url:
                return response
        return self.response


# Effective-policy answers shaped as the Org Policy API v2 Policy resource (PolicySpec.rules[]
# with enforce / condition; cloud.google.com/resource-manager/docs/reference/orgpolicy/rest/v2/
# organizations.policies#Policy). Written by hand from that reference, not recorded.
NAME = f"projects/{PROJECT}/policies/iam.disableServiceAccountKeyCreation"
ENFORCED = {"name": NAME, "spec": {"rules": [{"enforce": True}]}}
NOT_ENFORCED = {"name": NAME, "spec": {"rules": [{"enforce": False}]}}
UNSET = {"name": NAME, "spec": {}}
CONDITIONAL = {"name": NAME, "spec": {"rules": [
    {"enforce": True, "condition": {"expression": "resource.matchTag('123/env', 'prod')"}},
    {"enforce": False}]}}
DENIED = {"error": {"code": 403, "status": "PERMISSION_DENIED",
                    "message": "Permission 'orgpolicy.policy.get' denied on resource"}}


class TestServiceAccountKeyPolicy:
    """CAA v0.22.0 needs a service-account key on GCP; where iam.disableServiceAccountKeyCreation
    is enforced `pulumi up` would fail late: --live reads the effective policy first."""

    def _check(self, transport: FakeOrgPolicy, mode: str = "peer-pods") -> list[ConfigIssue]:
        spec = spec_for("sev", "n2d-standard-2", zone="europe-west4-a", mode=mode)
        return preflight.live_check(spec, client=RecordedCompute(), org_policy=transport)

    def _policy_issues(self, issues: list[ConfigIssue]) -> list[ConfigIssue]:
        return [i for i in issues if "disableServiceAccountKeyCreation" in i.message]

    def test_enforced_is_an_error_before_anything_exists(self):
        transport = FakeOrgPolicy(200, ENFORCED)
        (issue,) = self._policy_issues(self._check(transport))
        assert issue.severity == "error" and issue.path == "coco:cluster.project"
        assert "is enforced on project 'my-coco-project'" in issue.message
        assert "coco:nodePools[0]" in issue.message
        assert ("gcloud resource-manager org-policies disable-enforce "
                "iam.disableServiceAccountKeyCreation --project=my-coco-project") in issue.hint
        assert transport.urls[0] == (
            "https://orgpolicy.googleapis.com/v2/projects/my-coco-project/policies/"
            "iam.disableServiceAccountKeyCreation:getEffectivePolicy")

    @pytest.mark.parametrize("body", [NOT_ENFORCED, UNSET], ids=["enforce-false", "unset"])
    def test_not_enforced_is_quiet(self, body):
        assert self._policy_issues(self._check(FakeOrgPolicy(200, body))) == []

    def test_conditional_enforcement_warns(self):
        (issue,) = self._policy_issues(self._check(FakeOrgPolicy(200, CONDITIONAL)))
        assert issue.severity == "warning" and "under a condition" in issue.message

    def test_permission_denied_is_a_clear_warning(self):
        (issue,) = self._policy_issues(self._check(FakeOrgPolicy(403, DENIED)))
        assert issue.severity == "warning"
        assert "PERMISSION_DENIED" in issue.message and "orgpolicy.policy.get" in issue.message
        assert ("gcloud org-policies describe iam.disableServiceAccountKeyCreation --effective "
                "--project=my-coco-project") in issue.hint

    def test_unreachable_is_a_clear_warning(self):
        import requests

        transport = FakeOrgPolicy(error=requests.ConnectionError("no route"))
        (issue,) = self._policy_issues(self._check(transport))
        assert issue.severity == "warning"
        assert "could not be reached (ConnectionError)" in issue.message

    def test_other_http_error_named(self):
        (issue,) = self._policy_issues(self._check(FakeOrgPolicy(
            500, {"error": {"status": "INTERNAL"}})))
        assert "HTTP 500 INTERNAL" in issue.message

    def test_nodes_pools_need_no_key(self):
        transport = FakeOrgPolicy(200, ENFORCED)
        assert self._policy_issues(self._check(transport, mode="nodes")) == []
        assert transport.urls == []

    def test_no_key_material_in_the_report(self):
        for body in (ENFORCED, CONDITIONAL, DENIED):
            for issue in self._check(FakeOrgPolicy(200 if body is not DENIED else 403, body)):
                assert "private_key" not in issue.render()


# compute.vmExternalIpAccess is a list constraint: its Org Policy API v2 effective policy carries
# rules with allowAll / denyAll / values.allowedValues / values.deniedValues, optionally under a
# condition (PolicySpec.PolicyRule, cloud.google.com/resource-manager/docs/reference/orgpolicy/
# rest/v2/organizations.policies#PolicyRule). Written by hand from that reference, not recorded.
IP_NAME = f"projects/{PROJECT}/policies/compute.vmExternalIpAccess"
IP_DENY_ALL = {"name": IP_NAME, "spec": {"rules": [{"denyAll": True}]}}
IP_ALLOW_LIST = {"name": IP_NAME, "spec": {"rules": [{"values": {"allowedValues": [
    f"projects/{PROJECT}/zones/europe-west4-a/instances/bastion"]}}]}}
IP_ALLOW_ALL = {"name": IP_NAME, "spec": {"rules": [{"allowAll": True}]}}
IP_DENY_LIST = {"name": IP_NAME, "spec": {"rules": [{"values": {"deniedValues": [
    f"projects/{PROJECT}/zones/europe-west4-a/instances/old-vm"]}}]}}
IP_UNSET = {"name": IP_NAME, "spec": {}}
IP_CONDITIONAL = {"name": IP_NAME, "spec": {"rules": [
    {"denyAll": True, "condition": {"expression": "resource.matchTag('123/env', 'prod')"}},
    {"allowAll": True}]}}
IP_URL = ("https://orgpolicy.googleapis.com/v2/projects/my-coco-project/policies/"
          "compute.vmExternalIpAccess:getEffectivePolicy")


class TestExternalIpPolicy:
    """CAA v0.22.0 gives every GCP pod VM an external IP (provider.go CreateInstance: AccessConfig
    "External NAT"); where compute.vmExternalIpAccess denies it, every pod VM creation fails at
    run time, after `pulumi up`: --live reads the effective policy before anything is created."""

    def _check(self, body: Any, status: int = 200, mode: str = "peer-pods",
               ) -> tuple[list[ConfigIssue], FakeOrgPolicy]:
        transport = FakeOrgPolicy(200, NOT_ENFORCED,
                                  by_constraint={"compute.vmExternalIpAccess": (status, body)})
        spec = spec_for("tdx", "c3-standard-4", zone="us-central1-b", region="us-central1",
                        mode=mode)
        issues = preflight.live_check(spec, client=RecordedCompute(), org_policy=transport)
        return [i for i in issues if "vmExternalIpAccess" in i.message], transport

    def test_deny_all_is_an_error_before_anything_exists(self):
        (issue,), transport = self._check(IP_DENY_ALL)
        assert IP_URL in transport.urls
        assert issue.severity == "error" and issue.path == "coco:cluster.project"
        assert "denies external IPs to every VM" in issue.message
        assert "'my-coco-project'" in issue.message and "coco:nodePools[0]" in issue.message
        assert '"External NAT"' in issue.message and "after `pulumi up`" in issue.message
        assert "allowAll" in issue.hint and "project my-coco-project" in issue.hint
        assert "98b37c7d" in issue.hint

    def test_allow_list_is_an_error_pod_vms_cannot_be_listed(self):
        (issue,), _ = self._check(IP_ALLOW_LIST)
        assert issue.severity == "error"
        assert "allows external IPs only to the VM instances it lists" in issue.message

    @pytest.mark.parametrize("body", [IP_UNSET, IP_ALLOW_ALL, IP_DENY_LIST],
                             ids=["unset", "allow-all", "deny-list"])
    def test_unset_or_allowing_is_quiet(self, body):
        issues, transport = self._check(body)
        assert issues == [] and IP_URL in transport.urls

    def test_conditional_deny_warns(self):
        (issue,), _ = self._check(IP_CONDITIONAL)
        assert issue.severity == "warning" and "under a condition" in issue.message

    def test_permission_denied_is_a_clear_warning(self):
        (issue,), _ = self._check(DENIED, status=403)
        assert issue.severity == "warning" and "PERMISSION_DENIED" in issue.message
        assert ("gcloud org-policies describe compute.vmExternalIpAccess --effective "
                "--project=my-coco-project") in issue.hint

    def test_nodes_pools_do_not_ask(self):
        issues, transport = self._check(IP_DENY_ALL, mode="nodes")
        assert issues == [] and transport.urls == []
