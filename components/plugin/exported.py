"""The components other Pulumi languages use: thin wrappers over the stack's own components.

Each takes one TypedDict (components.plugin.args), turns it into the `coco:` config the stack
reads, validates it with the same spec and rules (spec.validate, spec.support), and
builds the stack's component with the validated section. Nothing is registered when the inputs
are invalid: the error names the component, its name and the input path (`pools[1].tee`).

Exported: NodePool (the catalogue facts of a pool on existing nodes), Runtime (kata-deploy and
the RuntimeClasses), KeyBroker (the Trustee KBS) and GuestImage (a measured image built during
`pulumi up`). Kubernetes resources use the `kubernetes` provider the consumer passes in the
resource options, as any component does.

Non-goals: cloud clusters, cloud node pools and peer pods (they need the cluster object the
whole stack builds; use the coco-stack program for those), and secret inputs that are Outputs
(see KeyBroker). No `from __future__ import annotations`: the schema is inferred from the
evaluated annotations of these classes (see components.plugin.args).
"""

from pathlib import Path
from typing import Any

import pulumi

from components import pools, runtime
from components.kbs import broker as kbs
from spec import catalogue, support
from spec.errors import CocoError, ConfigIssue, NotYetSupported, SpecError
from spec.model import Spec
from spec.validate import validate

from .. import image as image_mod
from .args import GuestImageArgs, KeyBrokerArgs, NodePoolArgs, Pool, RuntimeArgs

PACKAGE = "coco-stack"  # the package name other languages import (type tokens coco-stack:index:X)


