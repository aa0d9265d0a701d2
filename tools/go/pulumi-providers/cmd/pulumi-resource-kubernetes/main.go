// pulumi-resource-kubernetes from the github.com/pulumi/pulumi-kubernetes/provider/v4
// module. Upstream's main embeds two files that `go generate` writes and that are
// therefore not in the module zip; tools/build.py (prepare = "pulumi-schema-embed")
// writes them next to this file in its staging copy of the module before building.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	if version.Version == "" {
		panic("pulumi-resource-kubernetes: version not stamped")
	}
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
