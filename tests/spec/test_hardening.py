"""Issue 18 guards that are not a refusal of one stack file: warnings, stack names given on
the command line or by Pulumi, the redaction helper, and the program's view of lookalike keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components import program
from spec import stackfile
from spec.errors import ConfigIssue, SpecError, StackFileError
from spec.redact import Scrubber, redact_urls
from spec.validate import validate

_K3S = {
    "coco:cluster": {"provider": "k3s", "server": "Node1.Example."},
    "coco:nodePools": [{"name": "m", "tee": "none", "provider": "baremetal",
                        "hosts": [{"address": "node1.example", "sshKey": "[s]"}]}],
}
_SECURE = frozenset({"coco:nodePools[0].hosts[0].sshKey"})


class TestK3sHostKeys:
    """Without a pinned host key the k3s join token goes to whoever answers: a warning in
    staging, an error in production."""

    def test_staging_warns(self) -> None:
        _, warnings = validate({**_K3S, "coco:environment": "staging"}, stack="s",
                               secure_paths=_SECURE)
        found = [w for w in warnings if w.path == "coco:nodePools[0].hosts[0].hostKey"]
        assert len(found) == 1 and "k3s join token" in found[0].message

    def test_dev_is_quiet(self) -> None:
        _, warnings = validate({**_K3S, "coco:environment": "dev"}, stack="s",
                               secure_paths=_SECURE)
        assert not [w for w in warnings if w.path.endswith("hostKey")]

    def test_production_refuses(self) -> None:
        with pytest.raises(SpecError) as info:
            validate({**_K3S, "coco:environment": "production"}, stack="s",
                     secure_paths=_SECURE)
        assert "coco:nodePools[0].hosts[0].hostKey" in [i.path for i in info.value.issues]

    def test_server_matches_its_host_in_any_spelling(self) -> None:
        spec, _ = validate({**_K3S, "coco:environment": "dev"}, stack="s", secure_paths=_SECURE)
        assert spec.cluster.server == spec.node_pools[0].hosts[0].address == "node1.example"


class TestStackNames:
    @pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "1st", "a b", "x" * 101, ""])
    def test_validate_refuses(self, name: str) -> None:
        """The program validates with pulumi.get_stack(): the same rule as for files."""
        with pytest.raises(SpecError) as info:
            validate({}, stack=name)
        assert [i.path for i in info.value.issues] == ["(stack name)"]

    @pytest.mark.parametrize("name", ["dev", "prod-eu", "_x", ".hidden", "a.b_c-1", "x" * 100])
    def test_pulumi_names_pass(self, name: str) -> None:
        spec, _ = validate({}, stack=name)  # raises SpecError for a refused name
        assert spec.stack == name

    @pytest.mark.parametrize("name", ["..", ".", "a b"])
    def test_resolve_refuses_before_looking(self, name: str, tmp_path: Path) -> None:
        (tmp_path / "stacks").mkdir()
        (tmp_path / "stacks" / f"Pulumi.{name}.yaml").write_text("config: {}\n")
        with pytest.raises(StackFileError, match="is not a valid stack name"):
            stackfile.resolve(name, tmp_path)


class TestRedaction:
    def test_url_credentials(self) -> None:
        text = "'https://u:pw@h.example/x', oci://tok@r.example/c and root:pw@10.0.0.1"
        assert redact_urls(text) == (
            "'https://[redacted]@h.example/x', oci://[redacted]@r.example/c and "
            "[redacted]@10.0.0.1"
        )

    def test_plain_urls_and_paths_untouched(self) -> None:
        text = "coco:nodePools[0].hosts[0] at https://h.example/a@b"
        assert redact_urls(text) == text

    def test_scrubber_finds_quoted_and_escaped_secrets(self) -> None:
        scrub = Scrubber(["multi\nline-secret", "S3CRET-1", "S3CRET-12"])
        assert scrub("got 'multi\\nline-secret' and S3CRET-12, S3CRET-1") == (
            "got '[secret]' and [secret], [secret]"
        )

    def test_render_redacts(self) -> None:
        issue = ConfigIssue("coco:x", "bad https://a:b@h", "not oci://c@d")
        assert "a:b" not in issue.render() and "c@d" not in issue.render()


class TestProgramSeesLookalikes:
    def test_read_config_keeps_lookalike_keys(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`Coco:environment` reaches validation (and its refusal) under `pulumi up` too."""
        from pulumi.runtime import config as rc

        env = {"Coco:environment": "production", "kubernetes:context": "k"}
        monkeypatch.setenv("PULUMI_CONFIG", json.dumps(env))
        monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", "[]")
        rc.set_all_config(rc.get_config_env(), rc.get_config_secret_keys_env())
        try:
            config, _ = program.read_config()
        finally:
            rc.set_all_config({}, [])
        assert config == {"Coco:environment": "production"}
        with pytest.raises(SpecError) as info:
            validate(config, stack="s")
        assert [i.path for i in info.value.issues] == ["Coco:environment"]
