"""The package layout shows the architecture, and the command line loads only what it needs.

spec/ (the stack's model, catalogue, rules, validation; no Pulumi) -> components/ (the Pulumi
component resources) -> outputs; cli/ drives both; images/ builds guest images on its own.
Module-level imports only: an import inside a function is how a module loads a heavy
dependency late, and cannot form an import-time cycle.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from spec import extras

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spec", "components", "cli", "images")


def _not_ours(directory: Path) -> bool:
    """A virtualenv or package tree inside the checkout (never committed: .gitignore)."""
    return directory.name in ("venv", ".venv", "node_modules") or (
        directory / "pyvenv.cfg"
    ).is_file()


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if any(_not_ours(ROOT.joinpath(*parts[: i + 1])) for i in range(len(parts) - 1)):
                continue  # e.g. components/plugin/venv, which `pulumi package add` creates
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Our modules `name` imports at module level (TYPE_CHECKING blocks excluded)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES]
                if len(subs) < len(node.names):
                    found.add(module)
                found.update(subs)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(node.orelse)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    # importing a parent package is implicit (it runs first), never a cycle
    return {m for m in found if m in MODULES and m != name and not name.startswith(m + ".")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


class TestImportGraph:
    def test_the_graph_is_read(self):
        # the parser sees the imports it must see (else the tests below pass vacuously)
        assert "spec.model" in GRAPH["spec.validate"]
        assert "components.kbs.broker" in GRAPH["components.stack"]
        assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]

    def test_no_cycles(self):
        assert _cycles(GRAPH) == []

    @pytest.mark.parametrize(
        ("package", "forbidden"),
        [("spec", ("components", "cli", "images")), ("images", ("components", "cli"))],
    )
    def test_layers(self, package, forbidden):
        wrong = {
            m: sorted(d for d in deps if d.split(".")[0] in forbidden)
            for m, deps in GRAPH.items()
            if m.split(".")[0] == package
        }
        assert {m: d for m, d in wrong.items() if d} == {}

    def test_components_hold_only_pulumi_components_and_their_helpers(self):
        # the spec, the CLI, render and diff live in packages of their own
        for gone in (
            "spec",
            "rules",
            "cli",
            "render",
            "diff",
            "stackfile",
            "validate",
            "catalogue",
        ):
            assert f"components.{gone}" not in MODULES


_PROBE = """
import json, sys
from cli import main
try:
    code = main.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
code_modules = sorted(n for n, m in sys.modules.items() if getattr(m, "__file__", None))
print(json.dumps({"code": code, "modules": code_modules}),
      file=sys.stderr)
"""


def _loaded(*argv: str) -> tuple[int, set[str]]:
    """The exit code, and the top-level packages the command loaded code from. Namespace
    packages (azure, azure.mgmt, google: no code of their own) do not count: asking importlib
    whether azure.identity is installed loads them."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], cwd=ROOT, capture_output=True, text=True
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], {module.split(".")[0] for module in report["modules"]}


HEAVY = {"pulumi", "pulumi_kubernetes", "pulumi_azure_native", "pulumi_aws", "pulumi_gcp"}


class TestCommandLineLoadsLittle:
    def test_help(self):
        code, loaded = _loaded("--help")
        assert code == 0
        assert loaded.isdisjoint(HEAVY | {"pydantic", "jwt", "yaml", "boto3", "google", "azure"})

    def test_check(self):
        code, loaded = _loaded("check", "dev")
        assert code == 0
        assert "pydantic" in loaded  # the probe sees what the command loads
        assert loaded.isdisjoint(HEAVY | {"jwt", "boto3", "google", "azure"})

    def test_check_of_a_cloud_stack_loads_no_cloud_sdk(self):
        code, loaded = _loaded("check", "azure-snp")
        assert code == 0
        assert loaded.isdisjoint(HEAVY | {"azure", "boto3", "google"})


class TestExtras:
    def test_missing_extra_names_the_pip_command(self, monkeypatch, capsys):
        from cli import main

        real = importlib.util.find_spec

        def find_spec(name: str, *args: object) -> object:
            if name.split(".")[0] in ("pulumi_gcp", "google"):
                return None
            return real(name, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        assert main.main(["check", "gcp-snp"]) == main.EXIT_INVALID
        err = capsys.readouterr().err
        assert "this stack uses gcp" in err
        assert "pulumi_gcp" in err
        assert "hint: pip install 'coco-stack[gcp]'" in err
        # a stack of another cloud is not affected
        assert main.main(["check", "azure-snp"]) == 0

    def test_clouds_of_sample_stacks(self):
        from spec import stackfile
        from spec.validate import validate

        def clouds(stack: str) -> list[str]:
            sf = stackfile.load(stack)
            spec, _ = validate(
                sf.config,
                stack=sf.name,
                secure_paths=sf.secure_paths,
                base_dir=str(sf.project_dir),
            )
            return extras.clouds_of(spec)

        assert clouds("dev") == []
        assert clouds("baremetal-snp") == []
        assert clouds("azure-snp") == ["azure"]
        assert clouds("aws-snp") == ["aws"]
        assert clouds("gcp-tdx") == ["gcp"]

    def test_pyproject_extras_install_the_modules_spec_extras_names(self):
        """Each module spec.extras checks for is a file of a distribution in that cloud's
        extra, and `all` holds every cloud."""
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        optional = project["optional-dependencies"]
        assert optional["all"] == [f"coco-stack[{','.join(sorted(extras.EXTRA_MODULES))}]"]
        base = " ".join(project["dependencies"])
        for cloud, modules in extras.EXTRA_MODULES.items():
            names = [req.split("=")[0].split(">")[0].strip() for req in optional[cloud]]
            files = {str(f) for name in names for f in (metadata.files(name) or [])}
            for module in modules:
                path = module.replace(".", "/")
                assert f"{path}/__init__.py" in files or f"{path}.py" in files, (cloud, module)
                assert module.split(".")[0].replace("_", "-") not in base
