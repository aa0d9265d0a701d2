"""The inputs of the exported components, as TypedDicts the schema is inferred from.

Pulumi's analyzer (pulumi/provider/experimental/analyzer.py, SDK 3.272.0) reads these classes
without evaluating string annotations, so this module does NOT use `from __future__ import
annotations`. Field docstrings become the schema's property descriptions. A field typed without
`pulumi.Input[...]` is `plain` in the schema: the consumer's SDK only accepts a plain value there,
because the component needs it while it is being constructed (validation, the TEE catalogue,
chart values). Unions other than NotRequired are not supported by the analyzer.

The values are checked by the stack spec (spec.model, spec.rules) exactly as the
`coco:` config is; errors name the component's input path.
"""

from typing import Any, NotRequired, TypedDict

import pulumi


class Pool(TypedDict):
    """One TEE node pool on existing nodes (as `coco:nodePools[]`)."""

    name: str
    """Pool name, a DNS label unique among the pools."""
    tee: str
    """snp, tdx, se, or none (development only)."""
    mode: NotRequired[str]
    """bare-metal (the default): kata starts TEE VMs on the pool's nodes."""
    provider: NotRequired[str]
    """baremetal (the default)."""
    node_selector: dict[str, str]
    """Labels that select the pool's existing nodes."""


class NodePoolArgs(TypedDict):
    """The inputs of NodePool."""

    pool: Pool
    """The pool."""
    node_feature_discovery: NotRequired[bool]
    """Select the pool's nodes by Node Feature Discovery labels instead (default false)."""


class RuntimeArgs(TypedDict):
    """The inputs of Runtime."""

    pools: list[Pool]
    """The pools that run confidential pods; one RuntimeClass per TEE they use."""
    node_feature_discovery: NotRequired[bool]
    """Install Node Feature Discovery and select TEE nodes by its labels (default false)."""
    debug: NotRequired[bool]
    """kata-deploy debug logging (default false)."""
    distribution: NotRequired[str]
    """k8s (default), k3s, rke2, k0s or microk8s: where containerd keeps its configuration."""
    chart_path: NotRequired[str]
    """The confidential-containers chart from this directory (an unpacked `helm pull --untar`,
    absolute) instead of its upstream repository, as `coco:charts.runtime.path` (air-gapped)."""
    chart_digest: NotRequired[str]
    """With chartPath: `sha256:<hex>` over the directory's files (`coco check` prints it)."""
    chart_repository: NotRequired[str]
    """The chart from this private OCI mirror (oci://HOST/PATH) at its pinned version instead."""


class KbsResource(TypedDict):
    """A secret the KBS releases to attested guests."""

    path: str
    """repo/type/tag; guests fetch kbs:///repo/type/tag."""
    value: pulumi.Input[str]
    """The value: pass a secret (pulumi.secret(...) or a secret config value) so it is encrypted in
    your program's state too. Every resource input that carries it is a Pulumi secret."""


class KeyBrokerArgs(TypedDict):
    """The inputs of KeyBroker (as `coco:kbs`)."""

    namespace: NotRequired[str]
    """Namespace of the KBS (default coco-kbs)."""
    expose: NotRequired[str]
    """clusterip (default), nodeport, loadbalancer or ingress."""
    hostname: NotRequired[str]
    """External host name; required with expose ingress."""
    resources: NotRequired[list[KbsResource]]
    """Secrets the KBS releases to attested guests."""
    resource_policy: NotRequired[str]
    """affirming (default), allow-all (refused in production) or a path to a .rego file."""
    attestation_policy: NotRequired[str]
    """default (the pinned Trustee release's policy) or a path to a .rego file."""
    insecure_http: NotRequired[bool]
    """Serve plain HTTP instead of HTTPS (default false; refused in production)."""
    reference_values: NotRequired[dict[str, Any]]
    """Reference value name (snp_launch_measurement, mr_td, ...) -> accepted value or list of
    accepted values."""
    storage_size: NotRequired[str]
    """Size of the KBS storage volume (default 1Gi)."""
    storage_class: NotRequired[str]
    """StorageClass of the KBS storage volume (default: the cluster's)."""
    environment: NotRequired[str]
    """dev (default), staging or production; production refuses allow-all and insecureHttp."""
    allow_sample_evidence: NotRequired[bool]
    """Accept sample evidence, for guests on tee none (development) pools (default false)."""


class GuestImageArgs(TypedDict):
    """The inputs of GuestImage."""

    recipe: str
    """A recipe name in coco-stack's images/recipes/ or a path to a recipe .toml file."""
    out_dir: NotRequired[str]
    """Where the artifacts go (default build/images/<stack>)."""
