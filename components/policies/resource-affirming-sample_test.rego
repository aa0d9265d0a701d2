# `opa test components/policies/resource-affirming-sample.rego components/policies/resource-affirming-sample_test.rego`
# (tests/spec/test_rego.py runs it). Tokens as in resource-affirming_test.rego.
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
		tee: {"launch_digest": "abcde"},
	},
}

token(submods) := {"eat_profile": "tag:github.com,2024:confidential-containers/Trustee", "submods": submods}

allows(claims) if {
	policy.allow with input as claims
		with data.plugin as "resource"
		with data["resource-path"] as ["default", "dev", "greeting"]
}

test_affirming_sample_released if {
	allows(token({"cpu0": submod("sample", "affirming", affirming)}))
}

test_affirming_snp_released if {
	allows(token({"cpu0": submod("snp", "affirming", affirming)}))
}

test_sample_warning_denied if {
	not allows(token({"cpu0": submod("sample", "warning", warning)}))
}

test_sample_contraindicated_denied if {
	not allows(token({"cpu0": submod("sample", "contraindicated", contraindicated)}))
}

test_missing_status_denied if {
	not allows(token({"cpu0": object.remove(submod("sample", "affirming", affirming), {"ear.status"})}))
}

test_no_submodules_denied if {
	not allows(token({}))
}

test_no_claims_denied if {
	not allows({})
}

test_sample_denied_when_not_listed if {
	not allows(token({"cpu0": submod("sample", "affirming", affirming)})) with policy.tees as {"snp"}
}

test_tee_not_run_denied if {
	every tee in {"sgx", "tpm", "cca", "csv", "nvidia", "hygondcu", "sampledevice"} {
		not allows(token({"cpu0": submod(tee, "affirming", affirming)}))
	}
}
