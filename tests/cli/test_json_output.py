"""`--output json`: every JSON document validates against its committed schema (cli/schemas/),
says what the text says, and `coco render --out -` is the directory form as one document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cli import main, output, render
from spec.errors import ConfigIssue, ExitCode
from tests.cli.test_kbs_client import _token, server  # noqa: F401  (the HTTPS KBS fixture)
from tests.cli.test_main import ca_pem

ROOT = Path(__file__).resolve().parents[2]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main.main([*argv, "-o", "json"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    document: dict[str, Any] = json.loads(out)
    return document


def valid(document: dict[str, Any], schema: str) -> None:
    jsonschema.Draft202012Validator.check_schema(output.schema(schema))
    jsonschema.validate(document, output.schema(schema))


class TestSchemas:
    def test_every_schema_is_valid_and_versioned(self) -> None:
        names = sorted(p.name for p in output.SCHEMAS.glob("*.schema.json"))
        assert len(names) == 7
        for name in names:
            schema = output.schema(name.removesuffix(".schema.json"))
            jsonschema.Draft202012Validator.check_schema(schema)
            assert schema["properties"]["schemaVersion"] == {"const": 1} or (
                schema["properties"]["schemaVersion"]["const"] == 1
            )

    def test_schemas_refuse_what_they_do_not_describe(self) -> None:
        """The schemas are strict: a field the schema does not list fails validation, so a
        command that grows a field must document it (and the test catches it)."""
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(
                {"schemaVersion": 1, "command": "render", "stack": "dev", "resources": 1,
                 "manifests": 1, "out": None, "warnings": [], "notice": "", "extra": 1},
                output.schema("render"),
            )


class TestCheck:
    @pytest.mark.parametrize("stack", ["dev", "mixed", "azure-snp", "baremetal-snp"])
    def test_valid_stack(self, stack: str, capsys) -> None:
        document = run_json(capsys, "check", stack)
        valid(document, "check")
        assert document["stack"] == stack and document["valid"] is True
        assert document["command"] == "check" and document["live"] is None
        text_code = main.main(["check", stack])
        text = capsys.readouterr().out
        assert text_code == 0
        for pool in document["nodePools"]:
            assert f"  - {pool['name']}: {pool['tee']} " in text
            assert (pool["runtimeClass"] or "(none") in text

    def test_dev_pool(self, capsys) -> None:
        (pool,) = run_json(capsys, "check", "dev")["nodePools"]
        assert pool["runtimeClass"] == "kata-qemu-coco-dev"
        assert pool["nodeSelector"] == {"node.kubernetes.io/worker": ""}

    def test_warnings_are_in_the_document(self, capsys) -> None:
        document = run_json(capsys, "check", "dev")
        paths = [w["path"] for w in document["warnings"]]
        assert "coco:kbs.resources[0].value" in paths  # stored in plain text in stacks/

    def test_live(self, monkeypatch, capsys) -> None:
        from components import preflight

        def checker(spec: Any) -> list[ConfigIssue]:
            return [ConfigIssue("coco:nodePools[0].region", "offered elsewhere", "use eastus",
                                severity="warning")]

        monkeypatch.setattr(preflight, "_default_checker", lambda cloud: checker)
        document = run_json(capsys, "check", "azure-snp", "--live")
        valid(document, "check")
        assert document["live"]["checked"] == ["azure"]
        assert document["live"]["issues"][0]["path"] == "coco:nodePools[0].region"

    def test_live_errors_are_an_error_object(self, monkeypatch, capsys) -> None:
        from components import preflight

        def checker(spec: Any) -> list[ConfigIssue]:
            return [ConfigIssue("coco:nodePools[0].instanceType", "not offered", "pick another")]

        monkeypatch.setattr(preflight, "_default_checker", lambda cloud: checker)
        assert main.main(["check", "azure-snp", "--live", "-o", "json"]) == ExitCode.INVALID
        out, err = capsys.readouterr()
        assert out == ""
        found = json.loads(err.strip().splitlines()[-1])
        valid(found, "error")
        assert found["error"]["issues"][0]["path"] == "coco:nodePools[0].instanceType"

    def test_invalid_stack_lists_every_issue(self, tmp_path: Path, capsys) -> None:
        stack = tmp_path / "Pulumi.bad.yaml"
        stack.write_text("config:\n  coco:nodePools:\n    - tee: tdz\n      name: Bad_Name\n")
        assert main.main(["check", str(stack), "-o", "json"]) == ExitCode.INVALID
        out, err = capsys.readouterr()
        found = json.loads(err.strip().splitlines()[-1])
        valid(found, "error")
        assert out == ""
        errors = [i for i in found["error"]["issues"] if i["severity"] == "error"]
        assert len(errors) >= 2
        assert all(i["path"].startswith("coco:nodePools[0]") for i in errors)


class TestInitdata:
    def test_document(self, tmp_path: Path, capsys) -> None:
        cert, _ = ca_pem()
        (tmp_path / "ca.pem").write_bytes(cert)
        document = run_json(capsys, "initdata", "dev", "--cacert", str(tmp_path / "ca.pem"))
        valid(document, "initdata")
        assert document["stack"] == "dev"
        assert cert.decode().splitlines()[1] in document["toml"]
        # the text form shows the same annotation value and digests
        main.main(["initdata", "dev", "--cacert", str(tmp_path / "ca.pem")])
        text = capsys.readouterr().out
        (value,) = document["annotation"].values()
        assert value in text
        assert all(digest in text for digest in document["digests"].values())


class TestKbs:
    def test_get_reference_value(self, server, tmp_path: Path, capsys) -> None:  # noqa: F811
        url, ca, _, key = server
        (tmp_path / "ca.pem").write_text(ca)
        (tmp_path / "token").write_text(_token(key))
        connect = ["--url", url, "--cacert", str(tmp_path / "ca.pem"),
                   "--token-file", str(tmp_path / "token")]
        document = run_json(capsys, "kbs", "get-reference-value", "snp_launch_measurement",
                            *connect)
        valid(document, "kbs-get-reference-value")
        assert document["value"] == ["aa" * 48]
        assert document["command"] == "kbs get-reference-value"


@pytest.fixture(scope="module")
def dev_render() -> render.Render:
    return render.run_stack("dev", ROOT)


class TestRender:
    def test_summary_only_writes_nothing(self, tmp_path: Path, monkeypatch, capsys) -> None:
        monkeypatch.chdir(tmp_path)
        assert main.main(["render", "dev"]) == 0
        out = capsys.readouterr().out
        assert "rendered stack dev:" in out and "nothing written" in out
        assert list(tmp_path.iterdir()) == []
        document = run_json(capsys, "render", "dev")
        valid(document, "render")
        assert document["out"] is None and document["resources"] > 10
        assert list(tmp_path.iterdir()) == []

    def test_summary_counts_match_the_directory_form(self, tmp_path: Path, capsys) -> None:
        document = run_json(capsys, "render", "dev", "--out", str(tmp_path / "out"))
        valid(document, "render")
        written = json.loads((tmp_path / "out" / "resources.json").read_text())
        assert document["resources"] == len(written["resources"])
        assert document["manifests"] == len(list((tmp_path / "out" / "manifests").iterdir()))

    def test_stdout_document_is_the_directory_form(self, tmp_path: Path, capsys) -> None:
        assert main.main(["render", "dev", "--out", "-"]) == 0
        out, err = capsys.readouterr()
        assert "render: " in err and "rendered stack dev" in err  # progress on stderr only
        document = json.loads(out)
        valid(document, "render-document")
        assert main.main(["render", "dev", "--out", str(tmp_path / "dir")]) == 0
        capsys.readouterr()
        written = json.loads((tmp_path / "dir" / "resources.json").read_text())
        for key in ("notice", "project", "stack", "resources", "outputs"):
            assert document[key] == written[key], key
        files = sorted((tmp_path / "dir" / "manifests").iterdir())
        assert sorted(document["manifests"]) == [f.name for f in files]
        for f in files:
            assert document["manifests"][f.name] == yaml.safe_load(f.read_text())
        # deterministic: a second run prints the same bytes
        assert main.main(["render", "dev", "--out", "-"]) == 0
        assert capsys.readouterr().out == out


class TestKbsCaCert:
    """The dev stack exports kbsCaCert (README, docs/kbs.md); under mocks its value is computed
    by the tls provider at `pulumi up`, so the render shows the placeholder, not nothing."""

    def test_dev_render_exports_it(self, dev_render: render.Render) -> None:
        document = dev_render.document()
        assert document["outputs"]["kbsCaCert"] == render.UNKNOWN
        for name in ("kbsUrl", "kbsNamespace", "kbsAdminToken"):
            assert name in document["outputs"]

    def test_any_export_computed_by_a_provider_is_kept(self) -> None:
        import pulumi

        def program() -> None:
            pulumi.export("known", "value")
            pulumi.export("computed", pulumi.Output.from_input(None))

        _, outputs = render.record(program, stack="t")
        assert outputs == {"known": "value", "computed": render.UNKNOWN}


class TestImage:
    """`coco check` says which image the stack builds, what cloud pod VMs boot and how much
    encrypted scratch space they get, in text and JSON alike (the decisions of spec.rules)."""

    def _stack(self, tmp_path: Path, image: dict[str, Any]) -> str:
        doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.aws-snp.yaml").read_text())
        doc["config"]["coco:image"] = image
        path = tmp_path / "Pulumi.img.yaml"
        path.write_text(yaml.safe_dump(doc))
        return str(path)

    @pytest.mark.parametrize(
        ("image", "expected", "line"),
        [
            ({"recipe": "podvm"},
             {"recipe": "podvm", "podVms": ["aws"], "podvmImage": None, "scratchSpaceGib": 20},
             "image: recipe podvm, built during `pulumi up`; pod VMs boot the recipe's image, "
             "encrypted scratch space 20 GiB"),
            ({"recipe": "podvm", "scratchSpace": {"sizeGib": 35}},
             {"recipe": "podvm", "podVms": ["aws"], "podvmImage": None, "scratchSpaceGib": 35},
             "pod VMs boot the recipe's image, encrypted scratch space 35 GiB"),
            ({"recipe": "podvm", "scratchSpace": {"enabled": False}},
             {"recipe": "podvm", "podVms": ["aws"], "podvmImage": None, "scratchSpaceGib": None},
             "pod VMs boot the recipe's image, no scratch space"),
            ({"podvmImage": "ami-0123456789abcdef0"},
             {"recipe": None, "podVms": ["aws"], "podvmImage": "ami-0123456789abcdef0",
              "scratchSpaceGib": None},
             "image: pod VMs boot ami-0123456789abcdef0, no scratch space"),
            ({"podvmImage": "ami-0123456789abcdef0", "scratchSpace": {"enabled": True}},
             {"recipe": None, "podVms": ["aws"], "podvmImage": "ami-0123456789abcdef0",
              "scratchSpaceGib": 20},
             "image: pod VMs boot ami-0123456789abcdef0, encrypted scratch space 20 GiB"),
        ],
    )
    def test_pod_vm_image_and_scratch(self, tmp_path: Path, capsys, image, expected, line):
        stack = self._stack(tmp_path, image)
        document = run_json(capsys, "check", stack)
        valid(document, "check")
        assert document["image"] == expected
        assert main.main(["check", stack]) == 0
        text = capsys.readouterr().out
        (shown,) = [t for t in text.splitlines() if t.startswith("image: ")]
        assert shown.endswith(line), shown

    def test_no_image_no_line(self, capsys) -> None:
        document = run_json(capsys, "check", "dev")
        valid(document, "check")
        assert document["image"] is None
        assert main.main(["check", "dev"]) == 0
        assert "image:" not in capsys.readouterr().out
