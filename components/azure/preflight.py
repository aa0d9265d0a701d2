"""`coco check STACK --live` on Azure: ask the Resource SKUs API whether each pool's size exists in
its region, is confidential for the requested TEE and is not restricted for the subscription.

The one SDK call (azure-mgmt-compute `ResourceSkusOperations.list`, REST "Resource Skus - List",
learn.microsoft.com/rest/api/compute/resource-skus/list) sits behind `SkuClient`, so tests feed
recorded responses of the API's real shape. Every SKU entry is read into a frozen `Sku`.

Facts used (azure-mgmt-compute 39.0.0 models ResourceSku, ResourceSkuRestrictions):
- one entry per (size, location) for resourceType "virtualMachines";
- restrictions: type "Location" (the size cannot be used in the listed locations) or "Zone" (not
  in restrictionInfo.zones), reasonCode "NotAvailableForSubscription" or "QuotaId";
- capability "ConfidentialComputingType": "TDX" is documented for DCesv5/ECesv5 sizes, "SNP" for
  DCasv5/ECasv5 sizes (unverified: seen only in third-party data), so a missing capability is a
  warning and only a contradicting one is an error.
Non-goals: quota (usage) checks, prices, zones of AKS pools (the stack creates zone-less pools).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from spec.errors import ConfigIssue, NoCredentials
from spec.model import Spec

from . import common

CAPABILITY = "ConfidentialComputingType"
EXPECTED_CAPABILITY = {"snp": "SNP", "tdx": "TDX"}
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
_HINT_LIMIT = 8  # regions or sizes named in one hint


@dataclass(frozen=True)
class Sku:
    """One virtualMachines entry of the Resource SKUs API."""

    name: str
    location: str
    confidential: str | None  # ConfidentialComputingType capability value
    restricted: str | None  # the reason code when the size is restricted in the whole location
    restricted_zones: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.restricted is None


def parse(entry: Mapping[str, Any]) -> list[Sku]:
    """The Sku records of one ResourceSku (REST JSON or the SDK model, which is a Mapping over
    the same JSON). Entries of other resource types give none."""
    if entry.get("resourceType") != "virtualMachines" or not entry.get("name"):
        return []
    capabilities = {
        str(c.get("name")): str(c.get("value")) for c in entry.get("capabilities") or ()
    }
    found = []
    for location in entry.get("locations") or ():
        restricted = None
        zones: list[str] = []
        for r in entry.get("restrictions") or ():
            info = r.get("restrictionInfo") or {}
            where = [str(x).lower() for x in (info.get("locations") or r.get("values") or ())]
            if str(location).lower() not in where:
                continue
            if r.get("type") == "Location":
                restricted = str(r.get("reasonCode") or "restricted")
            elif r.get("type") == "Zone":
                zones += [str(z) for z in info.get("zones") or ()]
        found.append(
            Sku(
                name=str(entry["name"]),
                location=str(location).lower(),
                confidential=capabilities.get(CAPABILITY),
                restricted=restricted,
                restricted_zones=tuple(sorted(set(zones))),
            )
        )
    return found


class SkuClient(Protocol):
    """The one Azure call preflight makes: every VM SKU of the subscription, all locations."""

    def resource_skus(self) -> Iterable[Mapping[str, Any]]: ...


class AzureSkuClient:
    """SkuClient over azure-mgmt-compute with azure-identity's DefaultAzureCredential."""

    def __init__(self, subscription_id: str, credential: Any) -> None:
        from azure.mgmt.compute import ComputeManagementClient

        self._client = ComputeManagementClient(credential, subscription_id)

    def resource_skus(self) -> Iterable[Mapping[str, Any]]:
        # $filter only supports location; one unfiltered listing also says where else a size
        # exists
        return list(self._client.resource_skus.list())


def default_client(environ: Mapping[str, str] | None = None) -> SkuClient:
    """The real client from the environment's credentials; NoCredentials when there are none."""
    env = os.environ if environ is None else environ
    subscription = env.get("AZURE_SUBSCRIPTION_ID", "")
    if not subscription:
        raise NoCredentials(
            "azure",
            "AZURE_SUBSCRIPTION_ID is not set; only the offline checks ran",
            "export AZURE_SUBSCRIPTION_ID=$(az account show --query id -o tsv) after `az login`",
        )
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    try:
        credential.get_token(MANAGEMENT_SCOPE)
    except ClientAuthenticationError as exc:
        raise NoCredentials(
            "azure",
            f"no usable Azure credentials ({type(exc).__name__}); only the offline checks ran",
            "run `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET",
        ) from None
    return AzureSkuClient(subscription, credential)


