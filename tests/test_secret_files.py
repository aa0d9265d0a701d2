"""Files that hold secrets are 0600 from their creation, and a link in their place is never
followed (the local test cluster's keys and kubeconfigs, images.files.write_file(secret=True))."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from images import files
from tools import cluster


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the worst case: nothing masked
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


class TestSecretModes:
    def test_cluster_keys_created_0600(self, tmp_path, open_umask, monkeypatch):
        # created with the mode, not narrowed afterwards: a chmod after the write does nothing
        monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)
        monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
        path = tmp_path / "sa.key"
        cluster._write_private(path, b"-----BEGIN PRIVATE KEY-----\n")
        assert _mode(path) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY")

    def test_cluster_existing_file_narrowed_before_writing(self, tmp_path, open_umask):
        path = tmp_path / "admin.kubeconfig"
        path.write_text("old")
        path.chmod(0o644)
        cluster._write_private(path, b"new")
        assert _mode(path) == 0o600 and path.read_bytes() == b"new"

    def test_cluster_link_not_followed(self, tmp_path):
        victim = tmp_path / "victim"
        victim.write_text("precious")
        (tmp_path / "ca.key").symlink_to(victim)
        with pytest.raises(OSError):
            cluster._write_private(tmp_path / "ca.key", b"key")
        assert victim.read_text() == "precious"

    @pytest.mark.parametrize(("secret", "mode"), [(True, 0o600), (False, 0o644)])
    def test_write_file(self, tmp_path, open_umask, secret, mode):
        path = files.write_file(tmp_path, "f", b"x", secret=secret)
        assert _mode(path) == mode

    def test_write_file_never_follows_or_replaces(self, tmp_path):
        (tmp_path / "victim").write_text("precious")
        (tmp_path / "f").symlink_to(tmp_path / "victim")
        with pytest.raises(FileExistsError):
            files.write_file(tmp_path, "f", b"x", secret=True)
        assert (tmp_path / "victim").read_text() == "precious"
