# coco-stack default KBS resource policy: release a resource only when the attestation token
# carries at least one submodule and every submodule's EAR status is "affirming".
#
# Input: the EAR claims of the requester's attestation token (input.submods.<name>["ear.status"]),
# data: {"plugin", "resource-path", "query"} (trustee kbs/src/api_server.rs@v0.21.0).
# The rule queried is data.policy.allow (KBS_POLICY_RULE).
package policy

import rego.v1

default allow := false

allow if {
	data.plugin == "resource"
	count(input.submods) > 0
	every _, submod in input.submods {
		submod["ear.status"] == "affirming"
	}
}
