# `opa test components/policies/resource-affirming.rego components/policies/resource-affirming_test.rego`
# (tests/spec/test_rego.py runs it). Tokens shaped as Trustee v0.21.0's EAR claims
# (attestation-service/docs/example.token.json); trust vectors as spec/rego.py explains.
package policy_test

import rego.v1

import data.policy

affirming := {"configuration": 2, "executables": 3, "hardware": 2}

warning := {"configuration": 36, "executables": 33, "hardware": 2}

contraindicated := {"configuration": 36, "executables": 33, "hardware": 97}

submod(tee, status, vector) := {
	"ear.status": status,
	"ear.trustworthiness-vector": vector,
	"ear.veraison.annotated-evidence": {
		"init_data": "00",
		"report_data": "00",
		tee: {"measurement": "00"},
	},
}

token(submods) := {"eat_profile": "tag:github.com,2024:confidential-containers/Trustee", "submods": submods}

allows(claims) if {
	policy.allow with input as claims
		with data.plugin as "resource"
		with data["resource-path"] as ["default", "key", "1"]
}

test_affirming_snp_released if {
	allows(token({"cpu0": submod("snp", "affirming", affirming)}))
}

test_every_shipped_tee_released if {
	every tee in {"az-snp-vtpm", "az-tdx-vtpm", "se", "snp", "tdx"} {
		allows(token({"cpu0": submod(tee, "affirming", affirming)}))
	}
}

test_two_affirming_submodules_released if {
	allows(token({"cpu0": submod("snp", "affirming", affirming), "cpu1": submod("snp", "affirming", affirming)}))
}

test_warning_denied if {
	not allows(token({"cpu0": submod("snp", "warning", warning)}))
}

test_contraindicated_denied if {
	not allows(token({"cpu0": submod("tdx", "contraindicated", contraindicated)}))
}

test_one_submodule_not_affirming_denied if {
	not allows(token({"cpu0": submod("snp", "affirming", affirming), "cpu1": submod("snp", "warning", warning)}))
}

test_missing_status_denied if {
	sub := object.remove(submod("snp", "affirming", affirming), {"ear.status"})
	not allows(token({"cpu0": sub}))
}

test_missing_evidence_denied if {
	sub := object.remove(submod("snp", "affirming", affirming), {"ear.veraison.annotated-evidence"})
	not allows(token({"cpu0": sub}))
}

test_evidence_claims_alone_denied if {
	sub := {
		"ear.status": "affirming",
		"ear.veraison.annotated-evidence": {"init_data": "00", "report_data": "00"},
	}
	not allows(token({"cpu0": sub}))
}

test_no_submodules_denied if {
	not allows(token({}))
}

test_no_claims_denied if {
	not allows({})
}

test_sample_denied if {
	not allows(token({"cpu0": submod("sample", "affirming", affirming)}))
}

test_sample_denied_even_when_listed if {
	not allows(token({"cpu0": submod("sample", "affirming", affirming)})) with policy.tees as {"sample", "snp"}
}

test_tee_not_run_denied if {
	every tee in {"sgx", "tpm", "cca", "csv", "nvidia", "hygondcu", "sampledevice"} {
		not allows(token({"cpu0": submod(tee, "affirming", affirming)}))
	}
}

test_tee_outside_the_stacks_denied if {
	not allows(token({"cpu0": submod("tdx", "affirming", affirming)})) with policy.tees as {"snp"}
	allows(token({"cpu0": submod("snp", "affirming", affirming)})) with policy.tees as {"snp"}
}

test_mixed_evidence_denied if {
	sub := submod("snp", "affirming", affirming)
	mixed := object.union(sub, {"ear.veraison.annotated-evidence": object.union(sub["ear.veraison.annotated-evidence"], {"tpm": {}})})
	not allows(token({"cpu0": mixed})) with policy.tees as {"snp"}
}

test_other_plugin_denied if {
	not policy.allow with input as token({"cpu0": submod("snp", "affirming", affirming)})
		with data.plugin as "nebula-ca"
}
