"""`coco check STACK --live` for AWS: does the region offer the pools' SEV-SNP sizes, in which
zones, and does a named pod-VM AMI boot UEFI?

EC2 calls (botocore ec2 2016-11-15 service model; AWS CLI examples in
docs.aws.amazon.com/AWSEC2/latest/UserGuide/snp-find-instance-types.html):
- DescribeInstanceTypes, filter processor-info.supported-features = amd-sev-snp: the types that
  can run SEV-SNP in a region (ProcessorInfo.SupportedFeatures contains "amd-sev-snp");
- DescribeInstanceTypeOfferings, LocationType availability-zone, filter instance-type: the zones
  that offer a type;
- DescribeImages: an AMI's BootMode (SEV-SNP needs uefi or uefi-preferred; an AMI without one
  boots the instance type's default, legacy BIOS on x86: sev-snp.html#snp-requirements).

`Ec2` is the one door to EC2 (a botocore client per region); tests hand it clients stubbed with
botocore's Stubber, which validates every recorded response against the service model.
Non-goals: quotas, prices, Spot capacity, the EKS-optimized node AMI's boot mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from spec import catalogue
from spec.errors import ConfigIssue, NoCredentials, Unreachable
from spec.model import Spec

SNP_FEATURE = "amd-sev-snp"
UEFI_BOOT_MODES = ("uefi", "uefi-preferred")


class Ec2Api(Protocol):
    """What the preflight asks EC2."""

    def snp_instance_types(self, region: str) -> list[str]: ...
    def zones_offering(self, region: str, instance_type: str) -> list[str]: ...
    def image_boot_mode(self, region: str, image_id: str) -> tuple[bool, str | None]: ...


class CallFailed(Exception):
    """An EC2 call was refused (no access, region not enabled, throttled)."""


class Ec2:
    """EC2 through botocore clients, one per region (`client_for(region)`)."""

    def __init__(self, client_for: Callable[[str], Any]) -> None:
        self._client_for = client_for
        self._clients: dict[str, Any] = {}

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = self._client_for(region)
        return self._clients[region]

    def _pages(self, region: str, operation: str, **params: Any) -> list[dict[str, Any]]:
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
            HTTPClientError,
        )
        from botocore.exceptions import ConnectionError as EndpointUnreachable

        try:
            paginator = self._client(region).get_paginator(operation)
            return list(paginator.paginate(**params))
        except (EndpointUnreachable, HTTPClientError) as exc:
            # EC2 did not answer (network, timeout): not the stack's fault, exit code 3 for the
            # CLI as for every cloud; an answer that refuses (ClientError) stays an issue
            raise Unreachable(
                f"EC2 in {region} did not answer: {exc}", "check the network and retry"
            ) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise CallFailed(f"{error.get('Code', 'error')}: {error.get('Message', '')}") from exc
        except BotoCoreError as exc:
            raise CallFailed(str(exc)) from exc

    def snp_instance_types(self, region: str) -> list[str]:
        pages = self._pages(
            region,
            "describe_instance_types",
            Filters=[{"Name": "processor-info.supported-features", "Values": [SNP_FEATURE]}],
        )
        return sorted(
            t["InstanceType"]
            for page in pages
            for t in page.get("InstanceTypes", [])
            if SNP_FEATURE in t.get("ProcessorInfo", {}).get("SupportedFeatures", [])
        )

    def zones_offering(self, region: str, instance_type: str) -> list[str]:
        pages = self._pages(
            region,
            "describe_instance_type_offerings",
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}],
        )
        return sorted(
            o["Location"] for page in pages for o in page.get("InstanceTypeOfferings", [])
        )

    def image_boot_mode(self, region: str, image_id: str) -> tuple[bool, str | None]:
        """(found, BootMode) of an AMI; BootMode None when the AMI sets none."""
        pages = self._pages(region, "describe_images", ImageIds=[image_id])
        images = [i for page in pages for i in page.get("Images", [])]
        if not images:
            return False, None
        return True, images[0].get("BootMode")


def _default_client() -> Ec2:
    import boto3  # type: ignore[import-untyped]

    session = boto3.Session()
    if session.get_credentials() is None:
        raise NoCredentials(
            "aws",
            "no AWS credentials found; the live check did not run",
            "set AWS_PROFILE (aws configure / aws sso login) or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, then rerun coco check --live",
        )
    return Ec2(lambda region: session.client("ec2", region_name=region))


def live_check(spec: Spec, *, client: Ec2Api | None = None) -> list[ConfigIssue]:
    """Issues for every AWS pool (and a named pod-VM AMI), with the key paths of the spec."""
    ec2 = client or _default_client()
    found: list[ConfigIssue] = []
    snp: dict[str, list[str] | None] = {}

    def snp_types(region: str, path: str) -> list[str] | None:
        if region not in snp:
            try:
                snp[region] = ec2.snp_instance_types(region)
            except CallFailed as exc:
                snp[region] = None
                found.append(
                    ConfigIssue(
                        path,
                        f"cannot ask EC2 in {region}: {exc}",
                        "check that the region is enabled for the account and that the "
                        "credentials allow ec2:DescribeInstanceTypes",
                    )
                )
        return snp[region]

    def regions_with(instance_type: str, besides: str) -> list[str]:
        known = {r for o in catalogue.OFFERINGS if o.provider == "aws" for r in o.regions}
        return [
            r
            for r in sorted(known - {besides})
            if instance_type in (snp_types(r, "coco:nodePools") or [])
        ]

    peer_region: str | None = None
    for i, pool in enumerate(spec.node_pools):
        if pool.provider != "aws" or pool.tee != "snp" or not pool.region:
            continue  # other TEEs on AWS are refused offline (spec.rules)
        p = f"coco:nodePools[{i}]"
        size, region = pool.instance_type or "", pool.region
        if pool.mode == "peer-pods":
            peer_region = peer_region or region
        types = snp_types(region, f"{p}.region")
        if types is None:
            continue
        if not types:
            elsewhere = regions_with(size, region)
            found.append(
                ConfigIssue(
                    f"{p}.region",
                    f"EC2 offers no SEV-SNP instance type in {region}",
                    f"{size} runs SEV-SNP in: {', '.join(elsewhere)}"
                    if elsewhere
                    else "pick a region from docs.aws.amazon.com/AWSEC2/latest/UserGuide/"
                    "sev-snp.html#snp-requirements",
                )
            )
            continue
        if size not in types:
            family = size.split(".", 1)[0]
            same = [t for t in types if t.startswith(family + ".")] or types
            found.append(
                ConfigIssue(
                    f"{p}.instanceType",
                    f"{size} cannot run SEV-SNP in {region}",
                    f"SEV-SNP sizes there: {', '.join(same[:12])}",
                )
            )
            continue
        try:
            zones = ec2.zones_offering(region, size)
        except CallFailed as exc:
            found.append(ConfigIssue(f"{p}.region", f"cannot ask EC2 in {region}: {exc}"))
            continue
        if not zones:
            found.append(
                ConfigIssue(
                    f"{p}.instanceType",
                    f"{size} is not offered in any zone of {region}",
                    f"SEV-SNP sizes there: {', '.join(types[:12])}",
                )
            )
        elif pool.zone and pool.zone not in zones:
            found.append(
                ConfigIssue(
                    f"{p}.zone",
                    f"{size} is not offered in {pool.zone}",
                    f"zones of {region} that offer it: {', '.join(zones)}",
                )
            )
        elif pool.mode == "nodes" and not pool.zone and spec.cluster.provider == "eks":
            from .network import zones as network_zones

            missing = [z for z in network_zones(spec) if z not in zones]
            if missing and not spec.cluster.attach:
                found.append(
                    ConfigIssue(
                        f"{p}.zone",
                        f"{size} is not offered in {', '.join(missing)}, where the stack's "
                        "VPC has node subnets: nodes start only in the other zones",
                        f"set zone to one of: {', '.join(zones)}",
                        "warning",
                    )
                )
    image = spec.image.podvm_image
    if image and peer_region:
        found += _image(ec2, peer_region, image)
    return sorted(found)


def _image(ec2: Ec2Api, region: str, image_id: str) -> list[ConfigIssue]:
    path = "coco:image.podvmImage"
    try:
        exists, mode = ec2.image_boot_mode(region, image_id)
    except CallFailed as exc:
        return [ConfigIssue(path, f"cannot describe {image_id} in {region}: {exc}")]
    if not exists:
        return [
            ConfigIssue(
                path,
                f"AMI {image_id} does not exist in {region} (or is not shared with the account)",
                "AMIs are regional: copy it to the region (aws ec2 copy-image) or remove "
                "podvmImage to let the stack publish its own",
            )
        ]
    if mode not in UEFI_BOOT_MODES:
        shown = mode or "not set (legacy BIOS on x86)"
        return [
            ConfigIssue(
                path,
                f"AMI {image_id} boot mode is {shown}; SEV-SNP instances boot UEFI only",
                "register the AMI with --boot-mode uefi (or uefi-preferred), or remove "
                "podvmImage to let the stack publish its own",
            )
        ]
    return []
