// pulumi-resource-random: hashicorp's terraform-provider-random bridged to Pulumi
// with the token layout of pulumi-random ("random:index/randomPassword:RandomPassword").
package main

import (
	"context"
	"errors"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	bridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/terraform-providers/terraform-provider-random/shim"

	"coco-stack.invalid/tools/pulumi-providers/internal/bridged"
)

// version is stamped by tools/build.py (-X main.version=...).
var version string

func providerInfo() bridge.ProviderInfo {
	info := bridge.ProviderInfo{
		P:            tfbridge.ShimProvider(shim.NewProvider()),
		Name:         "random",
		Version:      version,
		MetadataInfo: bridge.NewProviderMetadata(nil),
		Resources: map[string]*bridge.ResourceInfo{
			// random_bytes has no id attribute: its base64 value is the id.
			"random_bytes": {ComputeID: func(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
				v, ok := state["base64"]
				if !ok {
					return "", errors.New("random_bytes: no base64 in state")
				}
				if v.IsSecret() {
					v = v.SecretValue().Element
				}
				if !v.IsString() {
					return "", errors.New("random_bytes: base64 is not a string")
				}
				return resource.ID(v.StringValue()), nil
			}},
			// State written before schema version 1 needs no change.
			"random_string": {PreStateUpgradeHook: func(a bridge.PreStateUpgradeHookArgs) (int64, resource.PropertyMap, error) {
				if a.PriorStateSchemaVersion == 0 {
					return 1, a.PriorState, nil
				}
				return a.PriorStateSchemaVersion, a.PriorState, nil
			}},
		},
		EnableAccurateBridgePreview: true,
		EnableRawStateDelta:         true,
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index",
		func(module, name string) (string, error) {
			return tokens.MakeStandard("random")(module, "Random"+name)
		}))
	return info
}

func main() { bridged.Serve("random", providerInfo) }
