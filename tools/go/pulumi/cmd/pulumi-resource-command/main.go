// pulumi-resource-command: a small implementation of pulumi-command's
// `command:local:Command` resource for the e2e tests.
//
// pulumi-command's provider module (github.com/pulumi/pulumi-command/provider,
// or the repository root module after v1.2.1) and the pulumi-go-provider
// framework it is written with are not served by the Go module proxy reachable
// here, so this provider is ours. It speaks the resource provider protocol of
// the Pulumi SDK and implements what pulumi_command 1.2.1's Python SDK sends for
// local.Command: create/update/delete commands, dir, environment, interpreter,
// stdin, triggers, addPreviousOutputInEnv and logging; outputs stdout and stderr.
// Not implemented (refused with a clear error): assetPaths/archivePaths, the
// remote:* resources (SSH) and the local:run / remote invokes.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is stamped by tools/build.py (-X main.version=...).
var version string

const localCommand = "command:local:Command"

// The inputs of local:Command; everything else in a state is an output.
var inputKeys = []resource.PropertyKey{
	"addPreviousOutputInEnv", "archivePaths", "assetPaths", "create", "delete", "dir",
	"environment", "interpreter", "logging", "stdin", "triggers", "update",
}

func main() {
	if version == "" {
		panic("pulumi-resource-command: version not stamped (build with -ldflags -X main.version=...)")
	}
	err := provider.Main("command", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &commandProvider{host: host}, nil
	})
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
}

type commandProvider struct {
	pulumirpc.UnimplementedResourceProviderServer
	host *provider.HostClient
}

var unmarshal = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}
var marshal = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true}

func checkType(urn string) error {
	t := string(resource.URN(urn).Type())
	if t != localCommand {
		return fmt.Errorf("resource type %s is not implemented by this pulumi-resource-command "+
			"(coco-stack tools/go/pulumi implements only %s)", t, localCommand)
	}
	return nil
}

func (p *commandProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (p *commandProvider) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	str := map[string]any{"type": "string"}
	strs := map[string]any{"type": "array", "items": str}
	inputs := map[string]any{
		"addPreviousOutputInEnv": map[string]any{"type": "boolean"},
		"create":                 str,
		"delete":                 str,
		"update":                 str,
		"dir":                    str,
		"stdin":                  str,
		"environment":            map[string]any{"type": "object", "additionalProperties": str},
		"interpreter":            strs,
		"triggers":               map[string]any{"type": "array", "items": map[string]any{"$ref": "pulumi.json#/Any"}},
	}
	outputs := map[string]any{"stdout": str, "stderr": str}
	for k, v := range inputs {
		outputs[k] = v
	}
	schema := map[string]any{
		"name":        "command",
		"version":     version,
		"description": "local:Command only (coco-stack's own implementation of pulumi-command)",
		"resources": map[string]any{
			localCommand: map[string]any{
				"inputProperties": inputs,
				"properties":      outputs,
				"required":        []string{"stdout", "stderr"},
			},
		},
	}
	b, err := json.Marshal(schema)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetSchemaResponse{Schema: string(b)}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *commandProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *commandProvider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, AcceptResources: true, SupportsPreview: true}, nil
}

func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), unmarshal)
	if err != nil {
		return nil, err
	}
	var failures []*pulumirpc.CheckFailure
	for _, k := range []resource.PropertyKey{"assetPaths", "archivePaths"} {
		if v, ok := news[k]; ok && !v.IsNull() {
			failures = append(failures, &pulumirpc.CheckFailure{
				Property: string(k), Reason: string(k) + " is not implemented by this pulumi-resource-command",
			})
		}
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews(), Failures: failures}, nil
}

