"""Reading stack files and Pulumi config the way the CLI and the language host do."""

from __future__ import annotations

import json
import os

import pytest

from cli import render
from components import program
from spec import files, stackfile
from spec.errors import SpecError, StackFileError
from spec.validate import validate


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


class TestNotRegularFiles:
    """A stack or policy file that is a directory, device or FIFO is refused as what it is,
    never as "does not exist", and never read (a FIFO blocks, /dev/zero is endless)."""

    @pytest.fixture
    def fifo(self, tmp_path):
        path = tmp_path / "Pulumi.fifo.yaml"
        os.mkfifo(path)
        return path

    def _refusal(self, path) -> str:
        with pytest.raises(StackFileError) as info:
            stackfile.load(str(path))
        return str(info.value)

    def test_directory(self, tmp_path):
        folder = tmp_path / "Pulumi.dir.yaml"
        folder.mkdir()
        assert self._refusal(folder).endswith("is a directory")
        assert self._refusal(str(tmp_path) + "/").endswith("is a directory")

    def test_character_devices(self, tmp_path):
        assert "/dev/null is not a regular file (a character device)" in self._refusal("/dev/null")
        link = tmp_path / "Pulumi.zero.yaml"
        link.symlink_to("/dev/zero")
        assert self._refusal(link).endswith("is not a regular file (a character device)")

    def test_fifo_is_not_opened(self, fifo):
        assert self._refusal(fifo).endswith("is not a regular file (a named pipe)")

    def test_fifo_in_stacks_folder(self, tmp_path):
        (tmp_path / "Pulumi.yaml").write_text("name: coco-stack\n")
        (tmp_path / "stacks").mkdir()
        os.mkfifo(tmp_path / "stacks" / "Pulumi.p.yaml")
        with pytest.raises(StackFileError) as info:
            stackfile.load("p", tmp_path)
        assert "is not a regular file (a named pipe)" in str(info.value)

    def test_reader_refuses_a_fifo_swapped_in(self, fifo):
        with pytest.raises(files.NotRegularFile):
            files.read_bytes(fifo, 10)

    def test_missing_file_still_says_so(self, tmp_path):
        assert self._refusal(tmp_path / "Pulumi.none.yaml").endswith("does not exist")

    @pytest.mark.parametrize("kind", ["dir", "fifo", "dev"])
    def test_policy_file_not_regular(self, tmp_path, kind):
        policy = tmp_path / "p.rego"
        if kind == "dir":
            policy.mkdir()
        elif kind == "fifo":
            os.mkfifo(policy)
        else:
            policy.symlink_to("/dev/zero")
        path = _write(tmp_path, "config:\n  coco:kbs: {resourcePolicy: p.rego}\n")
        sf = stackfile.load(str(path))
        with pytest.raises(SpecError) as info:
            validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                     base_dir=str(sf.project_dir))
        (issue,) = [i for i in info.value.issues if i.path == "coco:kbs.resourcePolicy"]
        want = {"dir": "is a directory", "fifo": "(a named pipe)", "dev": "(a character device)"}
        assert want[kind] in issue.message, issue.message


class TestSecureValues:
    """`secure:` holds Pulumi ciphertext: v1:<nonce>:<ciphertext> (passphrase and cloud KMS
    providers) or plain base64 (the Pulumi Cloud provider); anything else is refused."""

    @pytest.mark.parametrize("text", [
        "v1:AAAA", "v1:uYQbXdtz0+H1X2Vp:Pn6WcM1kN8oVnRrS2E5bdhJ9gqKQ==",
        "AAABAIkGJjCn8u1E9cGLJfYPxqd1lL+kWz5UuV5K3nBa3Cq9",
    ])
    def test_ciphertext_shapes_pass(self, text):
        assert stackfile.is_ciphertext(text)

    @pytest.mark.parametrize("text", ["S3CRET-123", "hunter2", "v1:", "v1: x", "QUJD",
                                      "c2VjcmV0IHdpdGggc3BhY2U=x", ""])
    def test_plain_values_refused(self, text):
        assert not stackfile.is_ciphertext(text)
