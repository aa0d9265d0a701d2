"""`coco render`: run the real program under the Pulumi SDK's mock monitor and write what it
registers, for review without the Pulumi CLI, credentials or a cluster.

The monitor records each RegisterResource request as the engine would receive it: type, name,
parent, dependencies and the serialized inputs, in which Pulumi secrets still carry their secret
signature. Secrets are rendered as "[secret]"; Kubernetes Secret data is redacted whatever its
marking, key by key (the keys stay, in resources.json and manifests/, so `coco diff` sees one
go). Output is sorted and key-ordered, so the same stack renders to the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format  # type: ignore[import-untyped]

from images import files as files_mod
from images.files import OutputKind
from spec import extras, stackfile, support
from spec.errors import RenderError
from spec.model import Spec
from spec.validate import validate

NOTICE = (
    "coco render output: NOT `pulumi preview`. The real program ran under the Pulumi SDK's mock "
    "monitor: no provider computed a diff, nothing was read from a cloud or cluster, and "
    "cloud-computed values are placeholders. Review inputs here; run `pulumi preview` for the "
    "real plan."
)
SECRET = "[secret]"
MARKER = ".coco-render"  # written into every --out dir; only such dirs are cleaned on re-render
UNKNOWN = "[unknown]"

# Signatures of the Pulumi wire format (pulumi/sdk/python/lib/pulumi/runtime/rpc.py).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270"
_SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e"
_SIG_ASSET = "c44067f5952c0a294b673a41bacd8c17"
_SIG_ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# Environment the Kubernetes provider reads when its inputs are unset (KUBECONFIG, context
# overrides): cleared during a render so the output does not depend on the reviewer's machine.
_ENV_CLEARED = ("KUBECONFIG", "PULUMI_K8S_", "KUBERNETES_", "PULUMI_CONFIG")


# The program's pulumi.log warnings repeat validation warnings the CLI already prints.
_QUIET = logging.getLogger("coco.render.engine")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(frozen=True)
class Secret:
    """A value that arrived at the monitor marked secret."""

    value: Any


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent_urn: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    provider: str = ""  # "<provider urn>::<provider id>" for custom resources


@dataclass
class Render:
    """The result of one render: every registration and the stack outputs, values unredacted
    (Secret-wrapped where marked secret); `document()` and `manifests()` give the redacted form."""

    stack: str
    spec: Spec | None  # None for a program other than the stack's (component tests)
    registrations: list[Registration]
    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    # where the program ran; its path (and the interpreter's) in an input, e.g. the guest-image
    # build command, is written as <project> (<python>), so renders of two checkouts compare
    project_dir: Path | None = None

    def by_name(self) -> dict[str, Registration]:
        return {r.name: r for r in self.registrations}

    def document(self) -> dict[str, Any]:
        names = {r.urn: r.name for r in self.registrations}
        resources = []
        for r in sorted(self.registrations, key=lambda r: (r.type, r.name)):
            resources.append(
                {
                    "type": r.type,
                    "name": r.name,
                    "parent": names.get(r.parent_urn),
                    "inputs": self._relocated(
                        _secret_keys_visible(r.inputs, redact(r.inputs))
                        if r.type == "kubernetes:core/v1:Secret"
                        else redact(r.inputs)
                    ),
                    "dependsOn": sorted(
                        {names.get(d, d.rsplit("::", 1)[-1]) for d in r.dependencies}
                    ),
                }
            )
        return {
            "notice": NOTICE,
            "project": "coco",
            "stack": self.stack,
            "resources": resources,
            "outputs": redact(self.outputs),
        }

    def _relocated(self, value: Any) -> Any:
        import sys

        if isinstance(value, dict):
            return {k: self._relocated(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._relocated(v) for v in value]
        if isinstance(value, str):
            value = value.replace(sys.executable, "<python>")  # first: it may be in the project
            if self.project_dir is not None:
                value = value.replace(str(self.project_dir.resolve()), "<project>")
        return value

    def kubernetes_objects(self) -> list[dict[str, Any]]:
        """Every Kubernetes object the project authors (not charts, not providers), redacted."""
        objects = []
        for r in self.registrations:
            if not r.custom or not r.type.startswith("kubernetes:") or "providers" in r.type:
                continue
            if r.type.startswith("kubernetes:helm.sh/") or ":yaml" in r.type:
                continue
            inputs = {k: v for k, v in r.inputs.items() if not k.startswith("__")}
            obj = redact(inputs)
            if obj.get("kind") == "Secret":
                _secret_keys_visible(inputs, obj)
            objects.append(obj)
        return sorted(objects, key=_object_key)


def _object_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")))


def manifest_filename(obj: dict[str, Any]) -> str:
    kind, namespace, name = _object_key(obj)
    parts = [kind.lower(), namespace or "_cluster", name]
    return "-".join(p.replace("/", "_") for p in parts) + ".yaml"


def manifest_files(render: Render) -> dict[str, dict[str, Any]]:
    """manifests/ as {file name: object}, sorted; two objects with one file name are refused."""
    files: dict[str, dict[str, Any]] = {}
    for obj in render.kubernetes_objects():
        name = manifest_filename(obj)
        if name in files:
            raise RenderError(
                f"two Kubernetes objects render to manifests/{name}: the stack declares the "
                "same kind, namespace and name twice",
                "give the clashing object another name or namespace (see the config keys that "
                "set them)",
            )
        files[name] = obj
    return dict(sorted(files.items()))


def stdout_document(render: Render) -> dict[str, Any]:
    """`coco render --out -`: the directory form as one JSON document (resources.json's fields
    and `manifests`: {file name: object}); cli/schemas/render-document.schema.json."""
    from cli import output

    return output.document("render", {**render.document(), "manifests": manifest_files(render)})


def _plain(value: Any) -> Any:
    """Decode the wire format: secrets -> Secret, references -> names, unknowns -> marker."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SIG_SECRET:
            return Secret(_plain(value.get("value")))
        if sig == _SIG_RESOURCE:
            return {"$resource": str(value.get("urn", "")).rsplit("::", 1)[-1]}
        if sig in (_SIG_ASSET, _SIG_ARCHIVE):
            return {"$asset": {k: _plain(v) for k, v in sorted(value.items()) if k != _SIG_KEY}}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format carries every number as a double
    return value


