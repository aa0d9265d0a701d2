"""The components served to other Pulumi languages (components/plugin/).

The schema is inferred the way `pulumi package add` gets it: ComponentProvider, the class the
component provider host serves, analyses the components and answers GetSchema with the JSON
checked here. Construction goes through the same provider (`construct`, the inputs as the engine
sends them: schema names, plain dicts), under the render mocks; assertions run on what was
recorded after the program finished.

The provider runs in a subprocess: pulumi.provider registers its own copy of google.rpc.Status
in protobuf's default descriptor pool, and googleapis-common-protos (imported by the GCP tests
through google-cloud-compute) registers the same symbol, so the two cannot be imported into one
process ("duplicate symbol 'google.rpc.Status'"). The plugin's own process never imports the
Google libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from cli import render
from components.plugin import PACKAGE, ComponentArgsError
from components.plugin import exported as ex
from tests.conftest import ROOT, one, render_program

PLUGIN_DIR = ROOT / "components" / "plugin"

# Inputs as the engine sends them for a TypeScript/Go/YAML program: schema names, plain values,
# numbers as doubles.
HOSTED = {
    "Runtime": {
        "pools": [
            {"name": "snp", "tee": "snp", "nodeSelector": {"hw": "milan"}},
            {"name": "dev", "tee": "none", "nodeSelector": {"hw": "any"}},
        ],
        "distribution": "k3s",
    },
    "NodePool": {"pool": {"name": "tdx", "tee": "tdx", "nodeSelector": {"cpu": "spr"}}},
    "KeyBroker": {
        "resources": [{"path": "default/key/1", "value": "s3cret-value"}],
        "referenceValues": {"snp_launch_measurement": ["ab" * 48], "snp_microcode": [209.0, 211.0]},
    },
}

_PROBE = """
import json, runpy, sys
import pulumi
import pulumi.provider.experimental as experimental
from pulumi.provider.experimental.component import ComponentProvider
from cli import render
from components.plugin import COMPONENTS, PACKAGE

plugin_dir, hosted = sys.argv[1], json.loads(sys.argv[2])
out = {"schema": json.loads(ComponentProvider(COMPONENTS, PACKAGE).schema), "hosted": {}}

def construct(token, inputs):
    def program():
        provider = ComponentProvider(COMPONENTS, PACKAGE)
        result = provider.construct("c", f"{PACKAGE}:index:{token}", inputs,
                                    pulumi.ResourceOptions())
        for key, value in sorted(result.state.items()):
            pulumi.export(key, value)
    registrations, outputs = render.record(program, stack="test")
    return {
        "outputs": render.unwrap(outputs),
        "secret_outputs": sorted(k for k, v in outputs.items() if isinstance(v, render.Secret)),
        "registrations": [
            {"type": r.type, "name": r.name, "inputs": render.unwrap(r.inputs),
             "redacted": render.redact(r.inputs)}
            for r in registrations
        ],
    }

for token, inputs in hosted.items():
    out["hosted"][token] = construct(token, inputs)

calls = []
experimental.component_provider_host = (
    lambda components, name, version: calls.append([[c.__name__ for c in components], name,
                                                    version]))
