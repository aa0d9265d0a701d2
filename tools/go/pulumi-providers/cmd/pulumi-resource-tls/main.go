// pulumi-resource-tls: hashicorp's terraform-provider-tls bridged to Pulumi with
// the token layout of pulumi-tls ("tls:index/privateKey:PrivateKey").
package main

import (
	"github.com/hashicorp/terraform-provider-tls/shim"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	bridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"

	"coco-stack.invalid/tools/pulumi-providers/internal/bridged"
)

// version is stamped by tools/build.py (-X main.version=...).
var version string

func res(name string) *bridge.ResourceInfo {
	return &bridge.ResourceInfo{Tok: tokens.Type("tls:index/" + lowerFirst(name) + ":" + name)}
}

func fn(name string) *bridge.DataSourceInfo {
	return &bridge.DataSourceInfo{Tok: tokens.ModuleMember("tls:index/" + lowerFirst(name) + ":" + name)}
}

func lowerFirst(s string) string { return string(s[0]|0x20) + s[1:] }

func providerInfo() bridge.ProviderInfo {
	return bridge.ProviderInfo{
		P:            tfbridge.ShimProvider(shim.NewProvider()),
		Name:         "tls",
		GitHubOrg:    "hashicorp",
		Version:      version,
		MetadataInfo: bridge.NewProviderMetadata(nil),
		Resources: map[string]*bridge.ResourceInfo{
			"tls_cert_request":        res("CertRequest"),
			"tls_locally_signed_cert": res("LocallySignedCert"),
			"tls_private_key":         res("PrivateKey"),
			"tls_self_signed_cert":    res("SelfSignedCert"),
		},
		DataSources: map[string]*bridge.DataSourceInfo{
			"tls_public_key":  fn("getPublicKey"),
			"tls_certificate": fn("getCertificate"),
		},
		EnableZeroDefaultSchemaVersion: true,
		EnableAccurateBridgePreview:    true,
	}
}

func main() { bridged.Serve("tls", providerInfo) }
