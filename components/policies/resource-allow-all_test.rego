# `opa test components/policies/resource-allow-all.rego components/policies/resource-allow-all_test.rego`
# (tests/spec/test_rego.py runs it): allow-all releases whatever the attestation result, which is
# why `coco check` refuses it in production.
package policy_test

import rego.v1

import data.policy

test_releases_on_contraindicated if {
	policy.allow with input as {"submods": {"cpu0": {"ear.status": "contraindicated"}}}
		with data.plugin as "resource"
}

test_releases_without_claims if {
	policy.allow with input as {}
}
