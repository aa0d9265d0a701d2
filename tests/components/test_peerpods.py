"""Peer pods: provider configuration from cloud outputs and the spec; credentials only in the
stack's Secret, never in Helm values."""

from __future__ import annotations

import pulumi
import pytest

from cli import render
from components import peerpods
from spec import versions
from tests.conftest import one, render_program, resources_of

RELEASE = "kubernetes:helm.sh/v3:Release"

# Every id a cloud component provides, per provider: stands in for resource outputs.
IDS = {
    "azure": ("AZURE_IMAGE_ID", "AZURE_RESOURCE_GROUP", "AZURE_SUBNET_ID",
              "AZURE_SUBSCRIPTION_ID", "AZURE_NSG_ID"),
    "aws": ("PODVM_AMI_ID", "AWS_SUBNET_ID", "AWS_SG_IDS"),
    "gcp": ("GCP_PROJECT_ID", "GCP_NETWORK", "GCP_SUBNETWORK", "PODVM_IMAGE_NAME"),
    "ibmcloud": ("IBMCLOUD_PODVM_IMAGE_ID", "IBMCLOUD_VPC_ID", "IBMCLOUD_VPC_SUBNET_ID",
                 "IBMCLOUD_RESOURCE_GROUP_ID", "IBMCLOUD_SECURITY_GROUP_IDS"),
}
POOLS = {
    "azure": [peerpods.PeerPodPool("snp", "Standard_DC2as_v5", "westeurope"),
              peerpods.PeerPodPool("tdx", "Standard_DC2es_v5", "westeurope")],
    "aws": [peerpods.PeerPodPool("snp", "m6a.large", "eu-west-1")],
    "gcp": [peerpods.PeerPodPool("sev", "n2d-standard-2", "europe-west4", "europe-west4-a")],
    "ibmcloud": [peerpods.PeerPodPool("se", "bz2e-2x8", "eu-de", "eu-de-1")],
}
SPEC_VALUES = {
    "AZURE_REGION": "westeurope", "AZURE_INSTANCE_SIZE": "Standard_DC2as_v5",
    "AWS_REGION": "eu-west-1", "PODVM_INSTANCE_TYPE": "m6a.large",
    "GCP_ZONE": "europe-west4-a", "GCP_MACHINE_TYPE": "n2d-standard-2",
    "GCP_CONFIDENTIAL_TYPE": "SEV", "GCP_DISK_TYPE": "pd-balanced",
    "IBMCLOUD_ZONE": "eu-de-1", "IBMCLOUD_PODVM_INSTANCE_PROFILE_NAME": "bz2e-2x8",
}


def _cloud(provider, credentials=None):
    ids = {key: pulumi.Output.from_input(f"out:{key}") for key in IDS[provider]}
    return peerpods.CloudPeerPods(provider, ids, credentials or {})


class TestProviderConfig:
    """Every required key is present, and comes from a cloud output or the spec."""

    @pytest.mark.parametrize("provider", sorted(IDS))
    def test_required_keys_sourced(self, provider):
        cloud = _cloud(provider)
        config = peerpods.provider_config(cloud, POOLS[provider])
        for key in peerpods.REQUIRED_KEYS[provider]:
            assert key in config, key
            if key in cloud.ids:
                assert config[key] is cloud.ids[key]  # the resource output itself
            else:
                assert config[key] == SPEC_VALUES[key], key

    def test_azure_sizes_per_tee(self):
        config = peerpods.provider_config(_cloud("azure"), POOLS["azure"])
        assert config["AZURE_INSTANCE_SIZES"] == "Standard_DC2as_v5,Standard_DC2es_v5"

    def test_missing_output_named(self):
        cloud = peerpods.CloudPeerPods("aws", {"AWS_SUBNET_ID": "s", "AWS_SG_IDS": "g"})
        with pytest.raises(ValueError, match="missing PODVM_AMI_ID"):
            peerpods.provider_config(cloud, POOLS["aws"])

    def test_credential_never_a_configmap_key(self):
        cloud = peerpods.CloudPeerPods("gcp", {**_cloud("gcp").ids, "GCP_CREDENTIALS": "{}"})
        with pytest.raises(ValueError, match="GCP_CREDENTIALS"):
            peerpods.provider_config(cloud, POOLS["gcp"])

    def test_gcp_one_confidential_type(self):
        pools = [*POOLS["gcp"], peerpods.PeerPodPool("tdx", "c3-standard-4", "europe-west4", "x")]
        with pytest.raises(ValueError, match="one GCP_CONFIDENTIAL_TYPE"):
            peerpods.provider_config(_cloud("gcp"), pools)


