"""`coco render STACK --diff REF`: the stack rendered at a git commit (with that commit's own
program) and in the working tree, compared as `coco diff` Markdown.

Runs against a temporary git repository holding a copy of this project: the base commit carries
a different chart version in spec/versions.py, so a change that only the base's own code
can produce shows whether the base really ran from the commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

GIT = [
    "git",
    "-c",
    "user.name=test",
    "-c",
    "user.email=test@example.org",
    "-c",
    "commit.gpgsign=false",
]
CHART = (
    'name="confidential-containers",\n    repo="oci://ghcr.io/confidential-containers/charts",\n'
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Commit 1: the project with the CoCo chart at 0.21.0; commit 2: as it is here (0.22.0);
    working tree: the dev stack's KBS exposed as a NodePort (uncommitted)."""
    repo = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "out")
    for folder in ("spec", "components", "images", "cli", "stacks"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=ignore)
    shutil.copy(ROOT / "Pulumi.yaml", repo / "Pulumi.yaml")
    # as in the real checkout: the renders' __pycache__ (bytecode on) is not a repository change
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    versions = repo / "spec" / "versions.py"
    current = versions.read_text()
    assert current.count(CHART + '    version="0.22.0"') == 1
    versions.write_text(
        current.replace(CHART + '    version="0.22.0"', CHART + '    version="0.21.0"')
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base: chart 0.21.0")
    versions.write_text(current)
    _git(repo, "commit", "-q", "-am", "chart 0.22.0")
    stack = repo / "stacks" / "Pulumi.dev.yaml"
    text = stack.read_text()
    assert text.count("expose: clusterip") == 1
    stack.write_text(text.replace("expose: clusterip", "expose: nodeport"))
    return repo


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`coco render ARGS` as a user runs it in the checkout: the head side imports the
    checkout's own packages (not this test process's copy)."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "render", *args],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        check=False,
    )


class TestRenderDiff:
    """Base at the ref with its own code, head in the working tree, Markdown on stdout."""

    def test_base_runs_its_own_code(self, repo: Path, tmp_path: Path) -> None:
        status = _git(repo, "status", "--porcelain")
        head = tmp_path / "head"
        done = _run(repo, "dev", "--diff", "HEAD~1", "--out", str(head), "--exit-code")
        assert done.returncode == 1, done.stderr
        # only the base commit's spec/versions.py has 0.21.0
        assert '`version`: `"0.21.0"` -> `"0.22.0"`' in done.stdout
        # the uncommitted stack change is in the head
        assert '`spec.type`: `"ClusterIP"` -> `"NodePort"`' in done.stdout
        assert "hello from the dev KBS" not in done.stdout  # the value stays redacted
        assert (head / "resources.json").is_file()  # --out keeps the head render
        # nothing in the repository changed: no worktree, no index or file change
        assert _git(repo, "status", "--porcelain") == status
        assert len(_git(repo, "worktree", "list").splitlines()) == 1

    def test_unchanged_stack(self, repo: Path) -> None:
        done = _run(repo, "mixed", "--diff", "HEAD", "--exit-code")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "No changes." in done.stdout
        assert "NOT `pulumi preview`" in done.stderr  # the notice goes to stderr

    def test_json(self, repo: Path) -> None:
        """`-o json`: the `coco diff` document (cli/schemas/diff.schema.json) on stdout."""
        import json

        import jsonschema

        from cli import output

        done = _run(repo, "dev", "--diff", "HEAD~1", "-o", "json", "--exit-code")
        assert done.returncode == 1, done.stderr
        document = json.loads(done.stdout)
        jsonschema.validate(document, output.schema("diff"))
        assert document["empty"] is False and document["command"] == "diff"
        changed = {(c["type"], c["name"]) for c in document["resources"]["changed"]}
        assert any(t == "kubernetes:core/v1:Service" for t, _ in changed)

    def test_unknown_ref(self, repo: Path) -> None:
        done = _run(repo, "dev", "--diff", "no-such-ref")
        assert done.returncode == 2
        assert "error: 'no-such-ref' is not a commit" in done.stderr
        assert "hint: name a branch, tag or commit" in done.stderr

    def test_stack_new_in_working_tree(self, repo: Path) -> None:
        new = repo / "stacks" / "Pulumi.brandnew.yaml"
        shutil.copy(repo / "stacks" / "Pulumi.dev.yaml", new)
        try:
            done = _run(repo, "brandnew", "--diff", "HEAD")
        finally:
            new.unlink()
        assert done.returncode == 2
        assert "stack 'brandnew' does not exist at HEAD" in done.stderr
        assert "coco render STACK --out DIR" in done.stderr

    def test_without_out_or_diff_a_summary_only(self, repo: Path) -> None:
        """`coco render STACK` alone renders and writes nothing (issue 20: it used to need
        --out)."""
        before = sorted(p for p in repo.rglob("*") if "__pycache__" not in p.parts)
        done = _run(repo, "dev")
        assert done.returncode == 0, done.stderr
        assert "rendered stack dev:" in done.stdout and "nothing written" in done.stdout
        assert sorted(p for p in repo.rglob("*") if "__pycache__" not in p.parts) == before
