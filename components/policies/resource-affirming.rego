# coco-stack default KBS resource policy: release a resource only when the attestation token
# carries at least one submodule, every submodule's EAR status is "affirming", and no submodule
# was attested from sample (no-TEE) evidence.
#
# Input: the EAR claims of the requester's attestation token (input.submods.<name>["ear.status"],
# input.submods.<name>["ear.veraison.annotated-evidence"].<tee>), data: {"plugin",
# "resource-path", "query"} (trustee kbs/src/api_server.rs and kbs/sample_policies/default.rego
# @v0.21.0, whose sample check this keeps). The rule queried is data.policy.allow.
package policy

import rego.v1

default allow := false

allow if {
	data.plugin == "resource"
	count(input.submods) > 0
	every _, submod in input.submods {
		submod["ear.status"] == "affirming"
		not submod["ear.veraison.annotated-evidence"].sample
	}
}
