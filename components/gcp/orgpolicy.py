"""`coco check --live` for GCP: may the stack create the service-account key CAA needs?

cloud-api-adaptor v0.22.0 starts on GCP only with a service-account key (components.gcp.peerpods
explains why), and the organisation policy constraint `iam.disableServiceAccountKeyCreation`,
enforced by default in organisations created since 2024-05-03 ("secure by default", Google Cloud
docs "Organization policy constraints for IAM": Disable service account key creation), refuses
to create one: `pulumi up` would fail late, after the cluster and the image exist. This reads the
project's effective policy before anything is created and says so, with what an administrator
runs to exempt the project (docs/gcp.md).

The read: Org Policy API v2 `projects.policies.getEffectivePolicy`
(GET https://orgpolicy.googleapis.com/v2/projects/<project>/policies/<constraint>
:getEffectivePolicy, cloud.google.com/resource-manager/docs/reference/orgpolicy/rest/v2/
projects.policies/getEffectivePolicy), over google-auth's AuthorizedSession with the credentials
the Compute preflight already has; no extra client library (google-cloud-org-policy 1.19 needs
protobuf >= 6.33, which the Pulumi SDKs here cannot take). A boolean constraint's effective
policy is a `spec.rules` list whose rules carry `enforce`, optionally under a `condition` (tags).

It also reads the list constraint `compute.vmExternalIpAccess` (which VM instances may have an
external IP): cloud-api-adaptor v0.22.0 gives every pod VM one (CreateInstance in
src/cloud-providers/gcp/provider.go@v0.22.0 always adds the AccessConfig "External NAT"; upstream
dropped it after v0.22.0 in commit 98b37c7d "gcp: avoid creating public IPs when not used").
Where the effective policy denies all values, or allows only listed instances (an allow-list
names instances, and pod VMs get new names), every pod VM creation fails when a pod starts,
long after `pulumi up` succeeded. A list constraint's effective policy is a `spec.rules` list
whose rules carry `allowAll`, `denyAll` or `values` (`allowedValues` / `deniedValues`),
optionally under a `condition` (PolicySpec.PolicyRule, cloud.google.com/resource-manager/docs/
reference/orgpolicy/rest/v2/organizations.policies#PolicyRule).

Non-goals: the newer managed constraint `iam.managed.disableServiceAccountKeyCreation` (its name
and behaviour are unverified here); changing any policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from spec.errors import ConfigIssue

CONSTRAINT = "iam.disableServiceAccountKeyCreation"
EXTERNAL_IP = "compute.vmExternalIpAccess"
API = "https://orgpolicy.googleapis.com/v2"
TIMEOUT = 20  # seconds per request


@dataclass(frozen=True)
class Verdict:
    """What the effective policy says: "enforced", "conditional", "not-enforced" or
    "unknown" (with why: the read was refused or failed)."""

    state: str
    why: str = ""


class Response(Protocol):
    status_code: int

    def json(self) -> Any: ...


class Session(Protocol):
    """The one call made: requests' Session.get (google-auth's AuthorizedSession is one)."""

    def get(self, url: str, timeout: float) -> Response: ...


class GoogleSession:
    """Session over google-auth's AuthorizedSession (requests) with the given credentials."""

    def __init__(self, credentials: Any) -> None:
        from google.auth.transport.requests import AuthorizedSession

        self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]

    def get(self, url: str, timeout: float) -> Response:
        response: Response = self._session.get(url, timeout=timeout)
        return response


def read_verdict(policy: dict[str, Any]) -> Verdict:
    """Interpret a getEffectivePolicy answer for a boolean constraint."""
    rules = (policy.get("spec") or {}).get("rules") or []
    if any(r.get("enforce") is True and not r.get("condition") for r in rules):
        return Verdict("enforced")
    if any(r.get("enforce") is True for r in rules):
        return Verdict("conditional")
    return Verdict("not-enforced")


def read_list_verdict(policy: dict[str, Any]) -> Verdict:
    """Interpret a getEffectivePolicy answer for compute.vmExternalIpAccess: "enforced" when an
    unconditional rule denies all values or allows only listed instances (why says which);
    "conditional" when such a rule has a condition; else "not-enforced" (unset, allowAll, or
    only deniedValues, which name existing instances, never a new pod VM)."""
    rules = (policy.get("spec") or {}).get("rules") or []

    def blocks(rule: dict[str, Any]) -> str:
        if rule.get("denyAll") is True:
            return "denies external IPs to every VM"
        if not rule.get("allowAll") and ((rule.get("values") or {}).get("allowedValues")):
            return "allows external IPs only to the VM instances it lists"
        return ""

    blocking = [(bool(rule.get("condition")), why) for rule in rules if (why := blocks(rule))]
    for conditional, why in blocking:
        if not conditional:
            return Verdict("enforced", why)
    if blocking:
        return Verdict("conditional", blocking[0][1])
    return Verdict("not-enforced")


