"""`coco image build --out DIR` and build/images/<stack>: where an image may be written.

The same rules as `coco render --out` (images/files.py): a link, a file, a foreign folder or a
folder nobody means is refused (InputError: exit 2 and a hint) before anything is built; the
build runs in a fresh folder beside DIR that replaces it when the build succeeded. No root and
no Debian tools: the build itself is replaced by a stand-in that writes the output files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from images import build, recipe
from images.errors import InputError

SECRET = "precious"


@pytest.fixture
def fake_build(monkeypatch):
    """build._build writes what a real build writes into the folder it is given."""
    seen: list[Path] = []

    def stand_in(spec, out, seed, *, quiet):
        seen.append(out)
        for name in ("disk.raw", "uki.efi"):
            (out / name).write_bytes(b"new " + name.encode())
        (out / "measurements.json").write_text(json.dumps({"new": True}))
        return build.BuildResult(out, {"new": True}, {}, {})

    monkeypatch.setattr(build, "_build", stand_in)
    return seen


def _previous(out: Path) -> Path:
    out.mkdir(parents=True)
    (out / "measurements.json").write_text("{}")
    (out / "disk.raw").write_bytes(b"old")
    return out


def _victim(tmp: Path) -> Path:
    victim = tmp / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "disk.raw").write_text(SECRET)
    return victim


def _tree(path: Path) -> dict[str, str]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            found[str(p.relative_to(path))] = (
                "link:" + os.readlink(p) if p.is_symlink()
                else p.read_text(errors="replace") if p.is_file() else "dir"
            )
    return found


def _symlinked_out(tmp: Path) -> Path:
    (tmp / "out").symlink_to(_victim(tmp))
    return tmp / "out"


def _symlinked_disk(tmp: Path) -> Path:
    out = _previous(tmp / "out")
    (out / "disk.raw").unlink()
    (out / "disk.raw").symlink_to(_victim(tmp) / "disk.raw")
    return out


def _symlinked_work(tmp: Path) -> Path:
    out = _previous(tmp / "out")
    (out / ".work").symlink_to(_victim(tmp))
    return out


def _symlinked_parent(tmp: Path) -> Path:
    (tmp / "build").symlink_to(_victim(tmp))
    return tmp / "build" / "images" / "dev"


def _file(tmp: Path) -> Path:
    (tmp / "out").write_text("x")
    return tmp / "out"


def _foreign(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")
    return tmp / "out"


def _previous_with_a_user_file(tmp: Path) -> Path:
    out = _previous(tmp / "out")
    (out / "notes.txt").write_text("mine")
    return out


CASES = {
    "symlinked --out": (_symlinked_out, "symbolic link"),
    "symlinked disk.raw in a previous build": (_symlinked_disk, "symbolic link"),
    "symlinked .work in a previous build": (_symlinked_work, "symbolic link"),
    "symlinked parent": (_symlinked_parent, "symbolic link"),
    "a file": (_file, "not a directory"),
    "a foreign folder": (_foreign, "not a coco image build output"),
    "a previous build with a user's file": (_previous_with_a_user_file, "notes.txt"),
}


class TestImageOut:
    @pytest.mark.parametrize("case", sorted(CASES))
    def test_refused_before_building_and_untouched(self, tmp_path, fake_build, case):
        setup, word = CASES[case]
        out = setup(tmp_path)
        before = _tree(tmp_path)
        with pytest.raises(InputError) as info:
            build.build_image(recipe.load("minimal"), out, quiet=True)
        assert word in str(info.value) and info.value.hint
        assert fake_build == []
        assert _tree(tmp_path) == before
        with pytest.raises(InputError):
            build.check_out(out)

    @pytest.mark.parametrize("where", ["root", "home", "cwd"])
    def test_folders_nobody_means(self, tmp_path, fake_build, monkeypatch, where):
        monkeypatch.setenv("HOME", str(tmp_path))
        (tmp_path / "work").mkdir()
        monkeypatch.chdir(tmp_path / "work")
        out = {"root": Path("/"), "home": tmp_path, "cwd": Path(".")}[where]
        with pytest.raises(InputError):
            build.build_image(recipe.load("minimal"), out, quiet=True)
        assert fake_build == []

    def test_cli_exit_2_before_reading_the_recipe(self, tmp_path, capsys, fake_build):
        from cli import main as cli_main

        out = _symlinked_out(tmp_path)
        code = cli_main.main(["image", "build", "no-such-recipe", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and "symbolic link" in err and "hint:" in err
        assert (tmp_path / "victim" / "disk.raw").read_text() == SECRET

    def test_previous_build_replaced_whole(self, tmp_path, fake_build):
        out = _previous(tmp_path / "out")
        (out / "disk.qcow2").write_bytes(b"stale format")
        result = build.build_image(recipe.load("minimal"), out, quiet=True)
        assert result.out == out
        assert fake_build[0] != out and fake_build[0].parent == tmp_path
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [".coco-image", "disk.raw", "measurements.json", "uki.efi"]
        )
        assert (out / "disk.raw").read_bytes() == b"new disk.raw"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
        # and the new output is recognised as ours next time
        build.build_image(recipe.load("minimal"), out, quiet=True)

    def test_failed_build_keeps_the_previous_one(self, tmp_path, monkeypatch):
        from images.errors import CommandFailed

        out = _previous(tmp_path / "out")

        def failing(spec, staging, seed, *, quiet):
            (staging / "disk.raw").write_bytes(b"half")
            raise CommandFailed(["mkfs.erofs"], 1)

        monkeypatch.setattr(build, "_build", failing)
        with pytest.raises(CommandFailed):
            build.build_image(recipe.load("minimal"), out, quiet=True)
        assert (out / "disk.raw").read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


class TestStackFolder:
    """build/images/<stack> never leaves build/images/, whatever the stack name holds."""

    @pytest.mark.parametrize(
        "stack", ["..", ".", "", "../x", "a/b", "/etc", "a\\b", "x\n", " x", "x\0", "../../.."]
    )
    def test_refused(self, tmp_path, stack):
        with pytest.raises(InputError) as info:
            build.stack_out_dir(tmp_path, stack)
        assert info.value.hint

    @pytest.mark.parametrize("stack", ["dev", "prod.eu-1", "a..b", "_x"])
    def test_inside(self, tmp_path, stack):
        out = build.stack_out_dir(tmp_path, stack)
        assert out == tmp_path / "build" / "images" / stack
        assert out.resolve().is_relative_to((tmp_path / "build" / "images").resolve())
