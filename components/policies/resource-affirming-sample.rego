# coco-stack resource policy for stacks with a `tee: none` (coco-dev) pool: as
# resource-affirming.rego, but sample evidence is accepted, because it is all a guest without a
# TEE can produce. Never used in production (the spec refuses tee none there).
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
