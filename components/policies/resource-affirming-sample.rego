# coco-stack resource policy for stacks with a `tee: none` (coco-dev) pool: as
# resource-affirming.rego, but sample evidence is accepted, because it is all a guest without a
# TEE can produce. Never used in production (the spec refuses tee none there).
package policy

import rego.v1

# As in resource-affirming.rego; coco-stack writes this line for each stack (with "sample").
tees := {"az-snp-vtpm", "az-tdx-vtpm", "sample", "se", "snp", "tdx"}

evidence_claims := {"init_data", "init_data_claims", "report_data", "runtime_data_claims"}

default allow := false

allow if {
	data.plugin == "resource"
	count(input.submods) > 0
	every _, submod in input.submods {
		submod["ear.status"] == "affirming"
		from_our_tees(submod)
	}
}

from_our_tees(submod) if {
	found := {name | some name, _ in submod["ear.veraison.annotated-evidence"]} - evidence_claims
	count(found) > 0
	every name in found {
		name in tees
	}
}
