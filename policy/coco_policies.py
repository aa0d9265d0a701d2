"""coco-stack's CrossGuard policies: what a Confidential Containers deployment must never ship.

Each policy is a `ResourceValidationPolicy` whose validate function reads `args.props`, the
resource's inputs as the engine sends them (camelCase property names, secrets already
unwrapped), and reports a violation with a fix. No enforcement level is set here: `__main__.py`
chooses it for the whole pack from the stack's `coco:environment` (mandatory in production,
advisory elsewhere), see `enforcement_level`.

Self-contained on purpose: the pack runs in its own virtualenv (requirements.txt) and does not
import the project; tests/test_policies.py checks that the tables below agree with
spec/catalogue.py. Cloud pools and images are recognised by the coco-stack marker
(`MARKER_TAG` in cloud tags/labels, `MARKER_LABEL` in Kubernetes node labels) whose value is the
pool's TEE; unmarked cloud resources (the system pool, networks) are not checked.

Non-goals: attestation policy content, reference values (the KBS checks evidence, not this
pack), and anything only known after `pulumi up` (unknown values are skipped by the SDK).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RUNTIMECLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"
# Workloads whose pod template is at spec.template.spec (Pods themselves at spec).
POD_TEMPLATES = (
    DEPLOYMENT,
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
)

# Cloud tag / GCP label key marking a TEE pool or a peer-pod image, value: the TEE (snp, tdx,
# sev, sgx, se). No "/" or ".": Azure tag names refuse "/", GCP label keys allow only [a-z0-9_-].
MARKER_TAG = "coco-stack-tee"
# Kubernetes node label of TEE nodes, as the runtime component labels and selects them.
MARKER_LABEL = "coco-stack.io/tee"

# kata-deploy's development shim: a VM without a TEE that accepts sample evidence
# (spec/catalogue.py, baremetal/none).
COCO_DEV_RUNTIME = "kata-qemu-coco-dev"
COCO_DEV_SHIM = "qemu-coco-dev"

# Where the Trustee KBS keeps resources, policies and reference values (kbs-config.toml
# [storage_backend.backends.local_fs] dir_path, components/kbs/config.py).
KBS_STORAGE_PATH = "/opt/confidential-containers/storage"

# Keys that hold a cloud credential (cloud-api-adaptor's *-secrets.yaml.template per provider,
# v0.22.0): they belong in a Secret (or workload identity), never in a ConfigMap or Helm values.
CREDENTIAL_KEYS = frozenset(
    {
        "AZURE_CLIENT_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "GCP_CREDENTIALS",
        "IBMCLOUD_API_KEY",
    }
)
_CREDENTIAL_IN_TEXT = re.compile(
    r"\b(" + "|".join(sorted(CREDENTIAL_KEYS)) + r")\s*[=:]\s*\S", re.MULTILINE
)

# Azure confidential size families per TEE (spec/catalogue.py, nodes and peer-pods).
AZURE_FAMILIES = {
    "snp": frozenset({"DCasv5", "DCadsv5", "ECasv5", "ECadsv5"}),
    "tdx": frozenset({"DCesv5", "DCedsv5", "ECesv5", "ECedsv5"}),
    "sgx": frozenset({"DCsv3", "DCdsv3"}),
}
# Standard_DC4as_v5 -> DCasv5 (learn.microsoft.com/azure/virtual-machines/vm-naming-conventions)
_AZURE_SIZE = re.compile(r"^Standard_([A-Z]+)(\d+)(?:-\d+)?([a-z]*)_v(\d+)$")
# GCP confidentialInstanceType per TEE (compute Instance confidentialInstanceConfig and GKE
# confidentialNodes; CAA's GCP_CONFIDENTIAL_TYPE takes the same names).
GCP_CONFIDENTIAL_TYPE = {"sev": "SEV", "snp": "SEV_SNP", "tdx": "TDX"}
# GCP image guestOsFeatures a confidential VM of each TEE needs: the TEE capability and UEFI
# (cloud.google.com/confidential-computing/confidential-vm/docs/
# create-custom-confidential-vm-images).
GCP_GUEST_OS_FEATURE = {"sev": "SEV_CAPABLE", "snp": "SEV_SNP_CAPABLE", "tdx": "TDX_CAPABLE"}
# Azure gallery image definition feature SecurityType values that allow confidential VMs
# (learn.microsoft.com/azure/virtual-machines/image-version, "SecurityType" feature).
AZURE_CONFIDENTIAL_IMAGE_TYPES = frozenset({"ConfidentialVM", "ConfidentialVmSupported"})
# Tags that do not pin anything even when present.
_FLOATING_TAGS = frozenset({"latest", "stable", "main", "master", "edge", "nightly", "dev"})

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def enforcement_level(environment: str | None) -> EnforcementLevel:
    """Mandatory for production stacks, advisory for every other (or unknown) environment."""
    return EnforcementLevel.MANDATORY if environment == "production" else EnforcementLevel.ADVISORY


def environment_from(environ: Mapping[str, str]) -> str | None:
    """The stack's `coco:environment`, from the PULUMI_CONFIG JSON the engine hands a policy
    pack (pulumi sdk/go/common/resource/plugin/analyzer_plugin.go constructEnv); None when the
    pack runs without stack config. Stacks that omit the key get the spec default, dev."""
    raw = environ.get("PULUMI_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    value = config.get("coco:environment", "dev")
    return value if isinstance(value, str) else None


# -- helpers -----------------------------------------------------------------------------------


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_list(value: Any) -> bool:
    # the engine's props are pulumi_policy proxies: a Mapping and a Sequence, not dict and list
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _list(value: Any) -> list[Any]:
    return list(value) if _is_list(value) else []


def _pod_spec(args: ResourceValidationArgs) -> Mapping[str, Any]:
    if args.resource_type in POD_TEMPLATES:
        return _dict(_get(args.props, "spec", "template", "spec"))
    if args.resource_type == "kubernetes:core/v1:Pod":
        return _dict(_get(args.props, "spec"))
    return {}


def _containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers"):
        for c in _list(pod.get(key)):
            if isinstance(c, Mapping):
                yield c


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every mapping entry, depth first."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            p = f"{path}.{k}" if path else str(k)
            yield p, str(k), v
            yield from _walk(v, p)
    elif _is_list(value):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def _tee_mark(*maps: Any) -> str | None:
    """The TEE a cloud resource is marked with, None when unmarked or marked `none`."""
    for m in maps:
        for key in (MARKER_TAG, MARKER_LABEL):
            value = _get(m, key)
            if isinstance(value, str) and value and value != "none":
                return value
    return None


def image_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None when it is pinned by digest or version."""
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (means :latest)"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() in _FLOATING_TAGS or not re.search(r"\d", tag):
        return f"uses the floating tag :{tag}"
    return None


