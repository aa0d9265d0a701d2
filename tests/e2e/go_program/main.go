// A Go program that uses coco-stack's components through the SDK `pulumi package add`
// generates from components/plugin (tests/e2e/test_other_language.py previews it).
package main

import (
	"example.com/pulumi-coco-stack/sdk/go/cocostack"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg := config.New(ctx, "")
		// the second pool's TEE: the test sets an invalid one to see the component refuse it
		tdxTee := cfg.Get("tdxTee")
		if tdxTee == "" {
			tdxTee = "tdx"
		}
		pools := []cocostack.PoolArgs{
			{Name: "snp", Tee: "snp", NodeSelector: map[string]string{"coco-stack.io/tee": "snp"}},
			{Name: "tdx", Tee: tdxTee, NodeSelector: map[string]string{"coco-stack.io/tee": "tdx"}},
		}
		pool, err := cocostack.NewNodePool(ctx, "snp", &cocostack.NodePoolArgs{Pool: pools[0]})
		if err != nil {
			return err
		}
		runtimeArgs := &cocostack.RuntimeArgs{Pools: pools}
		// Helm charts cannot be pulled where the tests run: the stand-in chart's directory
		if chart := cfg.Get("runtimeChart"); chart != "" {
			runtimeArgs.ChartPath = &chart
		}
		runtime, err := cocostack.NewRuntime(ctx, "coco", runtimeArgs)
		if err != nil {
			return err
		}
		kbs, err := cocostack.NewKeyBroker(ctx, "kbs", &cocostack.KeyBrokerArgs{
			Resources: []cocostack.KbsResourceArgs{
				{Path: "default/go/key", Value: cfg.RequireSecret("kbsValue")},
			},
		})
		if err != nil {
			return err
		}
		ctx.Export("runtimeClass", pool.RuntimeClass)
		ctx.Export("runtimeClasses", runtime.RuntimeClasses)
		ctx.Export("kbsUrl", kbs.Url)
		return nil
	})
}
