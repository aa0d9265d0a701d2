// Our stand-in for pulumi-tls's local ./shim module (not published on any proxy):
// its import path sits under terraform-provider-tls, so it may import that
// module's internal/provider package.
module github.com/hashicorp/terraform-provider-tls/shim

go 1.25

require (
	github.com/hashicorp/terraform-plugin-framework v1.17.0
	github.com/hashicorp/terraform-provider-tls v1.2.1-0.20260130152455-857b38cda3fc
)
