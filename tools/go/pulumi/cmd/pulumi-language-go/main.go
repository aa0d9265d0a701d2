// pulumi-language-go: a small Go language host for the Pulumi CLI.
//
// Upstream's host lives in the module
// github.com/pulumi/pulumi/sdk/go/pulumi-language-go/v3, which the Go module
// proxy reachable here does not serve (the version list, v3.274.0 and the
// pseudo-version of a commit holding it answer 403, 2026-12-07). This host is
// ours. It does what a Go program and `pulumi package add` need:
//
//   - Run: `go build` the program directory (or run the `binary` runtime option)
//     and start it with the PULUMI_* environment the Go SDK reads
//     (sdk/v3/go/pulumi/run.go, the Env* constants);
//   - GeneratePackage: the Go SDK of a schema, written by the CLI's own code
//     generator (pkg/v3/codegen/go.GeneratePackage);
//   - Link: a `require` and a `replace` of the generated SDK's module in the
//     program's go.mod; InstallDependencies: `go mod tidy`.
//
// Left out on purpose: program generation (GenerateProject, GenerateProgram,
// Template), Pack, the debugger, plugin discovery from go.mod (GetRequiredPackages
// answers an empty list: the CLI loads providers when the program first uses
// them, from $PATH or the project's `packages:`), and RunPlugin (Go plugins).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	gogen "github.com/pulumi/pulumi/pkg/v3/codegen/go"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/constant"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/mod/modfile"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

const toolName = "pulumi-language-go"

func main() {
	var tracing string
	flag.StringVar(&tracing, "tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	showVersion := flag.Bool("version", false, "Print the plugin version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing(toolName, toolName, tracing)

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		cancel()
		close(stop)
	}()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check host RPC server: %w", err))
		}
	}

	runCtx, runCancel := context.WithCancel(context.Background())
	h := &host{engineAddress: engineAddress, tracing: tracing, runCtx: runCtx, cancel: runCancel}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	engineAddress string
	tracing       string
	runCtx        context.Context // cancelled by the Cancel RPC
	cancel        context.CancelFunc
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	hctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	if err := rpcutil.Healthcheck(hctx, h.engineAddress, 5*time.Minute, cancel); err != nil {
		return nil, fmt.Errorf("could not start health check host RPC server: %w", err)
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()
	return &emptypb.Empty{}, nil
}

// binaryOption is the `runtime.options.binary` of Pulumi.yaml: a prebuilt program.
func binaryOption(info *pulumirpc.ProgramInfo) (string, error) {
	if info.GetOptions() == nil {
		return "", nil
	}
	opts := info.GetOptions().AsMap()
	for k := range opts {
		if k != "binary" {
			return "", fmt.Errorf("runtime option %q is not supported by this language host (only binary)", k)
		}
	}
	v, ok := opts["binary"]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", errors.New("binary option must be a string")
	}
	if s != "" && !filepath.IsAbs(s) {
		s = filepath.Join(info.GetRootDirectory(), s)
	}
	return s, nil
}

// Run builds the program with `go build` (unless the binary option names one)
// and runs it with the environment the Go SDK reads.
func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if h.engineAddress == "" {
		return nil, errors.New("when debugging or running explicitly, must call Handshake before Run")
	}
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{Error: "this language host cannot attach a debugger"}, nil
	}
	program, err := binaryOption(req.GetInfo())
	if err != nil {
		return nil, err
	}
	runCtx, runCancel := context.WithCancel(h.runCtx)
	defer runCancel()
	context.AfterFunc(ctx, runCancel)

	if program == "" {
		tmp, err := os.MkdirTemp("", "pulumi-go-program-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		program = filepath.Join(tmp, "program")
		build := exec.CommandContext(runCtx, "go", "build", "-o", program, ".")
		build.Dir = req.GetInfo().GetProgramDirectory()
		if out, err := build.CombinedOutput(); err != nil {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf(
				"unable to build the Go program in %s (go build -o %s .): %v\n%s",
				build.Dir, program, err, out)}, nil
		}
	}

	cfg, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("failed to serialize configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	keys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("failed to serialize configuration secret keys: %w", err)
	}
	env := append(os.Environ(),
		pulumi.EnvMonitor+"="+req.GetMonitorAddress(),
		pulumi.EnvEngine+"="+h.engineAddress,
		pulumi.EnvProject+"="+req.GetProject(),
		pulumi.EnvStack+"="+req.GetStack(),
		pulumi.EnvOrganization+"="+req.GetOrganization(),
		pulumi.EnvPulumiRootDirectory+"="+req.GetInfo().GetRootDirectory(),
		pulumi.EnvDryRun+"="+strconv.FormatBool(req.GetDryRun()),
		pulumi.EnvParallel+"="+strconv.Itoa(int(req.GetParallel())),
		pulumi.EnvConfig+"="+string(cfg),
		pulumi.EnvConfigSecretKeys+"="+string(keys),
	)
	if h.tracing != "" {
		env = append(env, "PULUMI_TRACING="+h.tracing)
	}

	cmd := exec.CommandContext(runCtx, program, req.GetArgs()...)
	cmd.Dir = req.GetPwd()
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	logging.V(5).Infof("language host launching: %s", program)
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Exited() {
				if ws.ExitStatus() == constant.ExitStatusLoggedError {
					// the SDK has logged the error through the engine already
					return &pulumirpc.RunResponse{Bail: true}, nil
				}
				return &pulumirpc.RunResponse{
					Error: fmt.Sprintf("program exited with non-zero exit code: %d", ws.ExitStatus()),
				}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited unexpectedly: %v", exitErr)}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("problem executing program: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// InstallDependencies backs `pulumi install` and the install step of `pulumi
// package add`: `go mod tidy` in the program directory.
func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	dir := req.GetInfo().GetProgramDirectory()
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return fmt.Errorf("no go.mod in %s: run `go mod init <module>` there first", dir)
	}
	fmt.Fprintln(stdout, "Installing dependencies (go mod tidy)...")
	cmd := exec.CommandContext(server.Context(), "go", "mod", "tidy")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`go mod tidy` in %s failed: %w", dir, err)
	}
	fmt.Fprintln(stdout, "Finished installing dependencies")
	return closer.Close()
}