def _secret_keys_visible(inputs: dict[str, Any], redacted: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes Secret's redacted inputs with its data keys visible and every value
    "[secret]", marked secret or not (a whole `stringData` marked secret would otherwise be a
    single "[secret]"): reviews and `coco diff` see a key come or go, never a value. The keys
    are names the program chose (file names, res-<digest> of a KBS resource path), not secrets."""
    for key in ("data", "stringData"):
        value = unwrap(inputs.get(key))
        if isinstance(value, dict):
            redacted[key] = dict.fromkeys(sorted(value), SECRET)
    return redacted


def redact(value: Any) -> Any:
    if isinstance(value, Secret):
        return SECRET
    if isinstance(value, dict):
        return {k: redact(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def secret_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value marked secret (for tests and reviews)."""
    if isinstance(value, Secret):
        return [prefix]
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in sorted(value.items()):
            found += secret_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += secret_paths(v, f"{prefix}[{i}]")
    return found


def unwrap(value: Any) -> Any:
    """The plain value with every Secret wrapper removed."""
    if isinstance(value, Secret):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@contextlib.contextmanager
def _clean_environment() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith(_ENV_CLEARED)}
    for k in saved:
        del os.environ[k]
    try:
        yield
    finally:
        os.environ.update(saved)


def record(
    program: Callable[[], None],
    *,
    stack: str,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
) -> tuple[list[Registration], dict[str, Any]]:
    """Run `program` under fresh mocks (preview=False: apply callbacks run) and record every
    registration as the engine would receive it, and the stack outputs."""
    import pulumi
    from pulumi.runtime import mocks, set_all_config, settings
    from pulumi.runtime.stack import run_in_stack
    from pulumi.runtime.sync_await import _sync_await

    class _Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            return f"{args.name}-id", dict(args.inputs)

        def call(
            self, args: mocks.MockCallArgs
        ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            # invokes (data lookups) answer empty, with no failures: the SDK's mock monitor
            # iterates the failure list, so it must be a list, not None
            # (pulumi/runtime/mocks.py@3.272.0, MockMonitor.Invoke)
            return {}, []

    registrations: list[Registration] = []
    outputs: dict[str, Any] = {}
    exported: list[str] = []

    def recorded() -> None:
        program()
        root = settings.get_root_resource()
        exported.extend(getattr(root, "outputs", {}))

    class _Monitor(mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            if request.type != "pulumi:pulumi:Stack":
                registrations.append(
                    Registration(
                        type=request.type,
                        name=request.name,
                        urn=response.urn,
                        parent_urn=request.parent,
                        custom=bool(request.custom),
                        inputs=_plain(json_format.MessageToDict(request.object)),
                        dependencies=list(request.dependencies),
                        provider=request.provider,
                    )
                )
            return response

        def RegisterResourceOutputs(self, request: Any) -> Any:
            if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
                outputs.update(_plain(json_format.MessageToDict(request.outputs)))
            return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    the_mocks = _Mocks()
    with _clean_environment():
        mocks.set_mocks(
            the_mocks,
            project="coco",
            stack=stack,
            preview=False,
            monitor=_Monitor(the_mocks),
            logger=_QUIET,
        )
        set_all_config(config or {}, secret_keys or [])
        # a failed render leaves its exception in the SDK's process-wide RPC manager, and the
        # next render in this process would re-raise it: start each render clean
        settings.SETTINGS.rpc_manager.clear()
        settings.SETTINGS.outputs.clear()
        settings.ROOT.set(None)  # set_mocks made a root stack; run_in_stack makes the real one
        try:
            _sync_await(run_in_stack(recorded))
        finally:
            set_all_config({}, [])
    # An export whose value only a provider computes (kbsCaCert: the tls provider's cert_pem)
    # resolves to None under mocks, and the SDK drops top-level None properties when it
    # serializes the stack outputs (pulumi/runtime/rpc.py@3.272.0, serialize_properties: "We
    # treat properties that serialize to None as if they don't exist"). Keep every exported name,
    # as the placeholder of a value computed at `pulumi up`.
    for name in exported:
        outputs.setdefault(name, UNKNOWN)
    return registrations, outputs


def run(
    config: dict[str, Any],
    *,
    stack: str,
    secure_paths: frozenset[str] = frozenset(),
    project_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Render:
    """Validate `config` (full `coco:` keys) and run the program under mocks. `progress` gets
    one line as each slow step ends (the CLI prints them on stderr)."""
    started = time.perf_counter()

    def step(what: str) -> None:
        nonlocal started
        now = time.perf_counter()
        if progress:
            progress(f"{what} ({now - started:.1f}s)")
        started = now

    base = project_dir or Path.cwd()
    spec, warnings = validate(config, stack=stack, secure_paths=secure_paths, base_dir=str(base))
    support.check(spec)  # refuse what no component builds yet, before any registration
    extras.check(spec)  # a cloud's SDK that is not installed: the pip command, not a traceback
    step(f"validated stack {stack}: {len(spec.node_pools)} node pool(s)")
    from components import program  # the Pulumi SDK, the components and their providers

    step("loaded the Pulumi SDK and the components")
    registrations, outputs = record(
        lambda: program.main(base),
        stack=stack,
        config=stackfile.pulumi_config(config),
        secret_keys=stackfile.secret_keys(secure_paths),
    )
    step(f"ran the program under mocks: {len(registrations)} resources registered")
    return Render(
        stack, spec, registrations, outputs, [w.render() for w in warnings], project_dir=base
    )


def run_stack(stack: str, project_dir: Path | None = None) -> Render:
    sf = stackfile.load(stack, project_dir)
    return run(sf.config, stack=sf.name, secure_paths=sf.secure_paths, project_dir=sf.project_dir)


def dumps_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (config files, policies, scripts) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dumps_yaml(obj: Any) -> str:
    return yaml.dump(
        obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True,
        width=100,
    )


RENDER_OUTPUT = OutputKind(
    command="coco render",
    marker=MARKER,
    entries=frozenset({"resources.json", "manifests"}),
    marker_text=NOTICE,
)


def _refused(message: str, hint: str) -> RenderError:
    return RenderError(message, hint)


def check_out(out: Path, *, protected: dict[Path, str] | None = None) -> Path:
    """Refuse an unsafe --out before the (slow) render runs; `write` checks again."""
    return files_mod.check_target(out, RENDER_OUTPUT, _refused, protected=protected)


def write(
    render: Render, out: Path, *, protected: dict[Path, str] | None = None
) -> tuple[int, int]:
    """Write resources.json and manifests/ under `out`, replacing an earlier render output as a
    whole (images.files: `out` is refused when it is a link, a file, a folder holding anything
    else, or a folder the user cannot mean, like `/` or the project; nothing is written through
    a link; the new output is moved into place at once). Secret values are redacted in both."""
    document = render.document()
    files = {name: dumps_yaml(obj) for name, obj in manifest_files(render).items()}
    if protected is None and render.project_dir is not None:
        protected = {render.project_dir: "the stack's project"}
    with files_mod.replace_dir(out, RENDER_OUTPUT, _refused, protected=protected) as staging:
        files_mod.write_file(staging, "resources.json", dumps_json(document).encode())
        manifests = staging / "manifests"
        manifests.mkdir()
        for name, text in files.items():
            files_mod.write_file(manifests, name, text.encode())
    return len(document["resources"]), len(files)


def render_ref(stack: str, ref: str, out: Path, project_dir: Path | None = None) -> None:
    """`coco render --diff REF`, the base side: render `stack` as committed at git `ref`, with
    that commit's own program, into `out`.

    The commit's tree is exported with `git archive` (no worktree, no change to the repository)
    and rendered by `python -m cli.main render` in a subprocess whose import path starts
    with that tree, so the base runs its own components/ (the Python dependencies are this
    environment's). Commands go through images.run, the project's one door to the outside.
    """
    import sys
    import tarfile
    import tempfile

    from images import run as runner
    from images.errors import CommandFailed

    _, path, project = stackfile.resolve(stack, project_dir)
    try:
        top = Path(runner.run(["git", "-C", str(project), "rev-parse", "--show-toplevel"]).strip())
        commit = runner.run(["git", "-C", str(top), "rev-parse", "--verify", "--quiet",
                             f"{ref}^{{commit}}"]).strip()
    except CommandFailed:
        raise RenderError(
            f"{ref!r} is not a commit of a git repository holding {project}",
            "name a branch, tag or commit (e.g. origin/main); a shallow CI checkout needs "
            "`git fetch origin main` first",
        ) from None
    with tempfile.TemporaryDirectory(prefix="coco-render-ref-") as tmp:
        tree = Path(tmp) / "tree"
        archive = Path(tmp) / "tree.tar"
        with archive.open("wb") as handle:
            runner.run(["git", "-C", str(top), "archive", "--format=tar", commit], stdout=handle)
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        base_project = tree / project.resolve().relative_to(top.resolve())
        stack_file = path.resolve()
        inside = stack_file.is_relative_to(top.resolve())
        # a stack given by path is read at the ref too; one outside the repository as it is now
        stack_arg = str(tree / stack_file.relative_to(top.resolve())) if inside else str(path)
        if inside and not Path(stack_arg).is_file():
            raise RenderError(
                f"stack {stack!r} does not exist at {ref} ({commit[:12]})",
                "render the new stack with `coco render STACK --out DIR` instead",
            )
        # the command line moved from components/cli.py to cli/main.py; a base commit from
        # before that runs its own entry point
        entry = "cli.main" if (tree / "cli" / "main.py").is_file() else "components.cli"
        try:
            runner.run(
                [sys.executable, "-m", entry, "render", stack_arg, "--out", str(out)],
                cwd=base_project,
                env={"PYTHONPATH": str(tree)},
            )
        except CommandFailed as exc:
            raise RenderError(
                f"rendering stack {stack!r} at {ref} ({commit[:12]}) failed:\n"
                + "\n".join(exc.output.strip().splitlines()[-10:]),
                "that commit's program or stack file does not render; compare with a later ref",
            ) from None
