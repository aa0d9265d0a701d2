"""Pools of a managed AKS or GKE cluster live in the cluster's location: a pool region or zone
elsewhere would render AZURE_REGION / GCP_ZONE / node_locations that do not match the cluster's
network, and fail only at `pulumi up`. Each mistake is one error at the key the user wrote."""

from __future__ import annotations

from typing import Any

import pytest

from spec.errors import SpecError
from spec.validate import validate

AKS = {"provider": "aks", "location": "westeurope"}
GKE = {"provider": "gke", "region": "europe-west4", "project": "coco-test-123456"}
GKE_ZONAL = {"provider": "gke", "zone": "europe-west4-a", "project": "coco-test-123456"}
IMAGE = {"podvmImage": "podvm-snp"}


WORKERS = {"nodeSelector": {"node.kubernetes.io/worker": ""}}


def _config(cluster: dict[str, Any], *pools: dict[str, Any]) -> dict[str, Any]:
    """Peer-pods pools on an attached or existing cluster confirm their workers are labelled
    (spec.rules.clouds.attached_peer_pod_workers)."""
    if cluster.get("provider") == "existing" or cluster.get("attach"):
        pools = tuple(p if p.get("mode", "peer-pods") != "peer-pods" else {**WORKERS, **p}
                      for p in pools)
    return {"coco:cluster": cluster, "coco:nodePools": list(pools), "coco:image": IMAGE}


