"""Recipes: every path is confined to the recipe's folder (links included), and a file that is
not a TOML recipe is a clear error with its line, never a traceback or its content.

The corpus is a table, one case per line: what the recipe says and the key path the error
must start with. Real files and real symbolic links in tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from images import recipe, rootfs
from images.errors import RecipeError

SECRET = "TOP-SECRET-HOST-FILE"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A recipe folder with a payload, beside a host file the recipe must never reach."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "shadow").write_text(SECRET)
    (host / "dir").mkdir()
    (host / "dir" / "key").write_text(SECRET)
    base = tmp_path / "recipes"
    payload = base / "r-payload"
    payload.mkdir(parents=True)
    (payload / "init").write_text("#!/bin/sh\n")
    (payload / "sub").mkdir()
    (payload / "sub" / "tool").write_text("tool\n")
    (payload / "link-in").symlink_to("init")
    (payload / "link-out").symlink_to(host / "shadow")
    (payload / "link-out-relative").symlink_to("../../host/shadow")
    (payload / "dir-out").symlink_to(host / "dir")
    (payload / "dangling").symlink_to(tmp_path / "nowhere")
    (payload / "loop").symlink_to("loop")
    (payload / "fifo-dir").mkdir()
    os.mkfifo(payload / "fifo-dir" / "fifo")
    return base


def _write(folder: Path, sources: list[str], dest: str = "/usr/bin/x") -> Path:
    entries = "".join(
        f'[[payload.files]]\nsource = "{s}"\ndest = "{dest}{i}"\n' for i, s in enumerate(sources)
    )
    path = folder / "r.toml"
    path.write_text(f'name = "r"\n{entries}')
    return path


GOOD = ["r-payload/init", "r-payload/sub/tool"]

# (source as written in the recipe, a word the message holds)
REFUSED_SOURCES = [
    ("../host/shadow", "outside the recipe's folder"),
    ("../../etc/shadow", "not found"),
    ("/etc/shadow", "not a relative path"),
    ("/etc/passwd", "not a relative path"),
    ("r-payload/../../host/shadow", "outside the recipe's folder"),
    ("r-payload/sub/../../../host/shadow", "outside the recipe's folder"),
    ("./../host/shadow", "outside the recipe's folder"),
    ("r-payload/link-out", "through a symbolic link"),
    ("r-payload/link-out-relative", "through a symbolic link"),
    ("r-payload/dir-out/key", "through a symbolic link"),
    ("r-payload/dangling", "not found"),
    ("r-payload/loop", "cannot be resolved"),
    ("r-payload/sub", "not a regular file"),
    ("r-payload/fifo-dir/fifo", "not a regular file"),
    ("r-payload", "not a regular file"),
    (".", "not a regular file"),
    ("r-payload\\\\init", "not a relative path"),
    ("~/.ssh/id_rsa", "not found"),
    ("r-payload/missing", "not found"),
]


class TestSourcesConfined:
    """A payload source is a regular file inside the recipe's folder, whatever the links say."""

    @pytest.mark.parametrize(("source", "word"), REFUSED_SOURCES)
    def test_refused_with_the_key_path(self, folder, source, word):
        path = _write(folder, [*GOOD, source])
        with pytest.raises(RecipeError) as info:
            recipe.load(str(path))
        message = str(info.value)
        assert message.startswith("payload.files[2].source: "), message
        assert word in message
        assert SECRET not in message + info.value.hint

    @pytest.mark.parametrize(
        "source", ["r-payload/init", "./r-payload/init", "r-payload/link-in", "r-payload/sub/tool"]
    )
    def test_inside_accepted(self, folder, source):
        loaded = recipe.load(str(_write(folder, [source])))
        assert loaded.payload[0].source == source
        assert loaded.content_hash()

    def test_a_link_swapped_in_after_loading_is_refused_at_build_time(self, folder, tmp_path):
        loaded = recipe.load(str(_write(folder, ["r-payload/sub/tool"])))
        tool = folder / "r-payload" / "sub" / "tool"
        tool.unlink()
        tool.symlink_to(tmp_path / "host" / "shadow")
        with pytest.raises(RecipeError, match="through a symbolic link"):
            loaded.content_hash()
        root = tmp_path / "root"
        root.mkdir()
        with pytest.raises(RecipeError, match="through a symbolic link"):
            rootfs.install_payload(loaded, root)
        assert not any(p.is_file() for p in root.rglob("*"))

    def test_url_sources_are_not_paths(self, folder):
        path = folder / "r.toml"
        path.write_text(
            'name = "r"\n[[payload.files]]\nsource = "https://example.org/x"\n'
            f'sha256 = "{"a" * 64}"\ndest = "/x"\n'
        )
        assert recipe.load(str(path)).payload[0].is_url

    @pytest.mark.parametrize("dest", ["relative/x", "/usr/../../etc/x", "/..", "/usr/bin/", ""])
    def test_destinations_checked_at_load(self, folder, dest):
        path = folder / "r.toml"
        path.write_text(f'name = "r"\n[[payload.files]]\nsource = "r-payload/init"\n'
                        f'dest = "{dest}"\n')
        with pytest.raises(RecipeError) as info:
            recipe.load(str(path))
        assert str(info.value).startswith("payload.files[0].dest: ")

    def test_shipped_recipes_stay_inside(self):
        for name in ("minimal", "podvm"):
            loaded = recipe.load(name)
            for item in loaded.payload:
                where = f"payload file {item.dest}: source"
                found = recipe.local_source(loaded.directory, item.source, where)
                assert found.is_relative_to(recipe.RECIPES_DIR)


