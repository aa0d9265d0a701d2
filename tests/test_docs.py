"""The docs stay true and stand alone.

- README's Stacks table: one row per stack file, and each row's status is what `coco check`
  (the same in-process validation, no subprocess) says about that stack today.
- Every relative link in README.md and docs/*.md resolves to a file inside the repository (and
  an anchor to a heading of that file); absolute links are https.
- Every Mermaid diagram parses with mermaid's own parser (tools/mermaid, pinned by its
  package-lock.json; `npm ci --prefix tools/mermaid`). Without Node.js or that install the test
  skips with the reason; with COCO_REQUIRE_MERMAID=1 (CI) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from spec import coverage, stackfile, support
from spec.errors import ConfigIssue
from spec.validate import validate
from tests.conftest import ROOT, STACKS

_NOT_DOCS = {".git", ".venv", "node_modules", "build", "dist", "out", "render", "__pycache__"}


def _markdown_files() -> list[Path]:
    """Every Markdown file of the repository (README.md, docs/, the fixture and tool READMEs),
    not the virtualenv's, npm's or build outputs' (os.walk does not follow the .venv symlink)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_DOCS and not d.startswith("."))
        found += [Path(folder) / f for f in files if f.endswith(".md")]
    return sorted(found)


DOCS = _markdown_files()

# --- The Stacks table against `coco check` ---------------------------------------------------

# The status words the README's Stacks table uses, and what each promises (README "Stacks").
WORKS = "works"
NEEDS_VALUES = "needs values"
NO_ATTESTATION = "no attestation"
BLOCKED = "blocked"
STATES = (WORKS, NEEDS_VALUES, NO_ATTESTATION, BLOCKED)

# How `coco check`'s warnings read (spec/rules, spec/support.py). A warning that matches none of
# these is unknown: a stack with one cannot be called working until it is classified here.
_BLOCKING = (
    "will stop",  # spec/rules/__init__.py: the image build during `pulumi up` will stop
    "not provisioned yet",  # spec/support.py: `pulumi up` refuses the stack
    "need the stack to know the cloud cluster",  # spec/support.py
)
_NO_RELEASE = (
    "releases nothing",  # spec/rules/kbs.py: reference values missing or placeholders
    "cannot attest",  # spec/rules/kbs.py: SE without verifier material
)
_NO_ATTESTATION = ("no attestation report",)  # spec/rules/pools.py: legacy SEV
# spec/rules/image.py podvm_attestation: the pod VMs cannot present evidence, so no reference
# value the user adds makes the KBS release anything (takes precedence over "needs values")
_GUESTS_CANNOT_ATTEST = ("cannot produce attestation evidence",)
_BENIGN = (
    "stored in plain text in the stack file",  # still a Pulumi secret
    "nothing is downloaded here",  # `pulumi up` (or `coco fetch`) downloads it
)


@dataclass(frozen=True)
class Checked:
    """What `coco check STACK` reports, minus the printing."""

    warnings: tuple[ConfigIssue, ...]
    attesting_pools: int  # pools whose guests present evidence the KBS verifies


@cache
def check(stack: str) -> Checked:
    """`coco check STACK` in process: the stack file, validation and the support gaps, exactly
    as cli/main.py's cmd_check runs them."""
    sf = stackfile.load(stack, ROOT)
    spec, warnings = validate(
        sf.config, stack=sf.name, secure_paths=sf.secure_paths, base_dir=str(sf.project_dir)
    )
    found = tuple(sorted([*warnings, *support.gaps(spec)]))
    attesting = sum(
        1
        for pool in spec.node_pools
        if coverage.evidence_of(pool) is not None and pool.tee != "sev"
    )
    return Checked(found, attesting)


def _matches(issue: ConfigIssue, phrases: tuple[str, ...]) -> bool:
    return any(phrase in issue.message for phrase in phrases)


def status_of(checked: Checked) -> tuple[str, list[str]]:
    """The status word `coco check`'s findings call for, and the warnings that decide it."""
    blocking = [w.render() for w in checked.warnings if _matches(w, _BLOCKING)]
    if blocking:
        return BLOCKED, blocking
    cannot_attest = [w.render() for w in checked.warnings if _matches(w, _GUESTS_CANNOT_ATTEST)]
    if cannot_attest:
        return NO_ATTESTATION, cannot_attest
    no_release = [w.render() for w in checked.warnings if _matches(w, _NO_RELEASE)]
    if no_release:
        return NEEDS_VALUES, no_release
    if checked.attesting_pools == 0:
        return NO_ATTESTATION, [w.render() for w in checked.warnings]
    unknown = [
        w.render()
        for w in checked.warnings
        if not _matches(w, _BENIGN) and not _matches(w, _NO_ATTESTATION)
    ]
    if unknown:
        return "unclassified (add the warning to tests/test_docs.py)", unknown
    return WORKS, []


_ROW = re.compile(r"^\| `(?P<stack>[^`]+)` \| \*\*(?P<status>[^*]+)\*\* \|")


