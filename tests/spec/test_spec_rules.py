"""Rules that must not hide one another, and the defaults a valid spec resolves to."""

from __future__ import annotations

import pytest

from spec.errors import SpecError
from spec.validate import validate
from tests.spec.reference_values import complete

EXISTING = {"provider": "existing"}


def _errors(config):
    with pytest.raises(SpecError) as info:
        validate(config, stack="t")
    return {i.path: i for i in info.value.issues}


class TestNoHiding:
    """A type error in one place does not hide rule errors elsewhere in the same section."""

    def test_bad_resource_path_does_not_hide_production_policy(self):
        errors = _errors({
            "coco:environment": "production",
            "coco:kbs": {"resourcePolicy": "allow-all",
                         "resources": [{"path": "default/key", "value": "x"},
                                       {"path": "default/key/2", "value": "y"}]},
        })
        assert set(errors) == {"coco:kbs.resources[0].path", "coco:kbs.resourcePolicy"}

    def test_bare_metal_pool_on_managed_cluster_is_one_error(self):
        errors = _errors({
            "coco:cluster": {"provider": "eks", "region": "eu-west-1"},
            "coco:nodePools": [{"name": "dev", "tee": "none", "mode": "bare-metal"}],
        })
        assert list(errors) == ["coco:nodePools[0].mode"]
        assert "cannot join eks clusters" in errors["coco:nodePools[0].mode"].message


class TestDefaults:
    """Valid pools come back with provider, mode, instance type and location resolved."""

    def test_managed_cluster_defaults(self):
        spec, _ = validate({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "snp", "tee": "snp"},
                               {"name": "cvm", "tee": "snp", "mode": "nodes"}],
            "coco:image": {"recipe": "minimal"},
        }, stack="t")
        peer, nodes = spec.node_pools
        assert (peer.provider, peer.mode, peer.instance_type, peer.region, peer.count) == (
            "azure", "peer-pods", "Standard_DC2as_v5", "westeurope", None)
        assert (nodes.mode, nodes.instance_type, nodes.count) == ("nodes", "Standard_DC4as_v5", 1)

    def test_gcp_region_from_zone(self):
        spec, _ = validate({
            "coco:cluster": {"provider": "gke", "zone": "europe-west4-a",
                             "project": "coco-test-123456"},
            "coco:nodePools": [{"name": "tdx", "tee": "tdx"}],
            "coco:image": {"podvmImage": "podvm-snp"},
        }, stack="t")
        (pool,) = spec.node_pools
        assert (pool.region, pool.zone, pool.instance_type) == (
            "europe-west4", "europe-west4-a", "c3-standard-4")

    def test_existing_cluster_bare_metal_default(self):
        spec, warnings = validate({
            "coco:cluster": EXISTING,
            "coco:nodePools": [{"name": "snp", "tee": "snp", "nodeSelector": {"a": "b"}}],
            "coco:kbs": {"referenceValues": complete("snp")},
        }, stack="t")
        assert (spec.node_pools[0].provider, spec.node_pools[0].mode) == ("baremetal", "bare-metal")
        assert spec.environment == "dev" and spec.kbs.namespace == "coco-kbs"
        assert warnings == []


class TestReviewFindings:
    """Regressions found in review: indices, secure keys, empty values, zone-derived regions."""

    def test_resource_indices_are_the_users(self):
        errors = _errors({"coco:kbs": {"resources": [
            {"path": "bad", "value": "x"},
            {"path": "a/b/c", "value": "y"},
            {"path": "a/b/c", "value": "z"},
        ]}})
        assert set(errors) == {"coco:kbs.resources[0].path", "coco:kbs.resources[2].path"}
        assert "coco:kbs.resources[1]" in errors["coco:kbs.resources[2].path"].message

    def test_secure_on_a_non_secret_key_is_refused(self):
        with pytest.raises(SpecError) as info:
            validate({"coco:cluster": {"provider": "existing", "context": "[x]"}}, stack="t",
                     secure_paths=frozenset({"coco:cluster.context"}))
        assert [i.path for i in info.value.issues] == ["coco:cluster.context"]
        assert "not secret" in info.value.issues[0].message

    def test_program_mode_accepts_whole_key_secrets(self):
        """Under `pulumi up` every path below a secret key counts as secure."""
        spec, _ = validate(
            {"coco:cluster": {"provider": "existing", "context": "c"}}, stack="t",
            secure_paths=frozenset({"coco:cluster", "coco:cluster.context",
                                    "coco:cluster.provider"}),
            exact_secure_paths=False,
        )
        assert spec.cluster.context == "c"

    @pytest.mark.parametrize("config,path", [
        ({"coco:nodePools": [{"name": "a", "tee": "snp", "nodeSelector": {}}]},
         "coco:nodePools[0].nodeSelector"),
        ({"coco:cluster": {"kubeconfig": ""}}, "coco:cluster.kubeconfig"),
    ])
    def test_empty_values_refused(self, config, path):
        errors = _errors(config)
        assert errors[path].message == "must not be empty"

    def test_pool_zone_gives_its_region(self):
        spec, _ = validate({"coco:nodePools": [
            {"name": "g", "tee": "tdx", "provider": "gcp", "zone": "europe-west4-a",
             "nodeSelector": {"node.kubernetes.io/worker": ""}}],
            "coco:image": {"recipe": "minimal"}}, stack="t")
        assert spec.node_pools[0].region == "europe-west4"