def _names(values: Iterable[str]) -> str:
    items = sorted(set(values))
    more = len(items) - _HINT_LIMIT
    return ", ".join(items[:_HINT_LIMIT]) + (f" (and {more} more)" if more > 0 else "")


def _check_size(
    path: str,
    size: str,
    region: str,
    tee: str | None,
    skus: Sequence[Sku],
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    entries = [s for s in skus if s.name.lower() == size.lower()]
    if not entries:
        similar = [
            s.name for s in skus
            if s.location == region and s.usable and tee in EXPECTED_CAPABILITY
            and s.confidential == EXPECTED_CAPABILITY[tee]
        ]
        hint = f"confidential {tee} sizes usable in {region}: {_names(similar)}" if similar else (
            "list sizes with: az vm list-skus --location " + region + " --resource-type "
            "virtualMachines -o table"
        )
        return [ConfigIssue(f"{path}.instanceType", f"{size!r} is not a VM size Azure offers "
                            "this subscription", hint)]
    usable = sorted(s.location for s in entries if s.usable)
    works = f"regions where {size} is usable: {_names(usable)}" if usable else (
        f"{size} is usable in no region for this subscription; pick another size or ask Azure "
        "support to lift the restriction"
    )
    here = next((s for s in entries if s.location == region), None)
    if here is None:
        issues.append(ConfigIssue(f"{path}.region", f"{size} is not offered in {region}", works))
    elif here.restricted is not None:
        issues.append(
            ConfigIssue(
                f"{path}.region",
                f"{size} is restricted in {region} for this subscription ({here.restricted})",
                works,
            )
        )
    elif here.restricted_zones:
        issues.append(
            ConfigIssue(
                f"{path}.region",
                f"{size} is restricted in zones {', '.join(here.restricted_zones)} of {region}",
                "pools without zones still deploy; pin no zone",
                "warning",
            )
        )
    wanted = EXPECTED_CAPABILITY.get(tee or "")
    if wanted is not None:
        reported = {s.confidential for s in entries} - {None}
        if reported and wanted not in reported:
            issues.append(
                ConfigIssue(
                    f"{path}.instanceType",
                    f"{size} is a {'/'.join(sorted(str(r) for r in reported))} confidential size, "
                    f"not {wanted}",
                    f"use a {tee} size, for example a DCasv5 size for snp or DCesv5 for tdx",
                )
            )
        elif not reported:
            issues.append(
                ConfigIssue(
                    f"{path}.instanceType",
                    f"Azure reports no {CAPABILITY} for {size}",
                    f"the offline catalogue lists it as a {tee} size; confirm with: az vm "
                    f"list-skus --size {size} --query \"[].capabilities\"",
                    "warning",
                )
            )
    return issues


def live_check(spec: Spec, *, client: SkuClient | None = None) -> list[ConfigIssue]:
    """Problems Azure itself reports with the spec's Azure sizes and regions, sorted."""
    checks: list[tuple[str, str, str, str | None]] = []
    for i, pool in enumerate(spec.node_pools):
        if pool.provider == "azure" and pool.instance_type and pool.region:
            checks.append((f"coco:nodePools[{i}]", pool.instance_type, pool.region, pool.tee))
    if spec.cluster.provider == "aks" and not spec.cluster.attach and spec.cluster.location:
        system = spec.cluster.system_pool
        size = (system.instance_type if system else None) or common.SYSTEM_POOL_SIZE
        checks.append(("coco:cluster.systemPool", size, spec.cluster.location, None))
    if not checks:
        return []
    source = client if client is not None else default_client()
    skus = [s for entry in source.resource_skus() for s in parse(entry)]
    issues: list[ConfigIssue] = []
    for path, size, region, tee in checks:
        found = _check_size(path, size, region.lower(), tee, skus)
        if path == "coco:cluster.systemPool":
            # the system pool's region is the cluster's location
            found = [
                ConfigIssue(i.path.replace(".systemPool.region", ".location"), i.message, i.hint,
                            i.severity)
                for i in found
            ]
        issues += found
    return sorted(issues)
