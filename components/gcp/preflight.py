"""`coco check STACK --live` for GCP: is each GCP pool's machine type offered where it asks, and
does that zone offer the CPU platform its TEE needs?

Scope: every coco:nodePools[] entry with provider gcp. Two Compute Engine reads per project:
machineTypes.aggregatedList filtered by the pool's machine type (which zones offer it) and
zones.list (each zone's availableCpuPlatforms, e.g. "AMD Milan" for SEV-SNP). Problems come back
as ConfigIssues on the pool's key paths, with the zones that would work.
With gcp peer-pods pools it also reads whether the organisation policies
iam.disableServiceAccountKeyCreation (the key cloud-api-adaptor needs) and
compute.vmExternalIpAccess (the external IP CAA v0.22.0 gives every pod VM) block peer pods
(components.gcp.orgpolicy), with the same credentials.
Non-goals: quota, reservations, other org policies, whether the project has the APIs enabled
(an API error is raised, not turned into an issue).

All calls go through `ComputeApi`, so tests inject responses built with the SDK's own message
classes (compute_v1.MachineTypeAggregatedList, compute_v1.ZoneList).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from spec import catalogue
from spec.errors import ConfigIssue, NoCredentials
from spec.model import NodePool, Spec

from . import orgpolicy


class ComputeApi(Protocol):
    """The two Compute Engine reads the preflight makes (google-cloud-compute response types)."""

    default_project: str | None

    def machine_types(self, project: str, machine_type: str) -> Iterable[Any]:
        """Pages of compute_v1.MachineTypeAggregatedList for `name = "<machine_type>"`."""
        ...

    def zones(self, project: str) -> Iterable[Any]:
        """Pages of compute_v1.ZoneList."""
        ...


class GoogleCompute:
    """ComputeApi over google-cloud-compute with Application Default Credentials."""

    def __init__(self) -> None:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import compute_v1

        try:
            credentials, self.default_project = google.auth.default()
        except DefaultCredentialsError as exc:
            raise NoCredentials(
                "gcp",
                f"no Google Cloud credentials found ({exc.__class__.__name__})",
                "run: gcloud auth application-default login (or set "
                "GOOGLE_APPLICATION_CREDENTIALS to a key file)",
            ) from exc
        self.credentials = credentials
        self._machine_types = compute_v1.MachineTypesClient(credentials=credentials)
        self._zones = compute_v1.ZonesClient(credentials=credentials)
        self._compute_v1 = compute_v1

    def machine_types(self, project: str, machine_type: str) -> Iterable[Any]:
        request = self._compute_v1.AggregatedListMachineTypesRequest(
            project=project, filter=f'name = "{machine_type}"'
        )
        return self._machine_types.aggregated_list(request=request).pages

    def zones(self, project: str) -> Iterable[Any]:
        return self._zones.list(project=project).pages


@dataclass(frozen=True)
class Offer:
    """Where a machine type is offered and which CPU platforms each zone has."""

    zones: frozenset[str]  # zones offering the machine type
    platforms: dict[str, frozenset[str]]  # zone -> availableCpuPlatforms


def _region(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def offered_zones(pages: Iterable[Any], machine_type: str) -> frozenset[str]:
    """Zones whose scope in an aggregated list holds `machine_type` (scopes are "zones/<z>";
    a zone without it carries a NO_RESULTS_ON_PAGE warning and no machineTypes)."""
    found: set[str] = set()
    for page in pages:
        for scope, scoped in page.items.items():
            if any(m.name == machine_type for m in scoped.machine_types):
                found.add(scope.rsplit("/", 1)[-1])
    return frozenset(found)


def cpu_platforms(pages: Iterable[Any]) -> dict[str, frozenset[str]]:
    return {
        zone.name: frozenset(zone.available_cpu_platforms)
        for page in pages
        for zone in page.items
        if zone.status in ("", "UP")
    }


def _listing(zones: Iterable[str]) -> str:
    names = sorted(zones)
    return ", ".join(names) if names else "none"


def pool_issues(index: int, pool: NodePool, offer: Offer) -> list[ConfigIssue]:
    """What is wrong with one GCP pool, given what the project is offered."""
    p = f"coco:nodePools[{index}]"
    machine = pool.instance_type or ""
    offering = catalogue.find("gcp", pool.tee, pool.mode or "")
    platform = offering.platform.get("minCpuPlatform") if offering else None
    fits = {
        z for z in offer.zones if platform is None or platform in offer.platforms.get(z, ())
    }
    region = pool.region or (_region(pool.zone) if pool.zone else None)
    in_region = sorted(z for z in fits if region is None or _region(z) == region)
    elsewhere = sorted({_region(z) for z in fits} - {region})
    need = f"{machine}" + (f" on {platform}" if platform else "")
    hint = f"zones offering {need} in {region}: {_listing(in_region)}"
    if elsewhere:
        hint += f"; other regions: {_listing(elsewhere)}"
    if not offer.zones:
        return [
            ConfigIssue(
                f"{p}.instanceType",
                f"{machine!r} is not offered in any zone of the project",
                f"check the name, or use the catalogue default "
                f"{offering.default_size if offering else ''!r}",
            )
        ]
    if pool.zone is not None:
        if pool.zone not in offer.zones:
            return [ConfigIssue(f"{p}.zone", f"{machine!r} is not offered in {pool.zone}", hint)]
        if platform is not None and platform not in offer.platforms.get(pool.zone, ()):
            return [
                ConfigIssue(
                    f"{p}.zone",
                    f"{pool.zone} does not offer the {platform} CPU platform "
                    f"{catalogue.TEE_NAMES[pool.tee]} needs",
                    hint,
                )
            ]
        return []
    if region is not None and not in_region:
        return [ConfigIssue(f"{p}.region", f"no zone of {region} offers {need}", hint)]
    return []


def live_check(
    spec: Spec,
    *,
    client: ComputeApi | None = None,
    org_policy: orgpolicy.Session | None = None,
) -> list[ConfigIssue]:
    """Check every GCP pool of `spec` against the project's offer (see the module docstring).
    Raises NoCredentials when client is None and no Google credentials are configured.
    `org_policy`: the HTTP session the Org Policy read uses; None: an authorised session with
    the Compute credentials when client is None, else no org-policy read (tests of the rest)."""
    pools = [(i, p) for i, p in enumerate(spec.node_pools) if p.provider == "gcp"]
    if not pools:
        return []
    api: ComputeApi = client if client is not None else GoogleCompute()
    if org_policy is None and isinstance(api, GoogleCompute):
        org_policy = orgpolicy.GoogleSession(api.credentials)
    project = spec.cluster.project or api.default_project
    if project is None:
        return [
            ConfigIssue(
                "coco:cluster.project",
                "no GCP project to check the pools in",
                "set coco:cluster.project, or a default project: gcloud config set project ID",
            )
        ]
    platforms = cpu_platforms(api.zones(project))
    issues: list[ConfigIssue] = []
    zones_of: dict[str, frozenset[str]] = {}
    for index, pool in pools:
        machine = pool.instance_type or ""
        if machine not in zones_of:
            zones_of[machine] = offered_zones(api.machine_types(project, machine), machine)
        issues += pool_issues(index, pool, Offer(zones_of[machine], platforms))
    peer = [i for i, p in pools if p.mode == "peer-pods"]
    if peer and org_policy is not None:
        issues += orgpolicy.issues(orgpolicy.effective(org_policy, project), project, peer[0])
        external_ip = orgpolicy.effective(
            org_policy, project, orgpolicy.EXTERNAL_IP, orgpolicy.read_list_verdict
        )
        issues += orgpolicy.external_ip_issues(external_ip, project, peer[0])
    return sorted(issues)