class TestGcpDiskType:
    """CAA v0.22.0 boots GCP pod VMs from pd-standard unless GCP_DISK_TYPE says otherwise, and
    C3, C3D and the Hyperdisk-only series refuse it (cloud-api-adaptor#2258): the stack always
    sets a type every pool's machine series accepts."""

    @pytest.mark.parametrize(
        ("tee", "machine", "disk"),
        [
            ("sev", "n2d-standard-2", "pd-balanced"),
            ("tdx", "c3-standard-4", "pd-balanced"),
            ("sev", "c3d-standard-4", "pd-balanced"),
            ("sev", "c4d-standard-4", "hyperdisk-balanced"),
        ],
    )
    def test_per_machine_series(self, tee, machine, disk):
        pools = [peerpods.PeerPodPool(tee, machine, "europe-west4", "europe-west4-a")]
        config = peerpods.provider_config(_cloud("gcp"), pools)
        assert config["GCP_DISK_TYPE"] == disk
        assert config["GCP_DISK_TYPE"] != "pd-standard"

    def test_users_disk_type_wins(self):
        pools = [peerpods.PeerPodPool("sev", "n2d-standard-2", "europe-west4", "europe-west4-a",
                                      "pd-ssd")]
        assert peerpods.provider_config(_cloud("gcp"), pools)["GCP_DISK_TYPE"] == "pd-ssd"

    def test_series_with_nothing_in_common_is_refused(self):
        pools = [peerpods.PeerPodPool("sev", "n2d-standard-2", "europe-west4", "europe-west4-a"),
                 peerpods.PeerPodPool("sev", "c4d-standard-4", "europe-west4", "europe-west4-a")]
        with pytest.raises(ValueError, match="missing GCP_DISK_TYPE"):
            peerpods.provider_config(_cloud("gcp"), pools)


class TestChart:
    """The chart runs in reference mode; credentials live only in the stack's Secret."""

    def _render(self, credentials):
        def program():
            cloud = _cloud("azure", credentials)
            config = peerpods.provider_config(cloud, POOLS["azure"], initdata="H4sIAAAA")
            peerpods.PeerPods("pp", cloud, config)

        return render_program(program)

    def test_values_and_secret(self, tmp_path):
        result = self._render({"AZURE_CLIENT_SECRET": "CLIENT-SECRET-VALUE",
                               "AZURE_CLIENT_ID": "cid", "AZURE_TENANT_ID": "tid"})
        chart = one(result, RELEASE, "pp-chart")
        values = render.unwrap(chart.inputs["values"])
        assert chart.inputs["chart"] == versions.PEERPODS_CHART.reference
        assert chart.inputs["version"] == versions.PEERPODS_CHART.version
        assert values["secrets"] == {"mode": "reference",
                                     "existingSecretName": peerpods.SECRET_NAME}
        assert values["kata-deploy"] == {"enabled": False}
        # subcharts the stack depends on are on by name, not by the chart's defaults
        assert values["webhook"] == {"enabled": True}
        assert values["resourceCtrl"]["enabled"] is True
        cm = values["providerConfigs"]["azure"]
        assert cm["AZURE_SUBNET_ID"] == "out:AZURE_SUBNET_ID"
        assert cm["INITDATA"] == "H4sIAAAA"
        secret = one(result, "kubernetes:core/v1:Secret")
        assert secret.inputs["metadata"]["name"] == peerpods.SECRET_NAME
        assert "stringData" in render.secret_paths(secret.inputs)
        cert_manager = one(result, RELEASE, "pp-cert-manager")
        assert cert_manager.urn in chart.dependencies and secret.urn in chart.dependencies
        # no credential in any Helm release, nor anywhere in the rendered output
        for release in resources_of(result, RELEASE):
            assert "CLIENT-SECRET" not in repr(render.unwrap(release.inputs))
        out = tmp_path / "out"
        render.write(result, out)
        blob = b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())
        assert b"CLIENT-SECRET-VALUE" not in blob

    def test_workload_identity_needs_no_secret(self):
        result = self._render({})
        assert resources_of(result, "kubernetes:core/v1:Secret") == []
        values = render.unwrap(one(result, RELEASE, "pp-chart").inputs["values"])
        assert values["secrets"]["existingSecretName"] == ""


