// Package shim exposes terraform-provider-tls's internal provider to the bridge.
package shim

import (
	tfpf "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-provider-tls/internal/provider"
)

// NewProvider returns the upstream Terraform provider.
func NewProvider() tfpf.Provider { return provider.New() }
