// Package shim exposes terraform-provider-random's internal provider to the bridge.
package shim

import (
	tfpf "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream Terraform provider.
func NewProvider() tfpf.Provider { return provider.New() }