class TestRollout:
    """CAA and peerpod-ctrl read peer-pods-cm and the Secret only at start: a pod label follows
    both, so a new image, new initdata or a rotated key rolls their pods;
    the same input keeps it."""

    def _labels(self, *, image="podvm-a", initdata="H4sIAAAA", credentials=None, reorder=False):
        def program():
            ids = {key: pulumi.Output.from_input(f"out:{key}") for key in IDS["gcp"]}
            ids["PODVM_IMAGE_NAME"] = pulumi.Output.from_input(image)
            if reorder:
                ids = dict(reversed(list(ids.items())))
            secret = {k: pulumi.Output.secret(v)
                      for k, v in (credentials or {"GCP_CREDENTIALS": "KEY-ONE"}).items()}
            cloud = peerpods.CloudPeerPods("gcp", ids, secret)
            config = peerpods.provider_config(cloud, POOLS["gcp"], initdata=initdata)
            if reorder:
                config = dict(reversed(list(config.items())))
            peerpods.PeerPods("pp", cloud, config)

        result = render_program(program)
        chart = one(result, RELEASE, "pp-chart")
        values = render.unwrap(chart.inputs["values"])
        daemonset = values["daemonset"]["podLabels"][peerpods.CONFIG_CHECKSUM_LABEL]
        ctrl = values["resourceCtrl"]["podLabels"][peerpods.CONFIG_CHECKSUM_LABEL]
        assert daemonset == ctrl
        return daemonset, result

    def test_same_input_same_label(self):
        first, _ = self._labels()
        again, _ = self._labels()
        reordered, _ = self._labels(reorder=True)
        assert first == again == reordered
        assert len(first) == peerpods.CHECKSUM_LENGTH and int(first, 16) >= 0

    @pytest.mark.parametrize("change", [
        {"image": "podvm-b"},  # PODVM_IMAGE_NAME: a new pod-VM image
        {"initdata": "H4sIBBBB"},  # e.g. a new KBS CA
        {"credentials": {"GCP_CREDENTIALS": "KEY-TWO"}},  # a rotated key
    ])
    def test_change_rolls_pods(self, change):
        before, _ = self._labels()
        after, _ = self._labels(**change)
        assert after != before

    def test_label_plain_and_reveals_no_secret(self, tmp_path):
        label, result = self._labels()
        chart = one(result, RELEASE, "pp-chart")
        # the key went in as a secret; the label derived from it is not marked secret, so the
        # Helm values stay plain, and the key itself is in no release
        assert render.secret_paths(chart.inputs) == []
        assert "KEY-ONE" not in repr(render.unwrap(chart.inputs))
        assert "stringData" in render.secret_paths(one(result, "kubernetes:core/v1:Secret").inputs)
        out = tmp_path / "out"
        render.write(result, out)
        document = (out / "resources.json").read_text()
        assert label in document and "KEY-ONE" not in document

    def test_workload_identity_labels_kept(self):
        def program():
            cloud = peerpods.CloudPeerPods(
                "azure", _cloud("azure").ids, pod_labels={"azure.workload.identity/use": "true"}
            )
            peerpods.PeerPods("pp", cloud, peerpods.provider_config(cloud, POOLS["azure"]))

        values = render.unwrap(one(render_program(program), RELEASE, "pp-chart").inputs["values"])
        for chart in ("daemonset", "resourceCtrl"):
            labels = values[chart]["podLabels"]
            assert set(labels) == {peerpods.CONFIG_CHECKSUM_LABEL, "azure.workload.identity/use"}
            assert labels["azure.workload.identity/use"] == "true"