func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.GetOldInputs(), unmarshal)
	if err != nil {
		return nil, err
	}
	if len(olds) == 0 { // states written without old inputs: the inputs are in the outputs
		if olds, err = plugin.UnmarshalProperties(req.GetOlds(), unmarshal); err != nil {
			return nil, err
		}
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), unmarshal)
	if err != nil {
		return nil, err
	}
	var diffs, replaces []string
	detailed := map[string]*pulumirpc.PropertyDiff{}
	for _, k := range inputKeys {
		o, oOK := olds[k]
		n, nOK := news[k]
		if oOK == nOK && (!oOK || o.DeepEquals(n)) {
			continue
		}
		diffs = append(diffs, string(k))
		kind := pulumirpc.PropertyDiff_UPDATE
		switch {
		case !oOK:
			kind = pulumirpc.PropertyDiff_ADD
		case !nOK:
			kind = pulumirpc.PropertyDiff_DELETE
		}
		// Changed triggers replace the resource unless there is an update command.
		if k == "triggers" && !hasString(news, "update") {
			replaces = append(replaces, string(k))
			kind += pulumirpc.PropertyDiff_ADD_REPLACE - pulumirpc.PropertyDiff_ADD
		}
		detailed[string(k)] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
	}
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{
		Changes: changes, Diffs: diffs, Replaces: replaces, DetailedDiff: detailed, HasDetailedDiff: true,
	}, nil
}

func hasString(m resource.PropertyMap, k resource.PropertyKey) bool {
	v, ok := m[k]
	if ok && v.IsSecret() {
		v = v.SecretValue().Element
	}
	return ok && v.IsString() && v.StringValue() != ""
}

// plain returns the string value of m[k] (unwrapping a secret), whether it was
// secret, and whether it is still unknown (preview).
func plain(v resource.PropertyValue) (s string, secret, unknown bool) {
	if v.IsSecret() {
		secret = true
		v = v.SecretValue().Element
	}
	if v.IsComputed() || v.IsOutput() && !v.OutputValue().Known {
		return "", secret, true
	}
	if v.IsOutput() {
		secret = secret || v.OutputValue().Secret
		v = v.OutputValue().Element
	}
	if v.IsString() {
		return v.StringValue(), secret, false
	}
	if v.IsBool() {
		return fmt.Sprint(v.BoolValue()), secret, false
	}
	return "", secret, false
}

type run struct {
	stdout, stderr string
	secret         bool
}