// GeneratePackage writes the Go SDK of req.Schema into req.Directory with the
// CLI's own Go code generator.
func (h *host) GeneratePackage(ctx context.Context, req *pulumirpc.GeneratePackageRequest,
) (*pulumirpc.GeneratePackageResponse, error) {
	loader, err := schema.NewLoaderClient(req.GetLoaderTarget())
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	var spec schema.PackageSpec
	if err := json.Unmarshal([]byte(req.GetSchema()), &spec); err != nil {
		return nil, fmt.Errorf("invalid package schema: %w", err)
	}
	pkg, diags, err := schema.BindSpecWithContext(ctx, spec, loader, schema.ValidationOptions{})
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("invalid package schema: %w", diags)
	}
	if req.GetLocal() {
		pkg.SupportPack = true
	}
	files, err := gogen.GeneratePackage(toolName, pkg, req.GetLocalDependencies())
	if err != nil {
		return nil, err
	}
	for name, content := range req.GetExtraFiles() {
		files[name] = content
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(req.GetDirectory(), filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil { //nolint:gosec // SDK sources
			return nil, err
		}
	}
	return &pulumirpc.GeneratePackageResponse{}, nil
}

// Link makes the program's go.mod use each generated SDK from its directory:
// `require MODULE v0.0.0-...` and `replace MODULE => ./PATH`, MODULE being the
// module line of the SDK's go.mod. The next `go mod tidy` completes go.sum.
func (h *host) Link(ctx context.Context, req *pulumirpc.LinkRequest) (*pulumirpc.LinkResponse, error) {
	root := req.GetInfo().GetRootDirectory()
	programDir := req.GetInfo().GetProgramDirectory()
	goModPath := filepath.Join(programDir, "go.mod")
	data, err := os.ReadFile(goModPath)
	if err != nil {
		return nil, fmt.Errorf("linking needs the program's go.mod: %w", err)
	}
	mod, err := modfile.Parse(goModPath, data, nil)
	if err != nil {
		return nil, err
	}
	var imports []string
	for _, dep := range req.GetPackages() {
		sdkDir := filepath.Join(root, dep.GetPath())
		sdkModPath := filepath.Join(sdkDir, "go.mod")
		sdkMod, err := os.ReadFile(sdkModPath)
		if err != nil {
			return nil, fmt.Errorf("package %s: the generated SDK has no go.mod: %w", dep.GetPackage().GetName(), err)
		}
		modulePath := modfile.ModulePath(sdkMod)
		if modulePath == "" {
			return nil, fmt.Errorf("%s has no module line", sdkModPath)
		}
		rel, err := filepath.Rel(programDir, sdkDir)
		if err != nil {
			return nil, err
		}
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, ".") {
			rel = "./" + rel
		}
		if err := mod.AddRequire(modulePath, "v0.0.0-00010101000000-000000000000"); err != nil {
			return nil, err
		}
		if err := mod.AddReplace(modulePath, "", rel, ""); err != nil {
			return nil, err
		}
		pkgDir, err := rootPackageDir(sdkDir)
		if err != nil {
			return nil, err
		}
		imports = append(imports, modulePath+"/"+filepath.ToSlash(pkgDir))
	}
	mod.Cleanup()
	out, err := mod.Format()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(goModPath, out, 0o600); err != nil {
		return nil, err
	}
	sort.Strings(imports)
	var b strings.Builder
	b.WriteString("The Go SDK is linked in go.mod; import it as:\n\n")
	for _, imp := range imports {
		fmt.Fprintf(&b, "  import %q\n", imp)
	}
	return &pulumirpc.LinkResponse{ImportInstructions: b.String()}, nil
}

// rootPackageDir is the directory of the SDK's root package, relative to the
// SDK: the one holding pulumi-plugin.json (codegen/go writes it there).
func rootPackageDir(sdkDir string) (string, error) {
	var found string
	err := filepath.WalkDir(sdkDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if found == "" && !d.IsDir() && d.Name() == "pulumi-plugin.json" {
			found, err = filepath.Rel(sdkDir, filepath.Dir(path))
			if err != nil {
				return err
			}
			return io.EOF
		}
		return nil
	})
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if found == "" {
		return "", fmt.Errorf("%s: no pulumi-plugin.json in the generated SDK", sdkDir)
	}
	return found, nil
}
