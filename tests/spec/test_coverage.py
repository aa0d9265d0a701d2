"""Reference-value coverage (spec.coverage): every pool's evidence against what Trustee
v0.21.0's default attestation policy needs to affirm it; the dev stack's KBS holds the sample
values; every sample stack passes or is refused with the pool named."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cli import render
from spec import catalogue, coverage, stackfile
from spec.attestation import SAMPLE_REFERENCE_VALUES
from spec.errors import SpecError
from spec.validate import validate
from tests.conftest import ROOT, STACKS, one
from tests.spec.reference_values import complete

SNP_METAL = {"name": "metal", "tee": "snp", "mode": "bare-metal", "nodeSelector": {"a": "b"}}


def _config(env: str, pool: dict[str, Any], **kbs: Any) -> dict[str, Any]:
    return {
        "coco:environment": env,
        "coco:cluster": {"provider": "existing"},
        "coco:nodePools": [pool],
        "coco:kbs": kbs,
    }


def _coverage_issues(issues: list[Any]) -> list[Any]:
    return [i for i in issues if i.path.startswith("coco:nodePools[") and "evidence" in i.message]


class TestPolicyTable:
    """The table follows ear_default_policy_cpu.rego@v0.21.0 (read there, rule by rule)."""

    def test_every_offering_evidence_is_known(self):
        for offering in catalogue.OFFERINGS:
            if offering.evidence is not None:
                assert offering.evidence in coverage.DEFAULT_POLICY, offering.key

    def test_required_names_are_read_by_the_default_policy(self):
        for evidence in coverage.DEFAULT_POLICY:
            assert set(coverage.required(evidence)) <= set(
                catalogue.DEFAULT_POLICY_REFERENCE_VALUES
            )

    @pytest.mark.parametrize(
        ("evidence", "names"),
        [
            ("sample", ["launch_digest", "major_version", "minimum_minor_version", "svn"]),
            ("snp", ["snp_bootloader", "snp_launch_measurement", "snp_microcode",
                     "snp_snp_svn", "snp_tee_svn"]),
            # tdvfkernel/tdvfkernelparams only lift executables from 4 to 3: both affirming
            ("tdx", ["mr_td", "rtmr_1", "rtmr_2", "xfam"]),
            ("az-snp-vtpm", ["abi_major", "abi_minor", "measurement", "single_socket",
                             "smt_allowed", "smt_enabled", "snp_pcr11", "tcb_bootloader",
                             "tcb_microcode", "tcb_snp", "tcb_tee", "tsme_enabled"]),
            ("az-tdx-vtpm", ["mr_td", "tdx_pcr11", "xfam"]),
            ("tpm", ["tpm_pcr11", "trusted_aks"]),
            ("se", []),
        ],
    )
    def test_required(self, evidence, names):
        assert list(coverage.required(evidence)) == names

    def test_sample_values_are_what_the_sample_verifier_reports(self):
        # deps/verifier/src/sample/mod.rs@v0.21.0 and the guest-components sample attester
        assert SAMPLE_REFERENCE_VALUES == {
            "launch_digest": ["abcde"], "svn": ["1"], "major_version": 1,
            "minimum_minor_version": 4,
        }


class TestRule:
    def test_staging_refuses_naming_pool_names_and_sources(self):
        with pytest.raises(SpecError) as info:
            validate(_config("staging", SNP_METAL), stack="t")
        (issue,) = _coverage_issues(info.value.issues)
        assert issue.path == "coco:nodePools[0]" and issue.severity == "error"
        assert "pool 'metal'" in issue.message and "snp evidence" in issue.message
        for name in ("snp_launch_measurement", "snp_bootloader", "snp_microcode",
                     "snp_snp_svn", "snp_tee_svn"):
            assert name in issue.message
        assert "hardware 97 (contraindicated)" in issue.message
        assert "coco:kbs.kataGuest" in issue.hint and "by hand" in issue.hint
        assert "snphost show tcb" in issue.hint

    def test_the_pool_is_named_by_its_position_in_the_file(self):
        # an earlier pool that fails type checking does not shift the path
        config = _config("staging", SNP_METAL)
        config["coco:nodePools"].insert(0, {"name": "bad", "tee": "bogus"})
        with pytest.raises(SpecError) as info:
            validate(config, stack="t")
        (issue,) = _coverage_issues(info.value.issues)
        assert issue.path == "coco:nodePools[1]" and "pool 'metal'" in issue.message

    def test_production_refuses(self):
        with pytest.raises(SpecError) as info:
            validate(_config("production", SNP_METAL), stack="t")
        assert "refused in production" in _coverage_issues(info.value.issues)[0].message

    def test_dev_warns(self):
        _, warnings = validate(_config("dev", SNP_METAL), stack="t")
        (issue,) = _coverage_issues(warnings)
        assert issue.severity == "warning" and "refused in staging" in issue.hint

    def test_complete_values_pass(self):
        _, warnings = validate(
            _config("staging", SNP_METAL, referenceValues=complete("snp")), stack="t"
        )
        assert _coverage_issues(warnings) == []

    def test_snp_configuration_flags_are_optional(self):
        values = complete("snp")
        assert "snp_smt_enabled" not in values  # configuration 3 without them: affirming
        validate(_config("production", {**SNP_METAL}, referenceValues=values,
                         expose="ingress", hostname="kbs.example.com"), stack="t")

    def test_kata_guest_supplies_the_launch_measurement(self):
        found = coverage.gap(
            validate(_config("dev", SNP_METAL), stack="t")[0].node_pools[0],
            validate(_config("dev", SNP_METAL, kataGuest={"cmdline": "x"}), stack="t")[0].kbs,
        )
        assert found is not None and "snp_launch_measurement" not in found.missing

    def test_tdx_missing_names_the_minimal_set(self):
        pool = {"name": "t", "tee": "tdx", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
        _, warnings = validate(_config("dev", pool, referenceValues={"rtmr_1": ["a"]}),
                               stack="t")
        (issue,) = _coverage_issues(warnings)
        assert "mr_td, rtmr_2, xfam" in issue.message and "tdvfkernel" not in issue.message

    def test_azure_peer_pods_name_the_pcr11_source(self):
        config = {
            "coco:environment": "staging",
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "p", "tee": "tdx"}],
            "coco:image": {"recipe": "podvm"},
            "coco:kbs": {"expose": "loadbalancer", "hostname": "kbs.example.com"},
        }
        with pytest.raises(SpecError) as info:
            validate(config, stack="t")
        (issue,) = _coverage_issues(info.value.issues)
        assert "az-tdx-vtpm" in issue.message and "tdx_pcr11" in issue.message
        assert "image build's PCR 11 prediction" in issue.hint

    def test_own_attestation_policy_is_not_second_guessed(self, tmp_path):
        (tmp_path / "p.rego").write_text("package policy\n")
        _, warnings = validate(
            _config("staging", SNP_METAL, attestationPolicy="p.rego"), stack="t",
            base_dir=str(tmp_path),
        )
        assert _coverage_issues(warnings) == []

    def test_se_needs_nothing(self):
        pool = {"name": "se", "tee": "se", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
        spec, _ = validate(_config("staging", pool), stack="t")
        assert coverage.gap(spec.node_pools[0], spec.kbs) is None

    def test_placeholder_values_warn_and_production_refuses(self):
        values = {**complete("snp"), "snp_bootloader": ["PLACEHOLDER-x"]}
        _, warnings = validate(_config("staging", SNP_METAL, referenceValues=values), stack="t")
        assert "coco:kbs.referenceValues.snp_bootloader" in {w.path for w in warnings}
        with pytest.raises(SpecError) as info:
            validate(_config("production", SNP_METAL, referenceValues=values,
                             expose="ingress", hostname="kbs.example.com"), stack="t")
        assert [i.path for i in info.value.issues] == ["coco:kbs.referenceValues.snp_bootloader"]


class TestSampleStacks:
    @pytest.mark.parametrize("stack", STACKS)
    def test_passes_or_is_refused_with_the_pool_named(self, stack):
        sf = stackfile.load(stack, ROOT)
        try:
            spec, warnings = validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                                      base_dir=str(sf.project_dir))
        except SpecError as exc:  # pragma: no cover - no shipped stack is refused today
            issues = _coverage_issues(exc.issues)
            assert issues and all("pool '" in i.message for i in issues)
            return
        for issue in _coverage_issues(warnings):
            assert spec.environment == "dev" and "pool '" in issue.message

    @pytest.mark.parametrize("stack", ["baremetal-snp", "baremetal-tdx"])
    def test_bare_metal_samples_show_the_complete_set(self, stack):
        sf = stackfile.load(stack, ROOT)
        spec, warnings = validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                                  base_dir=str(sf.project_dir))
        assert spec.environment == "staging" and _coverage_issues(warnings) == []
        for pool in spec.node_pools:
            assert coverage.gap(pool, spec.kbs) is None


class TestDevRendersSampleValues:
    def test_dev_rvps_holds_the_sample_values(self):
        result = render.run_stack("dev", ROOT)
        data = render.unwrap(
            one(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values").inputs
        )["data"]
        stored = {name: json.loads(record)["value"] for name, record in data.items()}
        assert stored == {"launch_digest": ["abcde"], "major_version": 1,
                          "minimum_minor_version": 4, "svn": ["1"]}

    def test_user_values_join_the_sample_values(self, render_config):
        config = copy.deepcopy(_config("dev", {"name": "d", "tee": "none", "mode": "bare-metal",
                                                "nodeSelector": {"a": "b"}},
                                       referenceValues={"svn": ["2"]}))
        result = render_config(config)
        data = render.unwrap(
            one(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values").inputs
        )["data"]
        assert json.loads(data["svn"])["value"] == ["1", "2"]
