"""Peer pods through the whole stack, for every cloud's peer-pods sample stack: the runtime enables
the remote shim, the peerpods chart gets every key the pinned release requires, its INITDATA
points the pod VMs at this stack's KBS and trusts this stack's CA, and the chart runs after the
runtime. The clouds' own tests (tests/components/clouds/, tests/components/test_ibm_se.py)
trace each key to its resource output; here the wiring between the components is checked."""

from __future__ import annotations

import base64
import gzip
import tomllib
from typing import Any

import pytest

from cli import render
from components import peerpods
from spec import runtime_plan, stackfile
from tests.components.kbs.tls_mocks import patch_render_mocks
from tests.conftest import one, resources_of

RELEASE = "kubernetes:helm.sh/v3:Release"
# sample stack -> the cloud-api-adaptor provider it configures
STACKS = {
    "azure-snp": "azure",
    "azure-tdx": "azure",
    "aws-snp": "aws",
    "gcp-tdx": "gcp",
    "ibm-se": "ibmcloud",
}


def _initdata(value: str) -> dict[str, Any]:
    return tomllib.loads(gzip.decompress(base64.b64decode(value)).decode())


@pytest.fixture(scope="module")
def rendered() -> dict[str, render.Render]:
    mp = pytest.MonkeyPatch()
    patch_render_mocks(mp)  # real CA and server certificates from the tls resources
    try:
        from tests.conftest import ROOT

        return {name: render.run_stack(name, ROOT) for name in STACKS}
    finally:
        mp.undo()


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_peer_pods_wired_to_runtime_and_kbs(rendered: dict[str, render.Render], stack: str) -> None:
    result = rendered[stack]
    provider = STACKS[stack]
    chart = one(result, RELEASE, "coco-peer-pods-chart")
    values = render.unwrap(chart.inputs["values"])
    assert values["provider"] == provider
    config = values["providerConfigs"][provider]
    # every key the pinned release requires is there, and no credential is
    assert set(peerpods.REQUIRED_KEYS[provider]) <= set(config)
    assert not set(config) & peerpods.CREDENTIAL_KEYS[provider]
    assert values["secrets"]["mode"] == "reference"

    # the remote shim is the one kata-deploy installs, and the chart waits for the runtime
    kata = render.unwrap(one(result, RELEASE, "coco-runtime-chart").inputs["values"])
    shims = kata["kata-as-coco-runtime"]["shims"]
    assert sorted(k for k, v in shims.items() if k != "disableAll" and v["enabled"]) == ["remote"]
    # the PeerPods component (parent of the chart) waits for the runtime's release: children
    # are created after their parent, and the parent after its dependencies
    runtime = one(result, RELEASE, "coco-runtime-chart")
    component = one(result, "coco:runtime:PeerPods", "coco-peer-pods")
    assert runtime.urn in component.dependencies
    assert chart.parent_urn == component.urn

    # INITDATA: the stack's KBS URL and the stack's own CA
    init = _initdata(config["INITDATA"])
    assert init["algorithm"] == "sha256"
    aa = tomllib.loads(init["data"]["aa.toml"])
    cdh = tomllib.loads(init["data"]["cdh.toml"])
    url = result.outputs["kbsUrl"]
    assert aa["token_configs"]["kbs"]["url"] == url == cdh["kbc"]["url"]
    ca = render.unwrap(result.outputs["kbsCaCert"])
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert aa["token_configs"]["kbs"]["cert"] == ca == cdh["kbc"]["kbs_cert"]


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_runtime_class_per_pool(rendered: dict[str, render.Render], stack: str) -> None:
    result = rendered[stack]
    assert result.spec is not None
    peer = [p.name for p in result.spec.node_pools if p.mode == "peer-pods"]
    assert peer
    classes = result.outputs["runtimeClasses"]
    assert {classes[p] for p in peer} == {"kata-remote"}
    (rc,) = [
        r for r in resources_of(result, "kubernetes:node.k8s.io/v1:RuntimeClass")
        if r.inputs["metadata"]["name"] == "kata-remote"
    ]
    assert rc.inputs["scheduling"]["nodeSelector"][runtime_plan.KATA_RUNTIME_READY] == "true"


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_config_checksum_label(rendered: dict[str, render.Render], stack: str) -> None:
    """CAA and peerpod-ctrl pods carry one plain checksum label of their config and Secret."""
    chart = one(rendered[stack], RELEASE, "coco-peer-pods-chart")
    values = render.unwrap(chart.inputs["values"])
    labels = {
        part: values[part]["podLabels"][peerpods.CONFIG_CHECKSUM_LABEL]
        for part in ("daemonset", "resourceCtrl")
    }
    assert labels["daemonset"] == labels["resourceCtrl"]
    assert len(labels["daemonset"]) == peerpods.CHECKSUM_LENGTH
    # not marked secret, although GCP and IBM Cloud feed a secret key into it
    assert render.secret_paths(chart.inputs) == []


def _peer_pods_values(stack: str, config: dict[str, Any], real_tls: bool) -> dict[str, Any]:
    from tests.conftest import ROOT

    mp = pytest.MonkeyPatch()
    if real_tls:
        patch_render_mocks(mp)  # a fresh CA key and certificate on every render
    try:
        result = render.run(config, stack=stack, project_dir=ROOT)
    finally:
        mp.undo()
    return render.unwrap(one(result, RELEASE, "coco-peer-pods-chart").inputs["values"])


def _label(values: dict[str, Any]) -> str:
    return str(values["daemonset"]["podLabels"][peerpods.CONFIG_CHECKSUM_LABEL])