# (file bytes, words the message holds): none of them is a recipe
NOT_RECIPES = [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + SECRET.encode(), ["line 3", "binary file"]),
    (b"\x7fELF\x02\x01\x01\x00" + SECRET.encode(), ["line 1", "binary file"]),
    (b'name = "r"\n# caf\xe9\n' + SECRET.encode(), ["line 2, column 6", "not UTF-8"]),
    (b'name = "r"\n\n\xff\xfe' + SECRET.encode(), ["line 3, column 1", "not UTF-8"]),
    (b'name = "r"\nkey ' + SECRET.encode(), ["not valid TOML", "line 2"]),
    (b"name: r\ndistribution:\n  suite: bookworm\n", ["not valid TOML", "line 1"]),
    (b'{"name": "r"}', ["not valid TOML", "line 1"]),
    (b'name = "r"\nname = "s"\n', ["not valid TOML", "line 2"]),
    (b"[distribution\n", ["not valid TOML", "line 1"]),
    (b"x" * (recipe.MAX_RECIPE_BYTES + 1), ["larger than"]),
]


class TestNotARecipe:
    """Binary, non-UTF-8, non-TOML and oversized files: the line at fault, nothing of the
    content, no traceback (exit 2 from `coco image build`)."""

    @pytest.mark.parametrize(("data", "words"), NOT_RECIPES)
    def test_clear_error(self, tmp_path, data, words):
        path = tmp_path / "r.toml"
        path.write_bytes(data)
        with pytest.raises(RecipeError) as info:
            recipe.load(str(path))
        message = str(info.value)
        for word in words:
            assert word in message
        assert SECRET not in message + info.value.hint
        assert info.value.hint

    def test_cli_exit_2_without_traceback(self, tmp_path, capsys):
        from cli import main as cli_main

        path = tmp_path / "r.toml"
        path.write_bytes(NOT_RECIPES[0][0])
        code = cli_main.main(["image", "build", str(path), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2
        assert "binary file" in err and "Traceback" not in err and SECRET not in err
        assert not (tmp_path / "out").exists()

    def test_a_folder_named_like_a_recipe(self, tmp_path):
        (tmp_path / "r.toml").mkdir()
        with pytest.raises(RecipeError, match="does not exist"):
            recipe.load(str(tmp_path / "r.toml"))
