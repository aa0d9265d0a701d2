"""The TEE catalogue: internal consistency and the instance-type parsing the spec relies on."""

from __future__ import annotations

import pytest

from spec import catalogue


class TestOfferings:
    """Each offering is coherent: shim and RuntimeClass agree with the mode and TEE."""

    def test_keys_unique_and_known(self):
        keys = [o.key for o in catalogue.OFFERINGS]
        assert len(keys) == len(set(keys))
        for provider, tee, mode in keys:
            assert provider in catalogue.PROVIDERS
            assert tee in catalogue.TEES
            assert mode in catalogue.MODES

    @pytest.mark.parametrize("o", catalogue.OFFERINGS, ids=lambda o: "/".join(o.key))
    def test_runtime_matches_mode(self, o):
        if o.mode == "peer-pods":
            assert (o.shim, o.runtime_class) == ("remote", "kata-remote")
        elif o.mode == "bare-metal":
            assert o.shim is not None and o.runtime_class == f"kata-{o.shim}"
            assert o.families == () and o.default_size is None
        else:  # nodes: pods run with the node's runtime
            assert o.shim is None and o.runtime_class is None and o.evidence is None

    @pytest.mark.parametrize(
        "o", [o for o in catalogue.OFFERINGS if o.families], ids=lambda o: "/".join(o.key)
    )
    def test_default_size_is_in_an_allowed_family(self, o):
        family = catalogue.family_of(o.provider, o.default_size)
        assert family is not None
        assert family.lower() in {f.lower() for f in o.families}

    def test_attested_offerings_name_reference_values(self):
        for o in catalogue.OFFERINGS:
            # the default policy has no Secure Execution rules: SE needs the operator's policy
            if o.evidence is not None and o.evidence != "se":
                assert o.reference_values, o.key
                assert set(o.reference_values) <= set(catalogue.DEFAULT_POLICY_REFERENCE_VALUES)

    def test_s390x_only_for_se(self):
        for o in catalogue.OFFERINGS:
            assert (o.arch == "s390x") == (o.tee == "se"), o.key


class TestImpossibleCombinations:
    """The combinations the product refuses are absent from the catalogue."""

    @pytest.mark.parametrize(
        "provider,tee",
        [
            ("aws", "tdx"),
            ("aws", "sev"),
            ("aws", "sgx"),
            ("azure", "se"),
            ("gcp", "se"),
            ("aws", "se"),
            ("azure", "sev"),
            ("azure", "none"),
            ("gcp", "sgx"),
        ],
    )
    def test_not_offered(self, provider, tee):
        assert catalogue.modes_for(provider, tee) == []

    def test_sgx_only_as_azure_nodes(self):
        assert [o.key for o in catalogue.OFFERINGS if o.tee == "sgx"] == [("azure", "sgx", "nodes")]

    def test_gcp_series(self):
        assert catalogue.find("gcp", "snp", "peer-pods") is None  # catalogue.REFUSED
        assert catalogue.find("gcp", "tdx", "peer-pods").families == ("c3",)
        snp = catalogue.find("gcp", "snp", "nodes")
        assert snp.platform["minCpuPlatform"] == "AMD Milan"
        assert snp.platform["onHostMaintenance"] == "TERMINATE"

    def test_where_available_lists_alternatives(self):
        text = catalogue.where_available("tdx")
        # no azure nodes: AKS refuses TDX node pools (Azure/AKS#5618, catalogue.REFUSED)
        assert text == "azure (peer-pods), baremetal (bare-metal), gcp (nodes, peer-pods)"


class TestFamilies:
    """Instance types map to the family names the catalogue lists."""

    @pytest.mark.parametrize(
        "provider,instance_type,family",
        [
            ("azure", "Standard_DC4as_v5", "DCasv5"),
            ("azure", "Standard_EC16ads_v5", "ECadsv5"),
            ("azure", "Standard_DC2es_v5", "DCesv5"),
            ("azure", "Standard_DC8s_v3", "DCsv3"),
            ("azure", "Standard_E8-4as_v5", "Easv5"),
            ("azure", "Standard_D4s_v5", "Dsv5"),
            ("aws", "m6a.large", "m6a"),
            ("aws", "c6a.48xlarge", "c6a"),
            ("gcp", "n2d-standard-4", "n2d"),
            ("gcp", "c3-highmem-8", "c3"),
            ("ibmcloud", "bz2e-2x8", "bz2e"),
            ("azure", "DC4as_v5", None),
            ("aws", "m6a", None),
            ("gcp", "n2d", None),
            ("baremetal", "anything", None),
        ],
    )
    def test_family_of(self, provider, instance_type, family):
        assert catalogue.family_of(provider, instance_type) == family
