# coco-stack default KBS resource policy: release a resource only when the attestation token
# carries at least one submodule, every submodule's EAR status is "affirming", its evidence
# comes from a TEE this stack runs, and no submodule was attested from sample (no-TEE) evidence.
#
# Input: the EAR claims of the requester's attestation token (input.submods.<name>["ear.status"],
# input.submods.<name>["ear.veraison.annotated-evidence"].<tee>), data: {"plugin",
# "resource-path", "query"} (trustee kbs/src/api_server.rs and kbs/sample_policies/default.rego
# @v0.21.0, whose sample check this keeps). The rule queried is data.policy.allow.
package policy

import rego.v1

# The TEEs whose evidence this stack's guests present: Trustee's TEE names as they appear in
# "ear.veraison.annotated-evidence" (attestation-service/docs/tcb_claims.md@v0.21.0). coco-stack
# writes this line for each stack (spec/rego.py builtin_resource_policy); as shipped it lists
# every TEE coco-stack runs.
tees := {"az-snp-vtpm", "az-tdx-vtpm", "se", "snp", "tdx"}

# What the attestation service puts next to the TEE's own claims in the annotated evidence
# (attestation-service/src/ear_token/broker.rs transform_claims@v0.21.0).
evidence_claims := {"init_data", "init_data_claims", "report_data", "runtime_data_claims"}

default allow := false

allow if {
	data.plugin == "resource"
	count(input.submods) > 0
	every _, submod in input.submods {
		submod["ear.status"] == "affirming"
		not submod["ear.veraison.annotated-evidence"].sample
		from_our_tees(submod)
	}
}

# The submodule's evidence is from one or more TEEs, all of them this stack's.
from_our_tees(submod) if {
	found := {name | some name, _ in submod["ear.veraison.annotated-evidence"]} - evidence_claims
	count(found) > 0
	every name in found {
		name in tees
	}
}