# one cloud is enough for the wiring (chart_values derives the label the same way for all);
# azure and aws stacks render 3-4x slower
@pytest.mark.parametrize("stack", ["gcp-tdx"])
def test_new_podvm_image_rolls_caa(stack: str) -> None:
    """A new pod-VM image (here PODVM_IMAGE_NAME) changes the label through the whole stack;
    the same stack renders the same label."""
    from tests.conftest import ROOT

    config = stackfile.load(stack, ROOT).config

    def values(image: str) -> dict[str, Any]:
        with_image = {**config, "coco:image": {**config["coco:image"], "podvmImage": image}}
        found = _peer_pods_values(stack, with_image, real_tls=False)
        assert image in found["providerConfigs"][STACKS[stack]].values()  # reached peer-pods-cm
        return found

    first = _label(values("podvm-image-1"))
    assert _label(values("podvm-image-1")) == first
    assert _label(values("podvm-image-2")) != first


def test_new_kbs_ca_rolls_caa() -> None:
    """A new KBS CA changes INITDATA, and with it the label."""
    from tests.conftest import ROOT

    config = stackfile.load("gcp-tdx", ROOT).config
    one_ca, other_ca = (_peer_pods_values("gcp-tdx", config, real_tls=True) for _ in range(2))
    init = [v["providerConfigs"]["gcp"]["INITDATA"] for v in (one_ca, other_ca)]
    cas = [tomllib.loads(_initdata(i)["data"]["cdh.toml"])["kbc"]["kbs_cert"] for i in init]
    assert cas[0] != cas[1] and cas[0].startswith("-----BEGIN CERTIFICATE-----")
    assert _label(one_ca) != _label(other_ca)


# --- the pod VMs' encrypted scratch space (coco:image.scratchSpace) ---------------------------

SCRATCH_KEYS = ("ENABLE_SCRATCH_SPACE", "ROOT_VOLUME_SIZE")


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_scratch_space_on_for_the_recipes_image(
    rendered: dict[str, render.Render], stack: str
) -> None:
    """The sample stacks whose pod VMs boot the podvm recipe's image turn the scratch space on
    by default: 20 GiB, plus the image's size, which render says is unknown (nothing is built)
    rather than writing a disk too small by the image; IBM Cloud's pod VMs boot the user's SE
    image, so nothing is added there."""
    provider = STACKS[stack]
    chart = one(rendered[stack], RELEASE, "coco-peer-pods-chart")
    config = render.unwrap(chart.inputs["values"])["providerConfigs"][provider]
    if provider == "ibmcloud":
        assert not set(SCRATCH_KEYS) & set(config)
    else:
        assert rendered[stack].spec is not None and rendered[stack].spec.image.recipe == "podvm"
        assert (config["ENABLE_SCRATCH_SPACE"], config["ROOT_VOLUME_SIZE"]) == (
            "true", f"{peerpods.UNBUILT_ROOT_VOLUME} + 20"
        )


def test_scratch_disk_adds_the_built_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """During `pulumi up` the disk is the built raw disk's whole GiB plus the scratch: the size
    comes from the image build's output (here a provider-computed stdout of the build)."""
    import json

    from tests.conftest import ROOT, patch_provider_outputs

    size = 1_500_000_000  # 1.4 GiB: 2 whole GiB

    def outputs(typ: str, inputs: dict[str, Any]) -> Any:
        if typ == "command:local:Command" and "image build" in str(inputs.get("create", "")):
            built = {"artifacts": {"disk.raw": {"sha256": "0" * 64, "size": size}}}
            return {**inputs, "stdout": json.dumps(built)}
        return None

    patch_provider_outputs(monkeypatch, outputs)
    config = stackfile.load("gcp-tdx", ROOT).config
    # 10: the least GCP takes (spec.rules.image.GCP_MIN_SCRATCH_GIB)
    config = {**config, "coco:image": {**config["coco:image"], "scratchSpace": {"sizeGib": 10}}}
    result = render.run(config, stack="gcp-tdx", project_dir=ROOT)
    values = render.unwrap(one(result, RELEASE, "coco-peer-pods-chart").inputs["values"])
    assert values["providerConfigs"]["gcp"]["ROOT_VOLUME_SIZE"] == "12"


@pytest.mark.parametrize(("scratch", "expected"), [
    (None, None),  # a user's image may lack the scratch units: off unless asked
    ({"enabled": True}, "20"),  # asked: the disk is sizeGib alone (the image's size unknown)
    ({"enabled": True, "sizeGib": 40}, "40"),
])
def test_scratch_space_with_a_users_image(scratch: Any, expected: str | None) -> None:
    from tests.conftest import ROOT

    config = stackfile.load("gcp-tdx", ROOT).config
    image: dict[str, Any] = {**config["coco:image"], "podvmImage": "my-podvm"}
    if scratch is not None:
        image["scratchSpace"] = scratch
    found = _peer_pods_values("gcp-tdx", {**config, "coco:image": image}, real_tls=False)
    gcp = found["providerConfigs"]["gcp"]
    if expected is None:
        assert not set(SCRATCH_KEYS) & set(gcp)
    else:
        assert (gcp["ENABLE_SCRATCH_SPACE"], gcp["ROOT_VOLUME_SIZE"]) == ("true", expected)


def test_scratch_space_turned_off() -> None:
    from tests.conftest import ROOT

    config = stackfile.load("gcp-tdx", ROOT).config
    image = {**config["coco:image"], "scratchSpace": {"enabled": False}}
    found = _peer_pods_values("gcp-tdx", {**config, "coco:image": image}, real_tls=False)
    assert not set(SCRATCH_KEYS) & set(found["providerConfigs"]["gcp"])
