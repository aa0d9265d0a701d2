// Command kwok-stages prints the Stage configuration that `kwok` (run on its own, without
// kwokctl) needs to fake nodes and pods: the same defaults kwokctl writes for a cluster
// (pkg/kwokctl/runtime/cluster.go getDefaultNodeStages with lease, getDefaultPodStages):
// node-initialize, node-heartbeat-with-lease, pod-ready, pod-complete and pod-delete.
// The YAML is embedded by kwok's own packages, so it always matches the kwok version built
// next to it. Usage: kwok-stages > stages.yaml; kwok --config stages.yaml ...
package main

import (
	"fmt"
	"os"
	"strings"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kwok-stages > stages.yaml (prints kwok's default node and pod Stages)")
		os.Exit(2)
	}
	docs := []string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for i, doc := range docs {
		if i > 0 {
			fmt.Println("---")
		}
		fmt.Println(strings.TrimRight(doc, "\n"))
	}
}