class ComponentArgsError(CocoError):
    """The inputs of an exported component are invalid; every problem, by input path."""

    def __init__(self, component: str, name: str, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        lines = [f"{component} {name!r}: invalid inputs"]
        lines += [issue.render() for issue in issues]
        super().__init__("\n".join(lines))


def _rebase(path: str, prefixes: list[tuple[str, str]]) -> str:
    """`coco:nodePools[1].tee` -> `pools[1].tee` for the component's own input names."""
    for prefix, replacement in prefixes:
        if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
            rest = path[len(prefix) :]
            joined = f"{replacement}{rest}" if replacement else rest.lstrip(".")
            return joined or "args"
    return path


def _spec(
    component: str,
    name: str,
    config: dict[str, Any],
    prefixes: list[tuple[str, str]],
    secure_paths: frozenset[str] = frozenset(),
) -> Spec:
    """Validate like the stack program does (spec, rules, support check) or raise
    ComponentArgsError; the caller has registered nothing yet."""
    try:
        spec, warnings = validate(
            config,
            stack=pulumi.get_stack(),
            secure_paths=secure_paths,
            base_dir=str(Path.cwd()),
            exact_secure_paths=False,
        )
        support.check(spec)
    except SpecError as exc:
        issues = [
            ConfigIssue(_rebase(i.path, prefixes), i.message, i.hint, i.severity)
            for i in exc.issues
        ]
        raise ComponentArgsError(component, name, issues) from None
    except NotYetSupported as exc:
        message = str(exc).removeprefix(f"{exc.path}: ")
        issue = ConfigIssue(_rebase(exc.path, prefixes), message, exc.hint)
        raise ComponentArgsError(component, name, [issue]) from None
    for warning in warnings:
        pulumi.log.warn(
            f"{component} {name!r}: {_rebase(warning.path, prefixes)}: {warning.message}"
        )
    return spec


def _pool_config(pool: Pool) -> dict[str, Any]:
    keys = {
        "name": "name",
        "tee": "tee",
        "mode": "mode",
        "provider": "provider",
        "node_selector": "nodeSelector",
    }
    return {key: pool[field] for field, key in keys.items() if field in pool}  # type: ignore[literal-required]


def _scope(pools_: list[Pool], path: str) -> list[ConfigIssue]:
    """Only pools on existing nodes are exported: cloud pools need the stack's cluster."""
    issues = []
    for i, pool in enumerate(pools_):
        where = path.format(i=i)
        for field, allowed in (("provider", "baremetal"), ("mode", "bare-metal")):
            value = pool.get(field, allowed)
            if value != allowed:
                issues.append(
                    ConfigIssue(
                        f"{where}.{field}",
                        f"{value!r}: the exported components build pools on existing nodes only",
                        f"use {field} {allowed} (or leave it out); cloud pools and peer pods need "
                        "the cluster the coco-stack program builds (stacks/, `pulumi up`)",
                    )
                )
    return issues


def _wire_numbers(value: Any) -> Any:
    """Whole floats back to ints: the wire carries every number as a double, and reference
    values keep their JSON type (the SNP verifier reports TCB versions as integers)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_wire_numbers(v) for v in value]
    return value


def _token(cls: type) -> str:
    return f"{PACKAGE}:index:{cls.__name__}"


class NodePool(pulumi.ComponentResource):
    """A TEE node pool on existing nodes: the RuntimeClass its pods use, the node selector that
    pins them to its nodes and the attestation facts of its TEE (from coco-stack's catalogue)."""

    runtime_class: pulumi.Output[str]
    """The RuntimeClass to put in a pod's runtimeClassName."""
    node_selector: pulumi.Output[dict[str, str]]
    """The labels that select the pool's nodes."""
    shim: pulumi.Output[str]
    """The kata shim (qemu-snp, qemu-tdx, qemu-se, qemu-coco-dev)."""
    evidence: pulumi.Output[str]
    """The attestation evidence type the pool's guests produce (snp, tdx, se, sample)."""

    def __init__(
        self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        config = {
            "coco:nodePools": [_pool_config(args["pool"])],
            "coco:runtime": {"nodeFeatureDiscovery": args.get("node_feature_discovery", False)},
            "coco:kbs": {"enabled": False},
        }
        prefixes = [("coco:nodePools[0]", "pool"), ("coco:runtime", "")]
        if issues := _scope([args["pool"]], "pool"):
            raise ComponentArgsError("NodePool", name, issues)
        spec = _spec("NodePool", name, config, prefixes)
        super().__init__(_token(NodePool), name, None, opts)
        pool = pools.NodePool(
            f"{name}-pool",
            spec.node_pools[0],
            pulumi.ResourceOptions(parent=self),
            nfd=spec.runtime.installs_nfd,
        )
        self.runtime_class = pulumi.Output.from_input(pool.runtime_class or "")
        self.node_selector = pulumi.Output.from_input(pool.node_selector)
        self.shim = pulumi.Output.from_input(pool.offering.shim or "")
        self.evidence = pulumi.Output.from_input(pool.offering.evidence or "")
        self.register_outputs(
            {
                "runtimeClass": self.runtime_class,
                "nodeSelector": self.node_selector,
                "shim": self.shim,
                "evidence": self.evidence,
            }
        )


# Runtime's chart inputs -> the keys of `coco:charts.runtime` (spec.model.ChartSource); flat, not
# one object input: an object type used only there would add a schema type for three strings
_CHART_KEYS = {"chart_path": "path", "chart_digest": "digest", "chart_repository": "repository"}
_CHART_SCHEMA = {"path": "chartPath", "digest": "chartDigest", "repository": "chartRepository"}


class Runtime(pulumi.ComponentResource):
    """The CoCo runtime: the confidential-containers chart (kata-deploy) with exactly the shims
    the pools use, and one RuntimeClass per TEE pinned to its pools' nodes."""

    runtime_classes: pulumi.Output[dict[str, str]]
    """Pool name -> the RuntimeClass its pods use."""
    namespace: pulumi.Output[str]
    """The namespace of the kata-deploy release."""

    def __init__(
        self, name: str, args: RuntimeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        cluster: dict[str, Any] = {}
        if "distribution" in args:
            cluster["distribution"] = args["distribution"]
        config = {
            "coco:cluster": cluster,
            "coco:nodePools": [_pool_config(p) for p in args["pools"]],
            "coco:runtime": {
                "nodeFeatureDiscovery": args.get("node_feature_discovery", False),
                "debug": args.get("debug", False),
            },
            "coco:kbs": {"enabled": False},
        }
        chart = {key: args[f] for f, key in _CHART_KEYS.items() if f in args}  # type: ignore[literal-required]
        if chart:
            config["coco:charts"] = {"runtime": chart}
        prefixes = [
            ("coco:nodePools", "pools"),
            ("coco:runtime", ""),
            ("coco:cluster.distribution", "distribution"),
            *((f"coco:charts.runtime.{key}", name_) for key, name_ in _CHART_SCHEMA.items()),
            ("coco:charts.runtime", "chartPath"),
        ]
        if issues := _scope(args["pools"], "pools[{i}]"):
            raise ComponentArgsError("Runtime", name, issues)
        spec = _spec("Runtime", name, config, prefixes)
        super().__init__(_token(Runtime), name, None, opts)
        runtime.CocoRuntime(f"{name}-runtime", spec, pulumi.ResourceOptions(parent=self))
        classes: dict[str, str] = {}
        for pool in spec.node_pools:
            offering = catalogue.find(pool.provider or "", pool.tee, pool.mode or "")
            if offering is not None and offering.runtime_class:
                classes[pool.name] = offering.runtime_class
        self.runtime_classes = pulumi.Output.from_input(dict(sorted(classes.items())))
        self.namespace = pulumi.Output.from_input(runtime.NAMESPACE)
        self.register_outputs({"runtimeClasses": self.runtime_classes, "namespace": self.namespace})


_KBS_KEYS = {
    "namespace": "namespace",
    "expose": "expose",
    "hostname": "hostname",
    "resource_policy": "resourcePolicy",
    "attestation_policy": "attestationPolicy",
    "insecure_http": "insecureHttp",
    "reference_values": "referenceValues",
    "storage_size": "storageSize",
    "storage_class": "storageClass",
}


class KeyBroker(pulumi.ComponentResource):
    """The Trustee key broker (KBS), secure by default: HTTPS with a certificate from its own
    CA, admin API behind a signed JWT, resources released only on an affirming attestation
    result, persistent storage. Resource values may be secret Outputs (recommended: then they
    are encrypted in the calling program's state too); the component makes every input that
    carries them a Pulumi secret."""

    url: pulumi.Output[str]
    """The URL guests and the admin client use."""
    ca_cert: pulumi.Output[str]
    """PEM of the CA that signed the KBS server certificate (guests trust it via initdata)."""
    admin_token: pulumi.Output[str]
    """The admin API's bearer JWT (a secret)."""
    namespace: pulumi.Output[str]
    """The namespace of the KBS."""

    def __init__(
        self, name: str, args: KeyBrokerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        section: dict[str, Any] = {"enabled": True}
        section.update({key: args[f] for f, key in _KBS_KEYS.items() if f in args})  # type: ignore[literal-required]
        resources = []
        # Output values (pulumi.secret(...) in the calling program, so they are encrypted in
        # its state too) are validated with a placeholder and handed to the KBS as they are
        outputs: dict[str, pulumi.Input[str]] = {}
        for resource in args.get("resources", []):
            item = dict(resource)
            value = item.get("value")
            if isinstance(value, pulumi.Output):
                outputs[str(item.get("path"))] = value
                item["value"] = "[output]"
            resources.append(item)
        section["resources"] = resources
        if "referenceValues" in section:
            section["referenceValues"] = {
                k: _wire_numbers(v) for k, v in section["referenceValues"].items()
            }
        config = {
            "coco:environment": args.get("environment", "dev"),
            "coco:kbs": section,
        }
        secure = frozenset(f"coco:kbs.resources[{i}].value" for i in range(len(resources)))
        prefixes = [("coco:kbs", ""), ("coco:environment", "environment")]
        spec = _spec("KeyBroker", name, config, prefixes, secure)
        super().__init__(_token(KeyBroker), name, None, opts)
        broker = kbs.KeyBroker(
            f"{name}-kbs",
            spec.kbs,
            pulumi.ResourceOptions(parent=self),
            reference_values=spec.kbs.reference_values,
            base_dir=Path.cwd(),
            allow_sample=args.get("allow_sample_evidence", False),
            resource_values=outputs,
        )
        self.url = pulumi.Output.from_input(broker.url)
        self.ca_cert = broker.ca_cert_pem
        self.admin_token = broker.admin_token
        self.namespace = pulumi.Output.from_input(broker.namespace)
        self.register_outputs(
            {
                "url": self.url,
                "caCert": self.ca_cert,
                "adminToken": self.admin_token,
                "namespace": self.namespace,
            }
        )


class GuestImage(pulumi.ComponentResource):
    """A reproducible, measured guest image built during `pulumi up` on the machine running
    Pulumi (root and the Debian tools in coco-stack's docs/images.md), and its reference
    values for the KBS."""

    recipe_hash: pulumi.Output[str]
    """Content hash of the recipe; the image is rebuilt exactly when it changes."""
    artifacts: pulumi.Output[dict[str, str]]
    """Artifact name -> path of the built file."""
    digests: pulumi.Output[dict[str, str]]
    """Artifact name -> sha256."""
    reference_values: pulumi.Output[dict[str, Any]]
    """Reference value name (snp_launch_measurement, tpm_pcr4, tpm_pcr11) -> accepted values,
    ready for KeyBroker's referenceValues."""
    root_hash: pulumi.Output[str]
    """dm-verity root hash of the root filesystem."""

    def __init__(
        self, name: str, args: GuestImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        from images import recipe as recipes
        from images.errors import ImageError

        try:
            recipes.load(args["recipe"])
        except ImageError as exc:
            issue = ConfigIssue("recipe", str(exc), getattr(exc, "hint", ""))
            raise ComponentArgsError("GuestImage", name, [issue]) from None
        from images.build import stack_out_dir

        try:
            out_dir = (
                Path(args["out_dir"])
                if "out_dir" in args
                else stack_out_dir(Path.cwd(), pulumi.get_stack())
            )
        except ImageError as exc:
            issue = ConfigIssue("out_dir", str(exc), getattr(exc, "hint", ""))
            raise ComponentArgsError("GuestImage", name, [issue]) from None
        super().__init__(_token(GuestImage), name, None, opts)
        built = image_mod.GuestImage(
            f"{name}-image",
            image_mod.GuestImageArgs(args["recipe"], out_dir),
            pulumi.ResourceOptions(parent=self),
        )
        self.recipe_hash = pulumi.Output.from_input(built.recipe_hash)
        self.artifacts = built.artifacts
        self.digests = built.digests
        self.reference_values = built.reference_values.apply(dict)
        self.root_hash = built.root_hash
        self.register_outputs(
            {
                "recipeHash": self.recipe_hash,
                "artifacts": self.artifacts,
                "digests": self.digests,
                "referenceValues": self.reference_values,
                "rootHash": self.root_hash,
            }
        )


COMPONENTS: list[type[pulumi.ComponentResource]] = [NodePool, Runtime, KeyBroker, GuestImage]