def _errors(config: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(SpecError) as info:
        validate(config, stack="t")
    return {i.path: i for i in info.value.issues if i.severity == "error"}


def _pools(config: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    spec, _ = validate(config, stack="t")
    return [(p.region, p.zone) for p in spec.node_pools]


class TestAks:
    """AKS pools take the cluster's location; another region is refused at the pool's key."""

    @pytest.mark.parametrize("mode", ["peer-pods", "nodes"])
    def test_pool_region_elsewhere(self, mode):
        errors = _errors(_config(
            AKS,
            {"name": "snp", "tee": "snp"},
            {"name": "other", "tee": "snp", "mode": mode, "region": "eastus"},
        ))
        assert list(errors) == ["coco:nodePools[1].region"]
        issue = errors["coco:nodePools[1].region"]
        assert "'eastus'" in issue.message and "'westeurope'" in issue.message
        assert "remove region" in issue.hint

    def test_malformed_region_reported_once(self):
        errors = _errors(_config(AKS, {"name": "snp", "tee": "snp", "region": "West Europe"}))
        assert list(errors) == ["coco:nodePools[0].region"]
        assert "not an azure location" in errors["coco:nodePools[0].region"].message

    def test_same_region_or_none_passes(self):
        pools = _pools(_config(
            AKS,
            {"name": "snp", "tee": "snp", "region": "westeurope"},
            {"name": "cvm", "tee": "snp", "mode": "nodes"},
        ))
        assert pools == [("westeurope", None), ("westeurope", None)]


class TestGke:
    """GKE pools (peer pods' GCP_ZONE, nodes pools' node_locations) stay in the cluster's
    region, a zonal cluster's region being its zone's."""

    @pytest.mark.parametrize("mode", ["peer-pods", "nodes"])
    def test_zone_outside_region(self, mode):
        errors = _errors(_config(
            GKE,
            {"name": "tdx", "tee": "tdx", "zone": "europe-west4-a"},
            {"name": "other", "tee": "tdx", "mode": mode, "zone": "us-central1-a"},
        ))
        assert list(errors) == ["coco:nodePools[1].zone"]
        issue = errors["coco:nodePools[1].zone"]
        assert "'us-central1-a'" in issue.message and "'europe-west4'" in issue.message

    def test_zone_outside_zonal_clusters_region(self):
        errors = _errors(_config(GKE_ZONAL, {"name": "tdx", "tee": "tdx", "zone": "us-east1-b"}))
        assert list(errors) == ["coco:nodePools[0].zone"]
        assert "'europe-west4'" in errors["coco:nodePools[0].zone"].message

    def test_region_and_zone_elsewhere(self):
        # the zone is in the pool's own region: only the region is wrong
        errors = _errors(_config(
            GKE, {"name": "tdx", "tee": "tdx", "region": "us-central1", "zone": "us-central1-a"}
        ))
        assert list(errors) == ["coco:nodePools[0].region"]
        assert "'us-central1'" in errors["coco:nodePools[0].region"].message

    def test_zones_of_the_region_pass(self):
        pools = _pools(_config(
            GKE,
            {"name": "tdx", "tee": "tdx", "zone": "europe-west4-b"},
            {"name": "cvm", "tee": "snp", "mode": "nodes", "zone": "europe-west4-c"},
        ))
        assert pools == [("europe-west4", "europe-west4-b"), ("europe-west4", "europe-west4-c")]

    def test_other_zone_of_zonal_clusters_region_passes(self):
        pools = _pools(_config(GKE_ZONAL, {"name": "tdx", "tee": "tdx", "zone": "europe-west4-b"}))
        assert pools == [("europe-west4", "europe-west4-b")]


def test_zonal_cluster_and_a_pool_region_elsewhere_is_one_error():
    # the cluster's zone is filled in for the pool; it must not be reported as the pool's zone
    errors = _errors(_config(
        GKE_ZONAL, {"name": "tdx", "tee": "tdx", "region": "us-central1"},
    ))
    assert list(errors) == ["coco:nodePools[0].region"]


class TestPodVmSubnet:
    """coco:nodePools[].podVmSubnet: one subnet id of the pool's cloud, for peer pods on an
    attached cluster, the same on every peer-pods pool (CAA takes one)."""

    AWS_SUBNET = "subnet-0123456789abcdef0"
    AZURE_SUBNET = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                    "virtualNetworks/v/subnets/podvms")

    def _eks(self, *pools: dict[str, Any]) -> dict[str, Any]:
        return _config({"provider": "eks", "name": "c", "region": "eu-west-1", "attach": True},
                       *pools)

    def test_accepted_on_attached_clusters(self):
        assert _pools(self._eks({"name": "snp", "tee": "snp", "podVmSubnet": self.AWS_SUBNET}))
        aks = {**AKS, "attach": True, "name": "prod", "resourceGroup": "rg"}
        assert _pools(_config(aks, {"name": "snp", "tee": "snp",
                                    "podVmSubnet": self.AZURE_SUBNET}))

    @pytest.mark.parametrize(
        ("pool", "needle"),
        [
            ({"podVmSubnet": "sn-1"}, "is not an aws subnet id"),
            ({"podVmSubnet": AZURE_SUBNET}, "is not an aws subnet id"),
            ({"mode": "nodes", "podVmSubnet": AWS_SUBNET}, "only aws and azure peer-pods"),
        ],
    )
    def test_refused(self, pool, needle):
        errors = _errors(self._eks({"name": "pp", "tee": "snp"},
                                   {"name": "snp", "tee": "snp", **pool}))
        assert list(errors) == ["coco:nodePools[1].podVmSubnet"]
        assert needle in errors["coco:nodePools[1].podVmSubnet"].message

    def test_one_subnet_for_all_peer_pods_pools(self):
        errors = _errors(self._eks(
            {"name": "a", "tee": "snp", "podVmSubnet": self.AWS_SUBNET},
            {"name": "b", "tee": "snp", "podVmSubnet": "subnet-0abcdef0123456789"},
        ))
        assert list(errors) == ["coco:nodePools[1].podVmSubnet"]
        assert "coco:nodePools[0].podVmSubnet" in errors["coco:nodePools[1].podVmSubnet"].message

    def test_unused_on_a_created_cluster_warns(self):
        config = _config({"provider": "eks", "name": "c", "region": "eu-west-1"},
                         {"name": "snp", "tee": "snp", "podVmSubnet": self.AWS_SUBNET})
        _, warnings = validate(config, stack="t")
        assert "coco:nodePools[0].podVmSubnet" in {w.path for w in warnings}