class TestScratchSpace:
    """The pod VMs' encrypted scratch space reaches peer-pods-cm as the two keys
    cloud-api-adaptor v0.22.0 reads (ENABLE_SCRATCH_SPACE, ROOT_VOLUME_SIZE), the disk being the
    image's whole GiB plus the scratch GiB; nothing is added when it is off."""

    GIB = 1 << 30

    @pytest.mark.parametrize(("image_bytes", "disk"), [
        (None, 20),  # unknown image (podvmImage, or nothing built): the scratch alone
        (GIB, 21),  # exactly 1 GiB
        (GIB + 1, 22),  # one byte more rounds up: GCP and EBS hold whole GiB
        (int(1.5 * GIB), 22),
    ])
    def test_root_volume_gib(self, image_bytes, disk):
        assert peerpods.root_volume_gib(image_bytes, 20) == disk

    def test_root_volume_refuses_no_scratch(self):
        with pytest.raises(ValueError, match="at least 1 GiB"):
            peerpods.root_volume_gib(self.GIB, 0)

    def _values(self, provider, scratch):
        def program():
            cloud = _cloud(provider)
            config = peerpods.provider_config(cloud, POOLS[provider], scratch=scratch)
            peerpods.PeerPods("pp", cloud, config)

        chart = one(render_program(program), RELEASE, "pp-chart")
        return render.unwrap(chart.inputs["values"])["providerConfigs"][provider]

    @pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
    def test_keys_rendered(self, provider):
        # the image size is a resource output (the build's), resolved through the render
        size = pulumi.Output.from_input(int(1.5 * self.GIB))
        config = self._values(provider, peerpods.Scratch(30, size))
        assert config["ENABLE_SCRATCH_SPACE"] == "true"
        assert config["ROOT_VOLUME_SIZE"] == "32"

    def test_users_image_is_the_scratch_alone(self):
        config = self._values("aws", peerpods.Scratch(25))
        assert config["ROOT_VOLUME_SIZE"] == "25"

    def test_unbuilt_image_says_so(self):
        """Under `coco render` the build's size resolves to None: the value says the image's
        GiB are still to come instead of a disk too small for the image plus the scratch."""
        config = self._values("gcp", peerpods.Scratch(20, pulumi.Output.from_input(None)))
        assert config["ROOT_VOLUME_SIZE"] == f"{peerpods.UNBUILT_ROOT_VOLUME} + 20"
        assert not config["ROOT_VOLUME_SIZE"].isdigit()

    @pytest.mark.parametrize("provider", ["aws", "azure", "gcp", "ibmcloud"])
    def test_off_adds_nothing(self, provider):
        config = self._values(provider, None)
        assert "ENABLE_SCRATCH_SPACE" not in config and "ROOT_VOLUME_SIZE" not in config

    def test_ibmcloud_refused(self):
        with pytest.raises(ValueError, match="no scratch space for ibmcloud"):
            peerpods.provider_config(_cloud("ibmcloud"), POOLS["ibmcloud"],
                                     scratch=peerpods.Scratch(20))