// execute runs command (create, update or delete) with the resource's inputs.
func (p *commandProvider) execute(ctx context.Context, urn, which string, inputs, prev resource.PropertyMap,
) (*run, error) {
	script, secret, _ := plain(inputs[resource.PropertyKey(which)])
	interpreter := []string{"/bin/sh", "-c"}
	if v, ok := inputs["interpreter"]; ok && v.IsArray() && len(v.ArrayValue()) > 0 {
		interpreter = nil
		for _, e := range v.ArrayValue() {
			s, sec, _ := plain(e)
			secret = secret || sec
			interpreter = append(interpreter, s)
		}
	}
	args := append(append([]string{}, interpreter[1:]...), script)
	cmd := exec.CommandContext(ctx, interpreter[0], args...)
	cmd.Env = os.Environ()
	if v, ok := inputs["environment"]; ok {
		if v.IsSecret() {
			secret = true
			v = v.SecretValue().Element
		}
		if v.IsObject() {
			keys := v.ObjectValue().StableKeys()
			for _, k := range keys {
				s, sec, _ := plain(v.ObjectValue()[k])
				secret = secret || sec
				cmd.Env = append(cmd.Env, string(k)+"="+s)
			}
		}
	}
	addPrev := true
	if v, ok := inputs["addPreviousOutputInEnv"]; ok && v.IsBool() {
		addPrev = v.BoolValue()
	}
	if addPrev && prev != nil {
		out, _, _ := plain(prev["stdout"])
		errOut, _, _ := plain(prev["stderr"])
		cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDOUT="+out, "PULUMI_COMMAND_STDERR="+errOut)
	}
	if dir, _, _ := plain(inputs["dir"]); dir != "" {
		cmd.Dir = dir
	}
	if stdin, sec, _ := plain(inputs["stdin"]); stdin != "" {
		secret = secret || sec
		cmd.Stdin = strings.NewReader(stdin)
	}
	logOut, logErr := true, true
	if v, _, _ := plain(inputs["logging"]); v != "" {
		logOut = v == "stdout" || v == "stdoutAndStderr"
		logErr = v == "stderr" || v == "stdoutAndStderr"
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if !secret && p.host != nil {
		if logOut && stdout.Len() > 0 {
			_ = p.host.LogStatus(ctx, diag.Info, resource.URN(urn), strings.TrimRight(stdout.String(), "\n"))
		}
		if logErr && stderr.Len() > 0 {
			_ = p.host.LogStatus(ctx, diag.Info, resource.URN(urn), strings.TrimRight(stderr.String(), "\n"))
		}
	}
	if err != nil {
		detail := strings.TrimSpace(stderr.String())
		if secret {
			detail = "[secret]"
		}
		return nil, fmt.Errorf("%s command failed: %w: %s", which, err, detail)
	}
	return &run{
		stdout: strings.TrimSuffix(stdout.String(), "\n"),
		stderr: strings.TrimSuffix(stderr.String(), "\n"),
		secret: secret,
	}, nil
}

func outputs(inputs resource.PropertyMap, r *run) resource.PropertyMap {
	out := inputs.Copy()
	if r == nil {
		out["stdout"] = resource.MakeComputed(resource.NewStringProperty(""))
		out["stderr"] = resource.MakeComputed(resource.NewStringProperty(""))
		return out
	}
	out["stdout"] = resource.NewStringProperty(r.stdout)
	out["stderr"] = resource.NewStringProperty(r.stderr)
	if r.secret {
		out["stdout"] = resource.MakeSecret(out["stdout"])
		out["stderr"] = resource.MakeSecret(out["stderr"])
	}
	return out
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	inputs, err := plugin.UnmarshalProperties(req.GetProperties(), unmarshal)
	if err != nil {
		return nil, err
	}
	var r *run
	if !req.GetPreview() {
		if inputs.ContainsUnknowns() {
			return nil, fmt.Errorf("inputs still contain unknown values")
		}
		if hasString(inputs, "create") {
			if r, err = p.execute(ctx, req.GetUrn(), "create", inputs, nil); err != nil {
				return nil, err
			}
		} else {
			r = &run{}
		}
	}
	props, err := plugin.MarshalProperties(outputs(inputs, r), marshal)
	if err != nil {
		return nil, err
	}
	id := newID()
	if req.GetPreview() {
		id = ""
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	inputs, err := plugin.UnmarshalProperties(req.GetNews(), unmarshal)
	if err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.GetOlds(), unmarshal)
	if err != nil {
		return nil, err
	}
	var r *run
	if !req.GetPreview() {
		which := "create"
		if hasString(inputs, "update") {
			which = "update"
		}
		if hasString(inputs, resource.PropertyKey(which)) {
			if r, err = p.execute(ctx, req.GetUrn(), which, inputs, olds); err != nil {
				return nil, err
			}
		} else {
			r = &run{}
		}
	}
	props, err := plugin.MarshalProperties(outputs(inputs, r), marshal)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.GetProperties(), unmarshal)
	if err != nil {
		return nil, err
	}
	if hasString(olds, "delete") {
		if _, err := p.execute(ctx, req.GetUrn(), "delete", olds, olds); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// Read (refresh) keeps the recorded state: a command's effects cannot be read back.
func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (p *commandProvider) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	return nil, fmt.Errorf("function %s is not implemented by this pulumi-resource-command", req.GetTok())
}

func (p *commandProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (p *commandProvider) GetMapping(context.Context, *pulumirpc.GetMappingRequest) (*pulumirpc.GetMappingResponse, error) {
	return &pulumirpc.GetMappingResponse{}, nil
}
