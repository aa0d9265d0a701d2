"""The program under `pulumi up` enforces the per-value secret rule of `coco check` (issue 18).

Pulumi marks a whole top-level key secret when any value below it is, so from the language
host alone a plain-text SSH key next to a secret one looks secret. The program reads the stack
file (the project's stackConfigDir, as under `pulumi up`) with the same loader and refuses it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.render import record
from components import program
from spec import stackfile

_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----S3CRET-plain-----END OPENSSH PRIVATE KEY-----"


def _project(tmp_path: Path, second_key: str) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: coco\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.t.yaml").write_text(
        "config:\n"
        "  coco:environment: dev\n"
        "  coco:cluster: {provider: existing}\n"
        "  coco:kbs: {enabled: false}\n"
        "  coco:nodePools:\n"
        "    - name: metal\n"
        "      tee: none\n"
        "      provider: baremetal\n"
        "      hosts:\n"
        "        - address: 10.0.0.1\n"
        "          sshKey:\n"
        "            secure: v1:AAAA\n"
        "        - address: 10.0.0.2\n"
        f"          sshKey: {second_key}\n"
    )
    return tmp_path


def _run(base: Path) -> None:
    sf = stackfile.load(str(base / "stacks" / "Pulumi.t.yaml"))
    record(
        lambda: program.main(base),
        stack="t",
        config=stackfile.pulumi_config(sf.config),
        secret_keys=stackfile.secret_keys(sf.secure_paths),  # coco:nodePools as a whole
    )


class TestProgramPerValueSecrets:
    def test_plain_key_next_to_a_secret_one_is_refused(self, tmp_path: Path) -> None:
        base = _project(tmp_path, f'"{_KEY}"')
        with pytest.raises(Exception) as info:
            _run(base)
        text = str(info.value)
        assert "coco:nodePools[0].hosts[1].sshKey" in text
        assert "plain text" in text
        assert "S3CRET" not in text

    def test_whole_key_rule_alone_would_accept_it(self, tmp_path: Path) -> None:
        """The guard above is the stack file's doing: without it (no stack file where Pulumi
        keeps them) the language host's whole-key secret lets the plain key through."""
        base = _project(tmp_path, f'"{_KEY}"')
        sf = stackfile.load(str(base / "stacks" / "Pulumi.t.yaml"))
        assert program.stack_file_secure_paths(base, "t", {
            k: v for k, v in sf.config.items()}) == sf.secure_paths
        assert "coco:nodePools[0].hosts[1].sshKey" not in sf.secure_paths
        (base / "stacks" / "Pulumi.t.yaml").rename(base / "elsewhere.yaml")
        assert program.stack_file_secure_paths(base, "t", dict(sf.config)) is None