def stacks_table(readme: str) -> list[tuple[str, str]]:
    """(stack, status) for each row of README's Stacks table, in order."""
    section = readme.split("\n## Stacks\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    parsed = []
    for line in rows:
        m = _ROW.match(line)
        assert m, f"README Stacks row not in the form | `stack` | **status** | ...: {line}"
        parsed.append((m["stack"], m["status"]))
    return parsed


def status_summary(readme: str) -> dict[str, list[str]]:
    """The stacks README's Status block lists after each status word, from `Today:` to the end
    of that sentence: `**word** (why) `a`, `b`; **word** ...`."""
    block = " ".join(
        line[1:].strip()
        for line in readme.split("> **Status.**", 1)[1].split("\n\n", 1)[0].splitlines()
    )
    today = re.split(r"\.(?:\s|$)", block.split("Today:", 1)[1], maxsplit=1)[0]
    found: dict[str, list[str]] = {}
    for part in today.split(";"):
        m = re.fullmatch(r"\s*\*\*([^*]+)\*\*(?:\s*\([^)]*\))?((?:\s*`[^`]+`,?)+)\s*", part)
        assert m, f"README Status: cannot read {part!r}"
        found[m[1]] = sorted(re.findall(r"`([^`]+)`", m[2]))
    return found


def table_by_status(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, status in rows:
        found.setdefault(status, []).append(name)
    return {status: sorted(names) for status, names in found.items()}


def table_mismatches(rows: list[tuple[str, str]]) -> list[str]:
    """Every way the table and the stack files / `coco check` disagree."""
    problems = []
    names = [name for name, _ in rows]
    for name in sorted(set(STACKS) - set(names)):
        problems.append(f"stacks/Pulumi.{name}.yaml has no row in README's Stacks table")
    for name in sorted(set(names) - set(STACKS)):
        problems.append(f"README's Stacks table names {name}, which has no stack file")
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"README's Stacks table has {names.count(name)} rows for {name}")
    for name, status in rows:
        if status not in STATES:
            problems.append(f"{name}: status {status!r} is none of {STATES}")
        if name not in STACKS:
            continue
        expected, because = status_of(check(name))
        if status != expected:
            problems.append(
                f"{name}: README says {status!r}, `coco check {name}` says {expected!r}:\n  "
                + "\n  ".join(because)
            )
    return problems


class TestStacksTable:
    """README's Stacks table says what works today, per stack, and stays true."""

    def test_rows_match_coco_check(self):
        rows = stacks_table((ROOT / "README.md").read_text())
        assert table_mismatches(rows) == []

    def test_a_row_that_overstates_is_caught(self):
        """The comparison is live: calling every stack working fails for the ones whose check
        warns, and a stack file without a row is named."""
        rows = stacks_table((ROOT / "README.md").read_text())
        lying = [(name, WORKS) for name, _ in rows]
        found = table_mismatches(lying)
        overstated = {name for name, _ in rows if status_of(check(name))[0] != WORKS}
        assert overstated, "every sample stack checks clean: this test needs a warning to catch"
        for name in overstated:
            assert any(p.startswith(f"{name}: README says 'works'") for p in found), name
        missing = table_mismatches(rows[1:])
        assert f"stacks/Pulumi.{rows[0][0]}.yaml has no row in README's Stacks table" in missing

    def test_blocking_warning_is_never_working(self):
        stack = "dev"
        clean = check(stack)
        stop = ConfigIssue(
            "coco:image.recipe", "the build during `pulumi up` will stop: x", severity="warning"
        )
        assert status_of(Checked((*clean.warnings, stop), clean.attesting_pools))[0] == BLOCKED
        odd = ConfigIssue("coco:kbs", "something new", severity="warning")
        assert status_of(Checked((*clean.warnings, odd), clean.attesting_pools))[0] != WORKS

    def test_status_summary_matches_the_table(self):
        """README's Status block lists the stacks per status word; it says what the table says
        (which the test above holds to `coco check`)."""
        readme = (ROOT / "README.md").read_text()
        assert status_summary(readme) == table_by_status(stacks_table(readme))

    def test_status_summary_parser_sees_a_moved_stack(self):
        readme = (ROOT / "README.md").read_text()
        summary = status_summary(readme)
        moved = readme.replace("**works** `dev`, ", "**works** ", 1)
        assert status_summary(moved) != summary
        assert "dev" not in status_summary(moved).get(WORKS, [])

    def test_status_words_are_explained(self):
        section = (ROOT / "README.md").read_text().split("\n## Stacks\n", 1)[1]
        for state in STATES:
            assert f"- **{state}**" in section, f"README Stacks: explain the status {state!r}"


# --- Links --------------------------------------------------------------------------------

# [text](target) outside code; images too. Reference-style links are not used in these docs.
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The Markdown without fenced code blocks and inline code spans (links there are text)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def links(path: Path) -> list[str]:
    return [m["target"] for m in _LINK.finditer(prose(path.read_text()))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces -."""
    text = re.sub(r"`|\*\*|\[|\]\([^)]*\)", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose(path.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if not m:
            continue
        base = slug(m[1])
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    where = path.relative_to(root)
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            if not target.startswith("https://") and not target.startswith("mailto:"):
                problems.append(f"{where}: {target}: absolute links are https")
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(root):
            problems.append(f"{where}: {target}: points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: {target}: no such file in the repository")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: {target}: {resolved.name} has no heading #{anchor}")
    return problems


class TestLinks:
    """The docs stand alone: links stay inside the repository or go to https URLs."""

    @pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
    def test_links_resolve(self, path: Path):
        assert link_problems(path) == []

    def test_docs_do_not_point_outside_the_repository_in_prose(self):
        """Bare relative paths (../shared/facts/x.md in a sentence) are links too, for the reader:
        each must name a file or folder inside the repository."""
        offenders = []
        for path in DOCS:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for m in re.finditer(r"(?<![\w/.])(?:\.\./)+[\w./-]*[\w/]", line):
                    target = (path.parent / m[0]).resolve()
                    if not target.is_relative_to(ROOT) or not target.exists():
                        offenders.append(f"{path.relative_to(ROOT)}:{number}: {m[0]}")
        assert offenders == []

    def test_checker_catches_bad_links(self, tmp_path: Path):
        (tmp_path / "docs").mkdir()
        doc = tmp_path / "docs" / "architecture.md"
        shutil.copy(ROOT / "docs" / "architecture.md", doc)
        assert "source-tree" in anchors(doc)
        page = tmp_path / "docs" / "page.md"
        page.write_text(
            "[a](../../shared/facts/x.md) [b](missing.md) [c](architecture.md#no-such-heading)"
            " [d](http://example.com) [e](architecture.md#source-tree) [f](https://example.com)"
            " `[g](nowhere.md)`\n"
        )
        found = link_problems(page, tmp_path)
        assert [p.split(": ")[1] for p in found] == [
            "../../shared/facts/x.md",
            "missing.md",
            "architecture.md#no-such-heading",
            "http://example.com",
        ]


# --- Mermaid --------------------------------------------------------------------------------

MERMAID = ROOT / "tools" / "mermaid"
_REQUIRE = os.environ.get("COCO_REQUIRE_MERMAID") == "1"


def diagrams() -> list[dict[str, str]]:
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```mermaid":
                start = i + 1
                end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
                found.append(
                    {
                        "name": f"{path.relative_to(ROOT)}:{start}",
                        "text": "\n".join(lines[start:end]) + "\n",
                    }
                )
                i = end
            i += 1
    return found


def mermaid_parse(items: list[dict[str, str]]) -> list[dict[str, object]]:
    node = shutil.which("node")
    installed = (MERMAID / "node_modules" / "mermaid" / "package.json").exists()
    if node is None or not installed:
        reason = (
            "needs Node.js" if node is None else "needs `npm ci --prefix tools/mermaid`"
        ) + " to parse the Mermaid diagrams"
        if _REQUIRE:
            pytest.fail(f"COCO_REQUIRE_MERMAID=1: {reason}")
        pytest.skip(reason)
    result = subprocess.run(
        [node, str(MERMAID / "parse.mjs")],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        cwd=MERMAID,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    parsed: list[dict[str, object]] = json.loads(result.stdout)
    return parsed


class TestMermaid:
    """The diagrams GitHub renders from the docs' Mermaid source parse with mermaid itself."""

    def test_architecture_has_the_diagrams(self):
        names = [d["name"] for d in diagrams()]
        assert sum(n.startswith("docs/architecture.md:") for n in names) >= 2

    def test_diagrams_parse(self):
        items = diagrams()
        probe = {"name": "probe", "text": "flowchart TD\n  a --> \n"}
        results = mermaid_parse([*items, probe])
        by_name = {str(r["name"]): r for r in results}
        assert by_name.pop("probe")["ok"] is False, "the parser accepts a broken diagram"
        failed = {n: r.get("error") for n, r in by_name.items() if r["ok"] is not True}
        assert failed == {}
        assert sorted(by_name) == sorted(d["name"] for d in items)


# --- LICENSE and CHANGELOG ------------------------------------------------------------------


class TestLicenseAndChangelog:
    """The license file is the one pyproject.toml names; the changelog keeps its format."""

    def test_license_is_the_apache_license_pyproject_names(self):
        import tomllib

        meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert meta["license"] == "Apache-2.0"
        words = " ".join((ROOT / "LICENSE").read_text().split())
        assert words.startswith("Apache License Version 2.0, January 2004")
        for section in range(1, 10):  # the nine sections of the terms, all of them
            assert f" {section}. " in words
        assert "END OF TERMS AND CONDITIONS" in words

    def test_changelog_follows_keep_a_changelog(self):
        text = (ROOT / "CHANGELOG.md").read_text()
        versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
        assert versions and versions[0] == "Unreleased"
        kinds = set(re.findall(r"^### (.+)$", text, re.M))
        assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
