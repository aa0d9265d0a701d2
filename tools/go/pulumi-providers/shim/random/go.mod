// Our stand-in for pulumi-random's local ./shim module (not published on any proxy):
// its import path sits under terraform-provider-random, so it may import that
// module's internal/provider package.
module github.com/terraform-providers/terraform-provider-random/shim

go 1.25

require (
	github.com/hashicorp/terraform-plugin-framework v1.17.0
	github.com/terraform-providers/terraform-provider-random v1.3.2-0.20260127150608-de3700a633e4
)
