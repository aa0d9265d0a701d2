module github.com/coco-stack/coco-stack/tools/go/caa

go 1.25.10

tool (
	github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/cmd/agent-protocol-forwarder
	github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor/cmd/process-user-data
)

// v0.21.0, not v0.22.0: the module proxy refuses every src/* module of v0.22.0 (tags and
// pseudo-versions of the tag commit 38d0fcf7c7b7). See tools/README.md.
require github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor v0.21.0 // indirect

require (
	github.com/avast/retry-go/v4 v4.6.1 // indirect
	github.com/containerd/log v0.1.0 // indirect
	github.com/containerd/ttrpc v1.2.7 // indirect
	github.com/coreos/go-iptables v0.6.0 // indirect
	github.com/coreos/go-systemd v0.0.0-20190719114852-fd7a80b32e1f // indirect
	github.com/digitalocean/go-smbios v0.0.0-20180907143718-390a4f403a8e // indirect
	github.com/fenglyu/go-dmidecode v0.0.0-20220417074508-03f52eb45fe9 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/kata-containers/kata-containers/src/runtime v0.0.0-20260519201048-cec98e0d976b // indirect
	github.com/klauspost/cpuid/v2 v2.3.0 // indirect
	github.com/moby/sys/mountinfo v0.7.2 // indirect
	github.com/opencontainers/runtime-spec v1.2.1 // indirect
	github.com/pelletier/go-toml/v2 v2.1.0 // indirect
	github.com/sirupsen/logrus v1.9.4 // indirect
	github.com/spf13/cobra v1.10.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/exp v0.0.0-20241108190413-2d47ceb2692f // indirect
	golang.org/x/sys v0.45.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260401024825-9d38bb4040a9 // indirect
	google.golang.org/grpc v1.80.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)

replace (
	// cloud-api-adaptor's go.mod requires its sibling modules at a placeholder version and
	// replaces them with ../cloud-providers and ../peerpod-ctrl, which a dependent module cannot
	// use (replace directives of dependencies are ignored). Their tags of the same release are
	// on the proxy.
	github.com/confidential-containers/cloud-api-adaptor/src/cloud-providers => github.com/confidential-containers/cloud-api-adaptor/src/cloud-providers v0.21.0
	github.com/confidential-containers/cloud-api-adaptor/src/peerpod-ctrl => github.com/confidential-containers/cloud-api-adaptor/src/peerpod-ctrl v0.21.0

	// The kata-containers runtime module (agent protocol stubs) is pinned by v0.21.0 at
	// v0.0.0-20260519201048-cec98e0d976b, which the module proxy refuses; this is the newest
	// pseudo-version it serves (cloud-api-adaptor's main pinned it in April 2026).
	github.com/kata-containers/kata-containers/src/runtime => github.com/kata-containers/kata-containers/src/runtime v0.0.0-20260422184550-8dccf4cf37ae
)