# -- policies ----------------------------------------------------------------------------------


def _no_coco_dev(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == RUNTIMECLASS:
        tee = _get(args.props, "metadata", "labels", MARKER_LABEL)
        if args.props.get("handler") == COCO_DEV_RUNTIME or tee == "none":
            report(
                f"RuntimeClass {COCO_DEV_RUNTIME} runs pods in a VM without a TEE that passes "
                "attestation with sample evidence; remove the `tee: none` pool from coco:nodePools",
                None,
            )
    elif args.resource_type == RELEASE:
        shim = _get(args.props, "values", "kata-as-coco-runtime", "shims", COCO_DEV_SHIM)
        if _get(shim, "enabled") is True:
            report(
                f"the CoCo runtime chart installs the {COCO_DEV_SHIM} shim (no TEE); remove the "
                "`tee: none` pool from coco:nodePools",
                None,
            )


def _kbs_config(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    if args.resource_type != CONFIGMAP:
        return None
    text = _get(args.props, "data", "kbs-config.toml")
    if not isinstance(text, str):
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def _kbs_https(args: ResourceValidationArgs, report: ReportViolation) -> None:
    config = _kbs_config(args)
    if config is None:
        return
    if not config:
        report("kbs-config.toml is not valid TOML; the KBS would not start", None)
        return
    if _get(config, "http_server", "insecure_http") is not False:
        report(
            "the KBS serves plain HTTP (http_server.insecure_http is not false): secrets and "
            "attestation tokens would cross the network in clear; set coco:kbs.insecureHttp: false",
            None,
        )
    mode = _get(config, "admin", "authorization_mode")
    if mode != "AuthenticatedAuthorization" or _get(config, "admin", "insecure_api") is True:
        report(
            f"the KBS admin API authorization_mode is {mode!r}: anyone reaching the KBS could "
            "set resources and policies; use AuthenticatedAuthorization (coco-stack's default)",
            None,
        )


def _resource_policy(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONFIGMAP:
        return
    rego = _get(args.props, "data", "resource-policy.rego")
    if not isinstance(rego, str):
        return
    code = "\n".join(line.split("#", 1)[0] for line in rego.splitlines())
    allow_all = re.search(r"default\s+allow\s*:?=\s*true", code) is not None
    if allow_all or '"affirming"' not in code:
        report(
            "the KBS resource policy releases secrets without requiring an affirming attestation "
            "result; set coco:kbs.resourcePolicy: affirming (or a policy that checks "
            'ear.status == "affirming")',
            None,
        )


def _is_kbs(args: ResourceValidationArgs, pod: Mapping[str, Any]) -> bool:
    if _get(args.props, "metadata", "labels", "app.kubernetes.io/name") == "kbs":
        return True
    return any("key-broker-service" in str(c.get("image", "")) for c in _containers(pod))


def _kbs_storage(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pod = _pod_spec(args)
    if not pod or not _is_kbs(args, pod):
        return
    volumes = {v.get("name"): v for v in _list(pod.get("volumes")) if isinstance(v, Mapping)}
    mounts = [
        m
        for c in _containers(pod)
        for m in _list(c.get("volumeMounts"))
        if isinstance(m, Mapping) and m.get("mountPath") == KBS_STORAGE_PATH
    ]
    fix = "mount a PersistentVolumeClaim there (coco-stack's KBS component does)"
    if not mounts:
        report(f"the KBS keeps its storage {KBS_STORAGE_PATH} in the container; {fix}", None)
    for m in mounts:
        volume = _dict(volumes.get(m.get("name")))
        if "persistentVolumeClaim" not in volume:
            kind = next((k for k in volume if k != "name"), "no volume")
            report(
                f"the KBS storage {KBS_STORAGE_PATH} is on {kind} ({m.get('name')}): resources, "
                f"policies and reference values are lost on restart; {fix}",
                None,
            )


def _pinned_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for c in _containers(_pod_spec(args)):
        problem = image_problem(str(c.get("image", "")))
        if problem:
            report(
                f"container {c.get('name')} image {c.get('image')!r} {problem}; pin a "
                "digest (@sha256:...) or an exact version tag",
                None,
            )
    if args.resource_type != RELEASE:
        return
    for path, key, value in _walk(_get(args.props, "values")):
        if key != "image":
            continue
        if isinstance(value, str):
            problem = image_problem(value)
        elif isinstance(value, Mapping):
            repo = value.get("repository") or value.get("name") or ""
            tag, digest = value.get("tag"), value.get("digest")
            if digest:
                problem = None
            elif not tag:
                problem = "has no tag (the chart picks one)"
            else:
                problem = image_problem(f"{repo}:{tag}")
        else:
            continue
        if problem:
            report(
                f"Helm value values.{path} {problem}; pin a digest or an exact version tag", None
            )


def _no_credentials(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found: set[str] = set()
    if args.resource_type == CONFIGMAP:
        for field in ("data", "binaryData"):
            for key, value in _dict(_get(args.props, field)).items():
                if key in CREDENTIAL_KEYS:
                    found.add(f"{field}.{key}")
                elif isinstance(value, str):
                    found.update(f"{field}.{key}: {m}" for m in _CREDENTIAL_IN_TEXT.findall(value))
    elif args.resource_type == RELEASE:
        for path, key, value in _walk(_get(args.props, "values")):
            if key in CREDENTIAL_KEYS and value not in (None, ""):
                found.add(f"values.{path}")
            elif isinstance(value, str):
                found.update(f"values.{path}: {m}" for m in _CREDENTIAL_IN_TEXT.findall(value))
    for c in _containers(_pod_spec(args)):
        for env in _list(c.get("env")):
            if _get(env, "name") in CREDENTIAL_KEYS and "value" in _dict(env):
                found.add(f"container {c.get('name')} env {env['name']}")
    for where in sorted(found):
        report(
            f"cloud credential in plain configuration ({where}): readable by anyone who can read "
            "the object or the stack state; put it in a Secret or use workload identity",
            None,
        )


def _azure_family(size: Any) -> str | None:
    m = _AZURE_SIZE.match(size) if isinstance(size, str) else None
    return f"{m.group(1)}{m.group(3)}v{m.group(4)}" if m else None


def _confidential_pools(args: ResourceValidationArgs, report: ReportViolation) -> None:
    t, p = args.resource_type, args.props

    def check(tee: str | None, ok: bool, what: str, fix: str) -> None:
        if tee and not ok:
            report(f"{tee} pool {args.name}: {what}; {fix}", None)

    def azure_size(tee: str | None, size: Any, where: str) -> None:
        families = AZURE_FAMILIES.get(tee or "", frozenset())
        check(
            tee,
            _azure_family(size) in families,
            f"{where} {size!r} is not a confidential size",
            f"use a size of {', '.join(sorted(families)) or 'a confidential family'}",
        )

    if t in ("azure-native:compute:VirtualMachine", "azure-native:compute:VirtualMachineScaleSet"):
        profile = _get(p, "virtualMachineProfile") if "ScaleSet" in t else p
        security = _get(profile, "securityProfile", "securityType")
        check(
            _tee_mark(p.get("tags")),
            security == "ConfidentialVM",
            f"securityProfile.securityType is {security!r}",
            "set it to ConfidentialVM",
        )
    elif t == "azure-native:containerservice:AgentPool":
        azure_size(_tee_mark(p.get("tags"), p.get("nodeLabels")), p.get("vmSize"), "vmSize")
    elif t == "azure-native:containerservice:ManagedCluster":
        for i, pool in enumerate(_list(p.get("agentPoolProfiles"))):
            tee = _tee_mark(_get(pool, "tags"), _get(pool, "nodeLabels"))
            azure_size(tee, _get(pool, "vmSize"), f"agentPoolProfiles[{i}].vmSize")
    elif t in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
        tags = [p.get("tags"), *(_get(s, "tags") for s in _list(p.get("tagSpecifications")))]
        snp = _get(p, "cpuOptions", "amdSevSnp")
        check(
            _tee_mark(*tags),
            snp == "enabled",
            f"cpuOptions.amdSevSnp is {snp!r}",
            "set cpuOptions.amdSevSnp to enabled on an SNP-capable type (c6a, m6a, r6a)",
        )
    elif t in ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate"):
        tee = _tee_mark(p.get("labels"))
        config = _dict(p.get("confidentialInstanceConfig"))
        kind = config.get("confidentialInstanceType") or (
            "SEV" if config.get("enableConfidentialCompute") else None
        )
        want = GCP_CONFIDENTIAL_TYPE.get(tee or "")
        check(
            tee,
            kind is not None and kind == want,
            f"confidentialInstanceConfig gives {kind!r}",
            f"set confidentialInstanceType {want}",
        )
    elif t == "gcp:container/nodePool:NodePool":
        node = _dict(p.get("nodeConfig"))
        tee = _tee_mark(node.get("labels"), node.get("resourceLabels"))
        nodes = _dict(node.get("confidentialNodes"))
        kind = nodes.get("confidentialInstanceType")
        want = GCP_CONFIDENTIAL_TYPE.get(tee or "")
        check(
            tee,
            nodes.get("enabled") is True and kind in (None, want),
            f"nodeConfig.confidentialNodes is {dict(nodes)!r}",
            f"set enabled: true and confidentialInstanceType {want}",
        )


def _image_features(args: ResourceValidationArgs, report: ReportViolation) -> None:
    t, p = args.resource_type, args.props
    if t == "gcp:compute/image:Image":
        tee = _tee_mark(p.get("labels"))
        have = {_get(f, "type") for f in _list(p.get("guestOsFeatures"))}
        need = {GCP_GUEST_OS_FEATURE.get(tee or "", "a confidential capability"), "UEFI_COMPATIBLE"}
        if tee and not need <= have:
            report(
                f"{tee} peer-pod image {args.name} lacks guestOsFeatures "
                f"{', '.join(sorted(need - have))}; confidential VMs refuse to boot it",
                None,
            )
    elif t == "azure-native:compute:GalleryImage":
        tee = _tee_mark(p.get("tags"))
        types = {
            _get(f, "value") for f in _list(p.get("features")) if _get(f, "name") == "SecurityType"
        }
        if tee and not types & AZURE_CONFIDENTIAL_IMAGE_TYPES:
            report(
                f"{tee} peer-pod image definition {args.name} has no SecurityType feature "
                "ConfidentialVM; add features [{name: SecurityType, value: ConfidentialVM}] "
                "(and hyperVGeneration V2)",
                None,
            )
    elif t == "aws:ec2/ami:Ami":
        tee = _tee_mark(p.get("tags"))
        mode = p.get("bootMode")
        if tee and mode not in ("uefi", "uefi-preferred"):
            report(
                f"{tee} peer-pod AMI {args.name} has bootMode {mode!r}; SEV-SNP instances "
                "boot UEFI only: set bootMode uefi",
                None,
            )


def _policy(name: str, description: str, validate: Validate) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate)


POLICIES: list[Policy] = [
    _policy(
        "no-coco-dev-runtime",
        "No kata-qemu-coco-dev RuntimeClass or shim (tee: none): no TEE behind the pods.",
        _no_coco_dev,
    ),
    _policy(
        "kbs-https-authenticated-admin",
        "The KBS serves HTTPS and its admin API requires AuthenticatedAuthorization.",
        _kbs_https,
    ),
    _policy(
        "kbs-resource-policy-affirming",
        "The KBS resource policy is not allow-all: it requires affirming attestation.",
        _resource_policy,
    ),
    _policy(
        "kbs-storage-persistent",
        "The KBS storage is a PersistentVolumeClaim, not emptyDir or the container layer.",
        _kbs_storage,
    ),
    _policy(
        "images-pinned",
        "Container images are pinned by digest or exact version (no :latest, no missing tag).",
        _pinned_images,
    ),
    _policy(
        "no-cloud-credentials",
        "No cloud credential in Helm values, ConfigMaps or literal container env.",
        _no_credentials,
    ),
    _policy(
        "confidential-pools",
        "Pools marked with a TEE really are confidential VMs of that TEE.",
        _confidential_pools,
    ),
    _policy(
        "peer-pod-image-tee-features",
        "Peer-pod images marked with a TEE are published with its guest OS features.",
        _image_features,
    ),
]
