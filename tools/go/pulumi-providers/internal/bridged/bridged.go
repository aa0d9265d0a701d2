// Package bridged holds what our two Terraform-bridged providers (random, tls)
// share: the pulumi-random and pulumi-tls provider modules are not served by the
// Go module proxy, so tools/go/pulumi maps the upstream Terraform providers with
// pulumi-terraform-bridge itself.
package bridged

import (
	"context"
	"fmt"
	"io"
	"sync"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

// Serve runs the provider. The Pulumi package schema is not embedded (upstream
// generates it with tfgen into a gitignored file at build time); it is computed
// from info on the first GetSchema call, which `pulumi up` does not make.
func Serve(name string, info func() tfbridge.ProviderInfo) {
	if info().Version == "" {
		panic(fmt.Sprintf("pulumi-resource-%s: version not stamped (build with -ldflags -X main.version=...)", name))
	}
	var once sync.Once
	var schema []byte
	var schemaErr error
	getSchema := func(ctx context.Context, _ plugin.GetSchemaRequest) ([]byte, error) {
		once.Do(func() {
			res, err := pftfgen.GenerateSchema(ctx, pftfgen.GenerateSchemaOptions{
				ProviderInfo:    info(),
				DiagnosticsSink: diag.DefaultSink(io.Discard, io.Discard, diag.FormatOptions{Color: colors.Never}),
				XInMemoryDocs:   true,
			})
			if err != nil {
				schemaErr = err
				return
			}
			schema = res.ProviderMetadata.PackageSchema
		})
		return schema, schemaErr
	}
	pftfbridge.Main(context.Background(), name, info(), pftfbridge.ProviderMetadata{XGetSchema: getSchema})
}