def effective(
    session: Session,
    project: str,
    constraint: str = CONSTRAINT,
    reader: Callable[[dict[str, Any]], Verdict] = read_verdict,
) -> Verdict:
    """The project's effective policy for `constraint`, interpreted by `reader`; never raises
    for an HTTP or network failure (the preflight reports "unknown" with the reason)."""
    url = f"{API}/projects/{project}/policies/{constraint}:getEffectivePolicy"
    try:
        response = session.get(url, timeout=TIMEOUT)
    except Exception as exc:  # network, TLS, token refresh: report, do not crash the check
        return Verdict("unknown", f"the Org Policy API could not be reached ({type(exc).__name__})")
    if response.status_code == 200:
        try:
            return reader(response.json())
        except ValueError:
            return Verdict("unknown", "the Org Policy API answered with something not JSON")
    try:
        error = response.json().get("error", {})
        status, message = error.get("status", ""), error.get("message", "")
    except (ValueError, AttributeError):
        status, message = "", ""
    if response.status_code == 403:
        return Verdict(
            "unknown",
            "reading it was refused (PERMISSION_DENIED: the caller needs orgpolicy.policy.get "
            "on the project, e.g. roles/orgpolicy.policyViewer"
            + (", and the Org Policy API orgpolicy.googleapis.com enabled" if "SERVICE_DISABLED"
               in str(message).upper() or "has not been used" in str(message) else "")
            + ")",
        )
    return Verdict("unknown", f"the Org Policy API answered HTTP {response.status_code}"
                   + (f" {status}" if status else ""))


def issues(verdict: Verdict, project: str, pool_index: int) -> list[ConfigIssue]:
    """The report for a stack with gcp peer-pods pools (the first at `pool_index`)."""
    path = "coco:cluster.project"
    exempt = (
        "ask an organisation policy administrator (roles/orgpolicy.policyAdmin) to exempt the "
        f"project: gcloud resource-manager org-policies disable-enforce {CONSTRAINT} "
        f"--project={project} (docs/gcp.md, 'Service-account keys and the organisation policy')"
    )
    if verdict.state == "enforced":
        return [ConfigIssue(
            path,
            f"the organisation policy {CONSTRAINT} is enforced on project {project!r}: the "
            f"service-account key cloud-api-adaptor needs for coco:nodePools[{pool_index}] "
            "cannot be created, and `pulumi up` would stop there",
            exempt,
        )]
    if verdict.state == "conditional":
        return [ConfigIssue(
            path,
            f"the organisation policy {CONSTRAINT} is enforced under a condition on project "
            f"{project!r}: creating cloud-api-adaptor's service-account key may be refused",
            exempt,
            "warning",
        )]
    if verdict.state == "unknown":
        return [ConfigIssue(
            path,
            f"could not read whether {CONSTRAINT} blocks cloud-api-adaptor's service-account "
            f"key in project {project!r}: {verdict.why}",
            f"check it yourself: gcloud org-policies describe {CONSTRAINT} --effective "
            f"--project={project}",
            "warning",
        )]
    return []


def external_ip_issues(verdict: Verdict, project: str, pool_index: int) -> list[ConfigIssue]:
    """The report on compute.vmExternalIpAccess for a stack with gcp peer-pods pools."""
    path = "coco:cluster.project"
    what = (
        "cloud-api-adaptor v0.22.0 gives every pod VM an external IP (AccessConfig "
        '"External NAT"), so creating the pod VMs of '
        f"coco:nodePools[{pool_index}] "
    )
    hint = (
        "ask an organisation policy administrator (roles/orgpolicy.policyAdmin) to allow external "
        f"IPs in project {project}: a project policy for {EXTERNAL_IP} with allowAll (docs/gcp.md, "
        "'External IPs of pod VMs and the organisation policy'), or wait for a cloud-api-adaptor "
        "release without the external IP (upstream commit 98b37c7d)"
    )
    if verdict.state == "enforced":
        return [ConfigIssue(
            path,
            f"the organisation policy {EXTERNAL_IP} on project {project!r} {verdict.why}: "
            f"{what}would fail each time a pod starts, after `pulumi up` succeeded",
            hint,
        )]
    if verdict.state == "conditional":
        return [ConfigIssue(
            path,
            f"the organisation policy {EXTERNAL_IP} on project {project!r} {verdict.why} under "
            f"a condition (tags): {what}may be refused",
            hint,
            "warning",
        )]
    if verdict.state == "unknown":
        return [ConfigIssue(
            path,
            f"could not read whether {EXTERNAL_IP} blocks the external IP cloud-api-adaptor gives "
            f"every pod VM in project {project!r}: {verdict.why}",
            f"check it yourself: gcloud org-policies describe {EXTERNAL_IP} --effective "
            f"--project={project}",
            "warning",
        )]
    return []