sys.path.insert(0, plugin_dir)  # the language host runs `python <plugin dir>`
runpy.run_path(plugin_dir, run_name="__main__")
out["main"] = calls
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(PLUGIN_DIR), json.dumps(HOSTED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schema(probe: dict[str, Any]) -> dict[str, Any]:
    return probe["schema"]  # type: ignore[no-any-return]


def _resource(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return schema["resources"][f"{PACKAGE}:index:{name}"]  # type: ignore[no-any-return]


def _registered(hosted: dict[str, Any], type_: str, name: str | None = None) -> list[Any]:
    return sorted(
        (r for r in hosted["registrations"] if r["type"] == type_ and name in (None, r["name"])),
        key=lambda r: r["name"],
    )


class TestSchema:
    """The inferred schema is the contract TypeScript, Go and YAML programs are generated from."""

    def test_package_and_components(self, schema: dict[str, Any]) -> None:
        assert schema["name"] == "coco-stack"
        assert sorted(schema["resources"]) == [
            "coco-stack:index:GuestImage",
            "coco-stack:index:KeyBroker",
            "coco-stack:index:NodePool",
            "coco-stack:index:Runtime",
        ]
        assert all(r["isComponent"] for r in schema["resources"].values())
        assert sorted(schema["types"]) == ["coco-stack:index:KbsResource", "coco-stack:index:Pool"]

    def test_runtime_inputs_and_outputs(self, schema: dict[str, Any]) -> None:
        runtime = _resource(schema, "Runtime")
        inputs = runtime["inputProperties"]
        assert runtime["requiredInputs"] == ["pools"]
        assert inputs["pools"]["type"] == "array"
        assert inputs["pools"]["items"]["$ref"] == "#/types/coco-stack:index:Pool"
        assert {
            k: inputs[k]["type"] for k in ("nodeFeatureDiscovery", "debug", "distribution")
        } == {"nodeFeatureDiscovery": "boolean", "debug": "boolean", "distribution": "string"}
        # everything the component needs while it is built is plain
        assert all(p.get("plain") is True for p in inputs.values())
        outputs = runtime["properties"]
        assert outputs["runtimeClasses"]["type"] == "object"
        assert outputs["runtimeClasses"]["additionalProperties"]["type"] == "string"
        assert runtime["required"] == ["namespace", "runtimeClasses"]

    def test_pool_type(self, schema: dict[str, Any]) -> None:
        pool = schema["types"]["coco-stack:index:Pool"]
        assert pool["required"] == ["name", "nodeSelector", "tee"]
        assert pool["properties"]["nodeSelector"]["additionalProperties"]["type"] == "string"
        assert "DNS label" in pool["properties"]["name"]["description"]
        node_pool = _resource(schema, "NodePool")
        assert node_pool["inputProperties"]["pool"]["$ref"] == "#/types/coco-stack:index:Pool"
        assert node_pool["requiredInputs"] == ["pool"]
        assert sorted(node_pool["properties"]) == [
            "evidence",
            "nodeSelector",
            "runtimeClass",
            "shim",
        ]

    def test_key_broker(self, schema: dict[str, Any]) -> None:
        kbs = _resource(schema, "KeyBroker")
        assert kbs["requiredInputs"] == []
        inputs = kbs["inputProperties"]
        assert inputs["resources"]["items"]["$ref"] == "#/types/coco-stack:index:KbsResource"
        assert inputs["insecureHttp"]["type"] == "boolean"
        assert inputs["referenceValues"]["additionalProperties"]["$ref"] == "pulumi.json#/Any"
        assert sorted(kbs["properties"]) == ["adminToken", "caCert", "namespace", "url"]
        assert "secret" in kbs["properties"]["adminToken"]["description"]
        resource = schema["types"]["coco-stack:index:KbsResource"]
        assert resource["required"] == ["path", "value"]
        assert "repo/type/tag" in resource["properties"]["path"]["description"]

    def test_guest_image(self, schema: dict[str, Any]) -> None:
        image = _resource(schema, "GuestImage")
        assert image["requiredInputs"] == ["recipe"]
        assert image["inputProperties"]["outDir"]["type"] == "string"
        assert sorted(image["properties"]) == [
            "artifacts",
            "digests",
            "recipeHash",
            "referenceValues",
            "rootHash",
        ]

    def test_every_property_is_described(self, schema: dict[str, Any]) -> None:
        undocumented = [
            f"{token}.{group}.{prop}"
            for token, resource in schema["resources"].items()
            for group in ("inputProperties", "properties")
            for prop, spec in resource[group].items()
            if not spec.get("description") and "$ref" not in spec
        ]
        undocumented += [
            f"{token}.{prop}"
            for token, type_ in schema["types"].items()
            for prop, spec in type_["properties"].items()
            if not spec.get("description")
        ]
        assert undocumented == []
        assert all(r.get("description") for r in schema["resources"].values())


class TestPluginFiles:
    """What `pulumi package add <checkout>/components/plugin` finds in the directory."""

    def test_manifest(self) -> None:
        manifest = yaml.safe_load((PLUGIN_DIR / "PulumiPlugin.yaml").read_text())
        assert manifest["runtime"]["name"] == "python"
        assert manifest["runtime"]["options"]["virtualenv"] == "venv"
        assert (PLUGIN_DIR / "__main__.py").is_file()
        requirements = (PLUGIN_DIR / "requirements.txt").read_text().split()
        # pip runs in the plugin directory: ../.. is the checkout with pyproject.toml
        assert (PLUGIN_DIR / "../../pyproject.toml").resolve() == ROOT / "pyproject.toml"
        assert "../.." in requirements

    def test_main_hosts_every_component(self, probe: dict[str, Any]) -> None:
        assert probe["main"] == [
            [
                ["NodePool", "Runtime", "KeyBroker", "GuestImage"],
                "coco-stack",
                metadata.version("coco-stack"),
            ]
        ]


class TestHosted:
    """Inputs arrive with schema names as plain dicts and build the stack's own components."""

    def test_runtime(self, probe: dict[str, Any]) -> None:
        hosted = probe["hosted"]["Runtime"]
        assert hosted["outputs"]["runtimeClasses"] == {
            "dev": "kata-qemu-coco-dev",
            "snp": "kata-qemu-snp",
        }
        assert [r["name"] for r in _registered(hosted, "coco-stack:index:Runtime")] == ["c"]
        (release,) = _registered(hosted, "kubernetes:helm.sh/v3:Release")
        assert release["inputs"]["values"]["kata-as-coco-runtime"]["k8sDistribution"] == "k3s"
        classes = {
            r["inputs"]["metadata"]["name"]: r["inputs"]
            for r in _registered(hosted, "kubernetes:node.k8s.io/v1:RuntimeClass")
        }
        assert sorted(classes) == ["kata-qemu-coco-dev", "kata-qemu-snp"]
        assert classes["kata-qemu-snp"]["scheduling"]["nodeSelector"]["hw"] == "milan"

    def test_node_pool(self, probe: dict[str, Any]) -> None:
        outputs = probe["hosted"]["NodePool"]["outputs"]
        assert outputs["runtimeClass"] == "kata-qemu-tdx"
        assert outputs["shim"] == "qemu-tdx"
        assert outputs["evidence"] == "tdx"
        assert outputs["nodeSelector"]["cpu"] == "spr"

    def test_key_broker_keeps_resource_values_secret(self, probe: dict[str, Any]) -> None:
        hosted = probe["hosted"]["KeyBroker"]
        assert hosted["outputs"]["url"] == "https://kbs.coco-kbs.svc.cluster.local:8080"
        assert hosted["secret_outputs"] == ["adminToken"]
        reached = [
            (r["name"], "s3cret-value" in json.dumps(r["redacted"]))
            for r in hosted["registrations"]
            if "s3cret-value" in json.dumps(r["inputs"])  # the value reached this resource ...
        ]
        # ... only inside values marked secret
        assert reached == [("c-kbs-resources", False)]
        (config,) = _registered(hosted, "kubernetes:core/v1:ConfigMap", "c-kbs-reference-values")
        assert "ab" * 48 in json.dumps(config["inputs"])
        assert '\\"value\\":[209,211]' in json.dumps(config["inputs"])  # integers again


class TestBadInputs:
    """One mistake each: a clear error naming the input path, before anything is registered."""

    def _error(self, component: type, args: dict[str, Any]) -> str:
        errors: list[str] = []

        def program() -> None:
            try:
                component("bad", args)
            except ComponentArgsError as exc:
                errors.append(str(exc))

        result = render_program(program)
        assert result.registrations == []  # raised before the component registered anything
        assert len(errors) == 1
        return errors[0]

    def test_tee_not_on_bare_metal(self) -> None:
        message = self._error(
            ex.Runtime,
            {
                "pools": [
                    {"name": "a", "tee": "snp", "node_selector": {"a": "b"}},
                    {"name": "b", "tee": "sgx", "node_selector": {"a": "c"}},
                ]
            },
        )
        assert "Runtime 'bad'" in message
        assert "pools[1].tee: Intel SGX is not offered on baremetal" in message
        assert "pools[0]" not in message

    def test_resource_path(self) -> None:
        message = self._error(ex.KeyBroker, {"resources": [{"path": "default/key", "value": "x"}]})
        assert "resources[0].path: 'default/key' has 2 segment(s)" in message
        assert "hint: write repo/type/tag" in message

    def test_production_refuses_allow_all(self) -> None:
        message = self._error(
            ex.KeyBroker, {"environment": "production", "resource_policy": "allow-all"}
        )
        assert "resourcePolicy: allow-all" in message
        assert "refused in production" in message

    def test_secret_output_value_is_accepted_and_stays_secret(self) -> None:
        def program() -> None:
            ex.KeyBroker(
                "kb",
                {"resources": [{"path": "default/key/1", "value": pulumi.Output.secret("x1y2z3")}]},
            )

        result = render_program(program)
        (secret,) = [
            r for r in result.registrations
            if r.type == "kubernetes:core/v1:Secret" and r.name.endswith("-resources")
        ]
        from cli.render import Secret as Sealed
        from components.kbs import broker as kbs_mod

        data = secret.inputs["stringData"]
        key = kbs_mod.resource_key("default/key/1")
        # the Output's value arrives marked secret (the SDK may seal the whole map)
        assert isinstance(data, Sealed) or isinstance(data[key], Sealed)
        assert render.unwrap(data)[key] == "x1y2z3"
        assert "[output]" not in json.dumps(render.unwrap(secret.inputs))
        assert "x1y2z3" not in json.dumps(result.document())

    def test_cloud_pool(self) -> None:
        message = self._error(
            ex.NodePool,
            {"pool": {"name": "p", "tee": "snp", "provider": "aws", "node_selector": {"a": "b"}}},
        )
        assert (
            "pool.provider: 'aws': the exported components build pools on existing nodes" in message
        )

    def test_pool_name(self) -> None:
        message = self._error(
            ex.NodePool, {"pool": {"name": "Bad_Name", "tee": "snp", "node_selector": {"a": "b"}}}
        )
        assert "pool.name: 'Bad_Name' is not a DNS label" in message

    def test_distribution(self) -> None:
        message = self._error(
            ex.Runtime,
            {
                "pools": [{"name": "a", "tee": "snp", "node_selector": {"a": "b"}}],
                "distribution": "openshift",
            },
        )
        assert "distribution: 'openshift' is not one of" in message

    def test_unknown_recipe(self) -> None:
        message = self._error(ex.GuestImage, {"recipe": "no-such-recipe"})
        assert "recipe: no recipe named 'no-such-recipe'" in message
        assert "known recipes:" in message


def test_guest_image_builds_under_the_hood() -> None:
    """The wrapper registers the stack's GuestImage and its build command for the recipe."""
    result = render_program(lambda: ex.GuestImage("img", {"recipe": "minimal", "out_dir": "out"}))
    command = one(result, "command:local:Command", "img-image-build")
    assert "images/recipes/minimal.toml" in command.inputs["create"]
    assert str(Path("out").resolve()) in command.inputs["create"]
