"""`coco render --out`: where a render may be written, and how (images/files.py).

Every refused target is refused with RenderError (exit 2 and a hint from the CLI), before
anything is written, and leaves whatever was there byte-for-byte as it was; links are never
followed; a re-render replaces the previous output as a whole.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from cli import main as cli_main
from cli import render
from spec.errors import RenderError
from tests.conftest import ROOT


def _snapshot(path: Path) -> dict[str, str]:
    """Every entry under `path` (links as links, never followed) and what it holds."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(path))
            if p.is_symlink():
                found[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                found[rel] = "dir"
    return found


@pytest.fixture
def dev(render_stack) -> render.Render:
    return render_stack("dev")


def _previous(out: Path, dev: render.Render) -> Path:
    render.write(dev, out)
    return out


# Each case builds a target under tmp_path (returns the --out path and the folder whose content
# must not change) and names a word the message must hold.
Setup = Callable[[Path, render.Render], tuple[Path, Path]]


def _file(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out").write_text("a file")
    return tmp / "out", tmp


def _foreign(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")
    return tmp / "out", tmp


def _foreign_manifests(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out" / "manifests").mkdir(parents=True)
    (tmp / "out" / "manifests" / "app.yaml").write_text("mine")
    return tmp / "out", tmp


def _extra_file_in_previous(tmp: Path, dev: render.Render) -> tuple[Path, Path]:
    out = _previous(tmp / "out", dev)
    (out / "README.md").write_text("mine")
    return out, tmp


def _victim(tmp: Path) -> Path:
    victim = tmp / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "secret.txt").write_text("precious")
    return victim


def _symlinked_resources(tmp: Path, dev: render.Render) -> tuple[Path, Path]:
    out = _previous(tmp / "out", dev)
    (out / "resources.json").unlink()
    (out / "resources.json").symlink_to(_victim(tmp) / "secret.txt")
    return out, tmp


def _symlinked_manifests(tmp: Path, dev: render.Render) -> tuple[Path, Path]:
    out = _previous(tmp / "out", dev)
    for p in (out / "manifests").iterdir():
        p.unlink()
    (out / "manifests").rmdir()
    (out / "manifests").symlink_to(_victim(tmp))
    return out, tmp


def _symlinked_marker(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out").mkdir()
    (tmp / "out" / render.MARKER).symlink_to(_victim(tmp) / "secret.txt")
    return tmp / "out", tmp


def _marker_beside_symlinked_manifests(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out").mkdir()
    (tmp / "out" / render.MARKER).write_text("x")
    (tmp / "out" / "manifests").symlink_to(_victim(tmp))
    return tmp / "out", tmp


def _marker_is_a_folder(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out" / render.MARKER).mkdir(parents=True)
    return tmp / "out", tmp


def _symlinked_out(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out").symlink_to(_victim(tmp))
    return tmp / "out", tmp


def _symlinked_previous_out(tmp: Path, dev: render.Render) -> tuple[Path, Path]:
    _previous(tmp / "real", dev)
    (tmp / "out").symlink_to(tmp / "real")
    return tmp / "out", tmp


def _dangling_out(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "out").symlink_to(tmp / "nowhere")
    return tmp / "out", tmp


def _symlinked_parent(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "parent").symlink_to(_victim(tmp))
    return tmp / "parent" / "out", tmp


def _symlinked_parent_dotdot(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "parent").symlink_to(_victim(tmp))
    return tmp / "parent" / ".." / "out", tmp


def _fifo(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    os.mkfifo(tmp / "out")
    return tmp / "out", tmp


def _under_a_file(tmp: Path, _: render.Render) -> tuple[Path, Path]:
    (tmp / "file").write_text("x")
    return tmp / "file" / "out", tmp


CASES: dict[str, tuple[Setup, str]] = {
    "a file": (_file, "not a directory"),
    "a fifo": (_fifo, "not a directory"),
    "below a file": (_under_a_file, "cannot"),
    "a foreign non-empty folder": (_foreign, "not a coco render output"),
    "a foreign manifests/ folder": (_foreign_manifests, "not a coco render output"),
    "a previous render with a file of the user's": (_extra_file_in_previous, "README.md"),
    "symlinked resources.json": (_symlinked_resources, "symbolic link"),
    "symlinked manifests/": (_symlinked_manifests, "symbolic link"),
    "symlinked marker": (_symlinked_marker, "symbolic link"),
    "marker beside a symlinked manifests/": (_marker_beside_symlinked_manifests, "symbolic link"),
    "marker that is a folder": (_marker_is_a_folder, "not a regular file"),
    "symlinked --out": (_symlinked_out, "symbolic link"),
    "symlinked --out to a previous render": (_symlinked_previous_out, "symbolic link"),
    "dangling symlink --out": (_dangling_out, "symbolic link"),
    "symlinked parent": (_symlinked_parent, "symbolic link"),
    "symlinked parent then ..": (_symlinked_parent_dotdot, "symbolic link"),
}


class TestRefusedTargets:
    """Targets that are not a new, empty or previous render folder are refused and untouched."""

    @pytest.mark.parametrize("case", sorted(CASES))
    def test_refused_and_untouched(self, tmp_path, dev, case):
        setup, word = CASES[case]
        out, watched = setup(tmp_path, dev)
        before = _snapshot(watched)
        with pytest.raises(RenderError) as info:
            render.write(dev, out)
        assert word in str(info.value)
        assert info.value.hint
        assert _snapshot(watched) == before
        # the early check (before the slow render) refuses it the same way
        with pytest.raises(RenderError):
            render.check_out(out)

    @pytest.mark.parametrize(
        "where", ["root", "home", "cwd", "cwd parent", "project", "repository"]
    )
    def test_folders_nobody_means(self, tmp_path, dev, monkeypatch, where):
        home = tmp_path / "home"
        work = home / "work"
        work.mkdir(parents=True)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.chdir(work)
        target = {
            "root": Path("/"),
            "home": home,
            "cwd": Path("."),
            "cwd parent": Path(".."),
            "project": ROOT,
            "repository": ROOT,
        }[where]
        protected = {ROOT / "stacks": "the stack's project"} if where == "repository" else None
        with pytest.raises(RenderError) as info:
            render.write(dev, target, protected=protected)
        assert "replaces its output directory" in str(info.value)

    def test_an_empty_cwd_is_refused_too(self, tmp_path, dev, monkeypatch):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(RenderError, match="current directory"):
            render.write(dev, Path("."))
        assert list(tmp_path.iterdir()) == []

    def test_cli_exit_2_with_hint_before_rendering(self, tmp_path, capsys, monkeypatch):
        (tmp_path / "out").symlink_to(_victim(tmp_path))
        monkeypatch.setattr(render, "run", lambda *a, **k: pytest.fail("rendered anyway"))
        code = cli_main.main(["render", "dev", "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2
        assert "error: --out" in err and "symbolic link" in err and "hint:" in err
        assert "unexpected" not in err
        assert (tmp_path / "victim" / "secret.txt").read_text() == "precious"


class TestWriting:
    """Accepted targets: new, empty or a previous render; replaced whole, nothing left over."""

    def test_new_nested_folder(self, tmp_path, dev):
        count, manifests = render.write(dev, tmp_path / "a" / "b" / "out")
        out = tmp_path / "a" / "b" / "out"
        assert count > 0 and manifests == len(list((out / "manifests").iterdir()))
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [render.MARKER, "manifests", "resources.json"]
        )

    def test_empty_folder(self, tmp_path, dev):
        (tmp_path / "out").mkdir()
        render.write(dev, tmp_path / "out")
        assert (tmp_path / "out" / "resources.json").is_file()

    def test_rerender_replaces_whole_and_leaves_no_staging(self, tmp_path, dev):
        out = tmp_path / "out"
        render.write(dev, out)
        first = _snapshot(out)
        (out / "manifests" / "stale.yaml").write_text("old")
        render.write(dev, out)
        assert _snapshot(out) == first
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    def test_modes_follow_the_umask_and_nothing_secret_is_written(self, tmp_path, dev):
        old = os.umask(0o022)
        try:
            render.write(dev, tmp_path / "out")
        finally:
            os.umask(old)
        out = tmp_path / "out"
        assert stat.S_IMODE(out.stat().st_mode) == 0o755
        for p in out.rglob("*"):
            expected = 0o755 if p.is_dir() else 0o644
            assert stat.S_IMODE(p.lstat().st_mode) == expected, p
        assert render.SECRET.encode() in (out / "resources.json").read_bytes()

    def test_failure_keeps_the_previous_output(self, tmp_path, dev, monkeypatch):
        out = tmp_path / "out"
        render.write(dev, out)
        before = _snapshot(out)
        calls = []

        def failing(directory, name, data, **kwargs):
            calls.append(name)
            if len(calls) > 2:
                raise OSError(28, "No space left on device", str(directory / name))
            return original(directory, name, data, **kwargs)

        original = render.files_mod.write_file
        monkeypatch.setattr(render.files_mod, "write_file", failing)
        with pytest.raises(RenderError, match="No space left"):
            render.write(dev, out)
        assert len(calls) == 3
        assert _snapshot(out) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- generated targets --------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from images import files as files_mod  # noqa: E402

_PARTS = ["victim", "real", "prev", "foreign", "link-victim", "link-prev", "file", "dangling",
          "prev-linked", "new", "..", ".", "resources.json", render.MARKER, "manifests"]
_KIND = render.RENDER_OUTPUT


def _tree_for_property(root: Path) -> None:
    (root / "victim").mkdir()
    (root / "victim" / "secret").write_text("precious")
    (root / "real").mkdir()
    (root / "prev").mkdir()
    (root / "prev" / render.MARKER).write_text("x")
    (root / "prev" / "resources.json").write_text("{}")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes").write_text("mine")
    (root / "link-victim").symlink_to(root / "victim")
    (root / "link-prev").symlink_to("prev")
    (root / "file").write_text("file")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "prev-linked").mkdir()
    (root / "prev-linked" / render.MARKER).write_text("x")
    (root / "prev-linked" / "resources.json").symlink_to(root / "victim" / "secret")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.sampled_from(_PARTS), min_size=1, max_size=4), absolute=st.booleans())
def test_generated_targets_never_write_outside(parts, absolute):
    """Whatever path of links, files, '..' and previous outputs --out names: our error or a
    written output, never another exception, never a byte outside the target, no leftovers."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve() / "t"
        root.mkdir()
        _tree_for_property(root)
        before = _snapshot(root)
        out = (root if absolute else Path()).joinpath(*parts)
        saved_cwd, saved_home = os.getcwd(), os.environ.get("HOME")
        os.chdir(root / "real")  # relative paths start in an empty folder
        os.environ["HOME"] = str(root / "victim")
        try:
            with files_mod.replace_dir(out, _KIND, RenderError) as staging:
                files_mod.write_file(staging, "resources.json", b"{}")
            written = True
        except RenderError:
            written = False
        finally:
            os.chdir(saved_cwd)
            if saved_home is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = saved_home
        after = _snapshot(root)
        assert (root / "victim" / "secret").read_text() == "precious"
        assert not any(k.endswith((".new", ".old")) for k in after)
        if not written:
            assert after == before
        else:
            target = os.path.relpath(os.path.realpath(out if absolute else root / "real" / out),
                                     root)
            changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
            # the target's subtree, and the missing parents it was created under
            for k in changed:
                inside = k == target or k.startswith(target + "/")
                new_parent = target.startswith(k + "/") and k not in before and after[k] == "dir"
                assert inside or new_parent, (k, target)


def test_long_folder_names_and_nul_bytes(tmp_path):
    out = tmp_path / ("x" * 250)
    with files_mod.replace_dir(out, _KIND, RenderError) as staging:
        files_mod.write_file(staging, "resources.json", b"{}")
    assert (out / "resources.json").read_bytes() == b"{}"
    for bad in (tmp_path / ("y" * 300), Path("a\0b")):
        with pytest.raises(RenderError):
            render.check_out(bad)


@pytest.mark.parametrize("target", ["/dev/null"])
def test_device_out_is_named_once(target):
    """review1 #7: a device was "is not a directory, not a directory"."""
    with pytest.raises(RenderError) as info:
        render.check_out(Path(target))
    message = str(info.value)
    assert message.count("not a directory") == 1
    assert "device, FIFO or socket" in message
