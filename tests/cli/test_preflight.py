"""`coco check --live`: which clouds are asked, how missing credentials and cloud findings are
reported, and the exit codes. The clouds' own checks (recorded responses) are tested in
tests/components/clouds/; here each cloud's checker is replaced by a recording fake."""

from __future__ import annotations

import pytest

from cli import main as cli
from components import preflight
from spec.errors import ConfigIssue, NoCredentials
from spec.validate import validate

STACK = """\
config:
  coco:environment: dev
  coco:cluster:
    provider: existing
  coco:nodePools:
    - name: cvm
      tee: snp
      provider: azure
      mode: nodes
      region: westeurope
      nodeSelector:
        coco-stack.io/pool: cvm
    - name: gcp
      tee: tdx
      provider: gcp
      zone: europe-west4-a
      nodeSelector:
        node.kubernetes.io/worker: ""
  coco:image:
    podvmImage: podvm-tdx
"""


def _spec():
    import yaml

    config = yaml.safe_load(STACK)["config"]
    spec, _ = validate(config, stack="t")
    return spec


class TestClouds:
    def test_clouds_of_pools_and_cluster(self):
        assert preflight.clouds_of(_spec()) == ["azure", "gcp"]
        spec, _ = validate(
            {
                "coco:cluster": {"provider": "eks", "region": "eu-west-1"},
                "coco:nodePools": [],
            },
            stack="t",
        )
        assert preflight.clouds_of(spec) == ["aws"]

    def test_bare_metal_stack_asks_no_cloud(self):
        spec, _ = validate(
            {"coco:nodePools": [{"name": "m", "tee": "snp", "nodeSelector": {"a": "b"}}]},
            stack="t",
        )
        assert preflight.clouds_of(spec) == []


class TestRun:
    def test_skips_clouds_without_credentials_and_collects_the_rest(self):
        asked = []

        def azure(spec):
            asked.append(("azure", spec.stack))
            raise NoCredentials("azure", "no credentials in the environment", "az login")

        def gcp(spec):
            asked.append(("gcp", spec.stack))
            return [
                ConfigIssue("coco:nodePools[1].zone", "c3-standard-4 is not offered", "try b"),
                ConfigIssue("coco:nodePools[1].instanceType", "restricted", "ask support"),
            ]

        result = preflight.run(_spec(), {"azure": azure, "gcp": gcp})
        assert asked == [("azure", "t"), ("gcp", "t")]
        assert result.checked == ["gcp"]
        assert [s.cloud for s in result.skipped] == ["azure"]
        # sorted by path, whatever order the cloud returned them in
        assert [i.path for i in result.issues] == [
            "coco:nodePools[1].instanceType",
            "coco:nodePools[1].zone",
        ]


class TestCli:
    @pytest.fixture
    def stack_file(self, tmp_path):
        path = tmp_path / "Pulumi.live.yaml"
        path.write_text(STACK)
        return path

    def test_live_errors_exit_invalid(self, stack_file, monkeypatch, capsys):
        def gcp(spec):
            return [ConfigIssue("coco:nodePools[1].zone", "c3 is not offered in this zone",
                                "use europe-west4-b")]

        def azure(spec):
            raise NoCredentials("azure", "no credentials found", "run az login")

        checkers = {"gcp": gcp, "azure": azure}
        monkeypatch.setattr(preflight, "_default_checker", lambda cloud: checkers[cloud])
        code = cli.main(["check", str(stack_file), "--live"])
        out, err = capsys.readouterr()
        assert code == cli.EXIT_INVALID
        assert "error: coco:nodePools[1].zone: c3 is not offered in this zone" in err
        assert "live check skipped for azure: no credentials found" in err
        assert "hint: run az login" in err
        assert "live check (gcp): 1 error(s)" in out
        assert err.count("only the offline checks ran") == 1

    def test_skip_reason_is_said_once(self, stack_file, monkeypatch, capsys):
        def azure(spec):
            raise NoCredentials("azure", "AZURE_SUBSCRIPTION_ID is not set; only the offline "
                                "checks ran", "export it")

        monkeypatch.setattr(preflight, "_default_checker", lambda cloud: azure if cloud ==
                            "azure" else (lambda spec: []))
        cli.main(["check", str(stack_file), "--live"])
        assert capsys.readouterr().err.count("only the offline checks ran") == 1

    def test_live_clean_exits_zero(self, stack_file, monkeypatch, capsys):
        monkeypatch.setattr(preflight, "_default_checker", lambda cloud: lambda spec: [])
        assert cli.main(["check", str(stack_file), "--live"]) == 0
        out, _ = capsys.readouterr()
        assert "live check (azure, gcp): every size is offered where asked" in out

    def test_without_live_no_cloud_is_asked(self, stack_file, monkeypatch):
        def boom(cloud):
            raise AssertionError(f"asked {cloud}")

        monkeypatch.setattr(preflight, "_default_checker", boom)
        assert cli.main(["check", str(stack_file)]) == 0
