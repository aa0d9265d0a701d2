"""Project-wide invariants: linters, one place for versions, docs in sync, light imports."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cli import docs
from spec import versions
from tests.conftest import ROOT


class TestLinters:
    """ruff and mypy --strict are part of the suite (mkosi tests/test_linters.py habit)."""

    def test_ruff(self):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                "check",
                "spec",
                "components",
                "images",
                "cli",
                "tools",
                "policy",
                "tests",
                "benchmarks",
                "__main__.py",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_mypy(self):
        result = subprocess.run(
            [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_mypy_policy_pack(self):
        """The policy pack runs in its own venv with a flat import of coco_policies."""
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "policy"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestVersionsPinnedOnce:
    """Upstream versions live in spec/versions.py only, pinned exactly."""

    def test_exact_pins(self):
        for chart in (versions.COCO_CHART, versions.KATA_DEPLOY_CHART, versions.PEERPODS_CHART):
            assert re.fullmatch(r"\d+\.\d+\.\d+", chart.version), chart
            assert chart.reference.startswith("oci://")
        for image in (
            versions.KBS_IMAGE,
            versions.KATA_DEPLOY_IMAGE,
            versions.CLOUD_API_ADAPTOR_IMAGE,
        ):
            assert image.tag and image.tag != "latest"
        assert versions.KBS_IMAGE.reference.endswith(f":built-in-as-{versions.TRUSTEE_VERSION}")

    def test_no_version_literals_elsewhere(self):
        pattern = re.compile(r"""["']v?\d+\.\d+\.\d+["']""")
        offenders = []
        for path in sorted((ROOT / "components").glob("*.py")):
            if path.name == "versions.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.name}:{number}: {line.strip()}")
        assert offenders == []


class TestReadme:
    """The README's generated sections match the spec and the catalogue."""

    def test_generated_sections_current(self):
        text = (ROOT / "README.md").read_text()
        assert docs.updated_readme(text) == text, "run: python -m cli.docs --write"

    def test_every_setting_documented(self):
        text = (ROOT / "README.md").read_text()
        for key in (
            "coco:nodePools[].instanceType",
            "coco:kbs.resources[].value",
            "coco:cluster.kubeconfig",
            "coco:kbs.insecureHttp",
        ):
            assert f"`{key}`" in text

    def test_readme_test_command_is_what_ci_runs(self):
        readme = (ROOT / "README.md").read_text()
        ci = (ROOT / ".ci" / "run").read_text()
        command = "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/pytest"
        assert command in readme
        for step in (
            "python3 -m venv .venv",
            "pip install --quiet -e '.[dev]'",
            ".venv/bin/pytest",
        ):
            assert step in ci


class TestImports:
    """`coco check` and the image builder do not import Pulumi (fast, usable without it)."""

    @pytest.mark.parametrize(
        "module",
        [
            "spec.validate",
            "cli.main",
            "images",
            "spec.stackfile",
            "cli.docs",
        ],
    )
    def test_no_pulumi(self, module):
        code = f"import sys, {module}; print(any(m.split('.')[0] == 'pulumi' for m in sys.modules))"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == "False"


class TestBenchmarkInputs:
    """The render benchmark's generated stacks stay valid as the spec grows rules."""

    def test_generated_stack_is_valid(self):
        sys.path.insert(0, str(ROOT / "benchmarks"))
        try:
            from render_bench import generated_stack
        finally:
            sys.path.remove(str(ROOT / "benchmarks"))
        from spec.validate import validate

        spec, _ = validate(generated_stack(6)["config"], stack="bench")
        assert len(spec.node_pools) == 6
