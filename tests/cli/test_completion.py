"""`coco completion bash|zsh|fish`: scripts from argcomplete, which complete by asking `coco`
itself. Tested as a shell uses them: the script parses, and the completion protocol it speaks
(_ARGCOMPLETE=1, COMP_LINE, COMP_POINT) answers with the parser's commands and stack names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main

ROOT = Path(__file__).resolve().parents[2]
SHELLS = ("bash", "zsh", "fish")


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main.main(["completion", shell]) == 0
    return capsys.readouterr().out


def complete(line: str, tmp_path: Path, shell: str = "bash") -> list[str]:
    """What the shell gets for `line` (cursor at its end), in a fresh interpreter as the
    generated script runs it."""
    answer = tmp_path / "answer"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_SHELL": shell,
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
        "_ARGCOMPLETE_IFS": "\n",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli.main"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    words = answer.read_text().splitlines()
    # fish gets "word<TAB>description", zsh "word:description" (colons in words escaped)
    return [re.split(r"\t|(?<!\\):", w, maxsplit=1)[0].strip() for w in words]


class TestScripts:
    @pytest.mark.parametrize("shell", SHELLS)
    def test_generated(self, shell: str, capsys) -> None:
        text = script(shell, capsys)
        assert len(text.splitlines()) > 10
        assert "coco" in text and "_ARGCOMPLETE" in text

    def test_bash_script_parses(self, capsys, tmp_path: Path) -> None:
        path = tmp_path / "coco.bash"
        path.write_text(script("bash", capsys))
        done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    @pytest.mark.parametrize("shell", ["zsh", "fish"])
    def test_script_parses_where_the_shell_is_installed(self, shell, capsys, tmp_path) -> None:
        if shutil.which(shell) is None:
            pytest.skip(f"{shell} is not installed here")
        path = tmp_path / f"coco.{shell}"
        path.write_text(script(shell, capsys))
        done = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


class TestAnswers:
    """The completions come from the parser: every subcommand, options, stack names."""

    @pytest.mark.parametrize("shell", SHELLS)
    def test_subcommands(self, shell: str, tmp_path: Path) -> None:
        words = complete("coco ", tmp_path, shell)
        for command in ("check", "render", "diff", "kbs", "initdata", "completion", "image"):
            assert command in words, words

    def test_nested_and_options(self, tmp_path: Path) -> None:
        assert "get-reference-value" in complete("coco kbs ", tmp_path)
        assert "--output" in complete("coco check dev --o", tmp_path)

    def test_stack_names(self, tmp_path: Path) -> None:
        words = complete("coco check d", tmp_path)
        assert "dev" in words
        assert "mixed" in complete("coco render -s m", tmp_path)


def test_help_does_not_load_the_completion_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from cli import main\n"
         "try: main.main(['--help'])\n"
         "except SystemExit: pass\n"
         "print('argcomplete' in sys.modules, file=sys.stderr)"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.stderr.strip().splitlines()[-1] == "False"