class TestReferenceValues:
    """Reference value names are the ones the attestation policy reads; typos are errors."""

    def test_typo_refused_with_suggestion(self):
        errors = _errors({"coco:kbs": {"referenceValues": {"snp_launch_measurment": ["ab"]}}})
        issue = errors["coco:kbs.referenceValues.snp_launch_measurment"]
        assert "did you mean 'snp_launch_measurement'" in issue.hint

    def test_empty_values_refused(self):
        errors = _errors({"coco:kbs": {"referenceValues": {"mr_td": []}}})
        assert "coco:kbs.referenceValues.mr_td" in errors

    def test_unused_name_warns(self):
        _, warnings = validate({
            "coco:nodePools": [{"name": "s", "tee": "snp", "nodeSelector": {"a": "b"}}],
            "coco:kbs": {"referenceValues": {"mr_td": ["00"], **complete("snp")}},
        }, stack="t")
        assert [w.path for w in warnings] == ["coco:kbs.referenceValues.mr_td"]

    def test_values_reach_the_kbs(self, render_config):
        from cli import render
        from tests.conftest import one

        result = render_config({
            "coco:nodePools": [{"name": "s", "tee": "snp", "nodeSelector": {"a": "b"}}],
            "coco:kbs": {"referenceValues": {"snp_launch_measurement": ["ab12"]}},
        })
        cm = one(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values")
        assert "snp_launch_measurement" in render.dumps_json(cm.inputs)


class TestPeerPodsReachKbs:
    """Pod VMs dial the KBS from outside the cluster: an in-cluster-only KBS is flagged."""

    POOLS = ({"name": "snp", "tee": "snp"},)

    def test_in_cluster_kbs_is_flagged(self):
        _, warnings = validate({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": list(self.POOLS), "coco:image": {"recipe": "minimal"},
            "coco:kbs": {"referenceValues": complete("az-snp-vtpm")},
        }, stack="t")
        assert [(w.path, w.severity) for w in warnings] == [("coco:kbs.hostname", "warning")]
        assert "coco:nodePools[0]" in warnings[0].message

    def test_hostname_or_no_kbs_is_quiet(self):
        for kbs in ({"expose": "loadbalancer", "hostname": "kbs.example.com"},
                    {"enabled": False}):
            _, warnings = validate({
                "coco:cluster": {"provider": "aks", "location": "westeurope"},
                "coco:nodePools": list(self.POOLS), "coco:image": {"recipe": "minimal"},
                "coco:kbs": kbs,
            }, stack="t")
            assert "coco:kbs.hostname" not in [w.path for w in warnings]


AWS_PEER = {
    "coco:cluster": {"provider": "eks", "region": "eu-west-1"},
    "coco:nodePools": [{"name": "snp", "tee": "snp"}],
}


class TestScratchSpace:
    """coco:image.scratchSpace: on by default only where the pod VMs boot the recipe's image and
    the recipe acts on the daemon's marker; refused where it cannot work, at its key path."""

    @pytest.mark.parametrize(("image", "gib"), [
        ({"recipe": "podvm"}, 20),
        ({"recipe": "podvm", "scratchSpace": {"sizeGib": 64}}, 64),
        ({"recipe": "podvm", "scratchSpace": {"enabled": False}}, None),
        # a user's image may lack the scratch units: off unless asked
        ({"podvmImage": "ami-0123456789abcdef0"}, None),
        ({"podvmImage": "ami-0123456789abcdef0", "scratchSpace": {"enabled": True}}, 20),
        # the minimal recipe ships no scratch units
        ({"recipe": "minimal"}, None),
    ])
    def test_resolved(self, image, gib):
        from spec.rules.image import scratch_space_gib

        spec, _ = validate({**AWS_PEER, "coco:image": image}, stack="t")
        assert scratch_space_gib(spec.image, list(spec.node_pools)) == gib

    def test_no_cloud_peer_pods(self):
        errors = _errors({
            "coco:cluster": EXISTING,
            "coco:nodePools": [{"name": "snp", "tee": "snp", "nodeSelector": {"a": "b"}}],
            "coco:image": {"recipe": "podvm", "scratchSpace": {"enabled": True}},
        })
        issue = errors["coco:image.scratchSpace"]
        assert "only to azure, aws or gcp peer-pods pools" in issue.message
        assert issue.hint == "remove it"

    def test_recipe_without_the_units(self):
        errors = _errors({**AWS_PEER,
                          "coco:image": {"recipe": "minimal", "scratchSpace": {"enabled": True}}})
        issue = errors["coco:image.scratchSpace.enabled"]
        assert "does not ship the scratch-space units" in issue.message
        assert "enabled: false" in issue.hint

    @pytest.mark.parametrize("size", [0, -1, "20", 2.5])
    def test_size_below_one_gib_or_not_an_integer(self, size):
        errors = _errors({**AWS_PEER,
                          "coco:image": {"recipe": "podvm", "scratchSpace": {"sizeGib": size}}})
        assert "coco:image.scratchSpace.sizeGib" in errors

    def test_unknown_key(self):
        errors = _errors({**AWS_PEER,
                          "coco:image": {"recipe": "podvm", "scratchSpace": {"size": 20}}})
        assert "coco:image.scratchSpace.size" in errors


GCP_PEER = {
    "coco:cluster": {"provider": "gke", "project": "coco-test-123456", "zone": "europe-west4-a"},
    "coco:nodePools": [{"name": "tdx", "tee": "tdx"}],
}


class TestGcpScratchMinimum:
    """GCP Persistent Disks are at least 10 GB and CAA v0.22.0 sizes a GCP pod VM's boot disk
    as max(image, ROOT_VOLUME_SIZE), which the stack sets to image GiB + sizeGib (sizeGib alone
    with podvmImage): on gcp peer pods a sizeGib under 10 is refused at its key path."""

    @pytest.mark.parametrize("image", [
        {"recipe": "podvm", "scratchSpace": {"sizeGib": 9}},
        {"podvmImage": "my-podvm", "scratchSpace": {"enabled": True, "sizeGib": 4}},
    ])
    def test_below_ten_refused(self, image):
        errors = _errors({**GCP_PEER, "coco:image": image})
        issue = errors["coco:image.scratchSpace.sizeGib"]
        assert "below GCP's persistent-disk minimum" in issue.message
        assert "under 10 GB" in issue.message
        assert issue.hint.startswith("set sizeGib to at least 10 (GCP's persistent-disk minimum)")
        assert [p for p in errors if p.startswith("coco:image")] == [
            "coco:image.scratchSpace.sizeGib"]

    @pytest.mark.parametrize(("image", "gib"), [
        ({"recipe": "podvm", "scratchSpace": {"sizeGib": 10}}, 10),
        ({"recipe": "podvm"}, 20),  # the default
        # off: CAA's own ROOT_VOLUME_SIZE default (10) applies, nothing of ours reaches the disk
        ({"recipe": "podvm", "scratchSpace": {"enabled": False, "sizeGib": 5}}, None),
        ({"podvmImage": "my-podvm", "scratchSpace": {"sizeGib": 5}}, None),  # off by default
    ])
    def test_ten_or_off_accepted(self, image, gib):
        from spec.rules.image import scratch_space_gib

        spec, _ = validate({**GCP_PEER, "coco:image": image}, stack="t")  # raises on an error
        assert scratch_space_gib(spec.image, list(spec.node_pools)) == gib

    def test_other_clouds_keep_small_sizes(self):
        from spec.rules.image import scratch_space_gib

        spec, _ = validate({**AWS_PEER, "coco:image": {"recipe": "podvm",
                                                       "scratchSpace": {"sizeGib": 5}}}, stack="t")
        assert scratch_space_gib(spec.image, list(spec.node_pools)) == 5
