"""Reading stack files and Pulumi config the way the CLI and the language host do."""

from __future__ import annotations

import json

import pytest

from cli import render
from components import program
from spec import stackfile
from spec.errors import SpecError


def _write(tmp_path, text, name="Pulumi.s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


class TestStackFiles:
    """Stack files are read strictly and relative paths resolve next to them."""

    def test_duplicate_keys_refused(self, tmp_path):
        path = _write(tmp_path, "config:\n  coco:environment: production\n"
                                "  coco:environment: dev\n")
        with pytest.raises(SpecError) as info:
            stackfile.load(str(path))
        assert [i.path for i in info.value.issues] == ["coco:environment"]
        assert "duplicate key 'coco:environment' at line 3" in info.value.issues[0].message

    def test_null_section_renders(self, tmp_path):
        path = _write(tmp_path, "config:\n  coco:image:\n  coco:nodePools:\n"
                                "    - {name: dev, tee: none, nodeSelector: {a: b}}\n")
        sf = stackfile.load(str(path))
        result = render.run(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                            project_dir=sf.project_dir)
        assert result.outputs["runtimeClasses"] == {"dev": "kata-qemu-coco-dev"}

    def test_relative_policy_next_to_a_lone_stack_file(self, tmp_path):
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "release.rego").write_text("package policy\n")
        path = _write(tmp_path, "config:\n  coco:kbs:\n    resourcePolicy: policies/release.rego\n")
        sf = stackfile.load(str(path))
        assert sf.project_dir == tmp_path.resolve()


class TestLanguageHostConfig:
    """program.read_config sees what the Python language host passes (PULUMI_CONFIG and
    PULUMI_CONFIG_SECRET_KEYS, loaded by set_all_config) and which keys are secret."""

    def test_read_config(self, monkeypatch):
        from pulumi.runtime import config as rc

        env = {
            "coco:environment": "staging",
            "coco:cluster": json.dumps({"provider": "existing", "kubeconfig": "k"}),
            "kubernetes:context": "ignored",
        }
        monkeypatch.setenv("PULUMI_CONFIG", json.dumps(env))
        monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["coco:cluster"]))
        rc.set_all_config(rc.get_config_env(), rc.get_config_secret_keys_env())
        try:
            config, secure = program.read_config()
        finally:
            rc.set_all_config({}, [])
        assert config == {"coco:environment": "staging",
                          "coco:cluster": {"provider": "existing", "kubeconfig": "k"}}
        assert "coco:cluster.kubeconfig" in secure
        assert not any(p.startswith("coco:environment") for p in secure)
