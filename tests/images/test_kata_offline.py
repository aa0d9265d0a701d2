"""`coco check` and `coco render` never download the kata release: they read the image cache
and otherwise say what `pulumi up` (or `coco fetch`) will fetch; `coco fetch` downloads it."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from cli import main as cli
from cli import render
from images import kata as kata_measure
from images import release
from spec import versions
from spec.model import KataGuest
from spec.versions import ReleaseArtifact
from tests.conftest import ROOT, one
from tests.images.test_kata_measure import CMDLINE, _release_tarball, fake_amdsev_firmware
from tests.spec.reference_values import complete


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt to open a connection fails (and is recorded)."""
    tried: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        tried.append(args)
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tried


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ReleaseArtifact:
    """A small kata-static stand-in pinned like the real one, and an empty image cache."""
    monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
    firmware = fake_amdsev_firmware(tmp_path / "AMDSEV.fd").read_bytes()
    tarball = _release_tarball(tmp_path / "kata-static.tar.zst", firmware, b"kernel" * 1000)
    data = tarball.read_bytes()
    artifact = ReleaseArtifact("kata-static", "4.0.0", "https://kata.invalid/kata-static.tar.zst",
                               hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setattr(versions, "KATA_STATIC", artifact)
    return artifact


def _stack_file(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: coco-stack\nruntime: python\n")
    path = tmp_path / "Pulumi.kata.yaml"
    values = "\n".join(f"      {n}: {json.dumps(v)}" for n, v in complete("snp").items()
                       if n != "snp_launch_measurement")
    path.write_text(f"""config:
  coco:environment: staging
  coco:cluster:
    provider: existing
  coco:nodePools:
    - name: snp
      tee: snp
      mode: bare-metal
      nodeSelector:
        coco-stack.io/tee: snp
  coco:kbs:
    kataGuest:
      cmdline: "{CMDLINE}"
    referenceValues:
{values}
""")
    return path


class TestCheckIsOffline:
    def test_check_runs_without_network_and_says_what_up_fetches(
        self, pinned, no_network, tmp_path, capsys
    ):
        code = cli.main(["check", str(_stack_file(tmp_path))])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert no_network == []  # nothing even tried
        assert "warning: coco:kbs.kataGuest: the kata guest is not measured yet" in err
        assert pinned.sha256 in err and pinned.url in err
        assert "`pulumi up`, or `coco fetch STACK`" in err
        # the launch measurement counts as supplied: kataGuest gives it at `pulumi up`
        assert "reference values for snp (snp evidence): complete" in out

    def test_cached_release_is_checked_offline(self, pinned, no_network, tmp_path):
        cached = release.cached_path(pinned)
        cached.parent.mkdir(parents=True)
        cached.write_bytes((tmp_path / "kata-static.tar.zst").read_bytes())
        guest = KataGuest(cmdline=CMDLINE, vcpus=[1])
        assert kata_measure.inspect(guest, tmp_path) == ([], None)
        measured = kata_measure.measure(guest, tmp_path, offline=True)
        assert measured.release == {"url": pinned.url, "sha256": pinned.sha256}
        assert no_network == []

    def test_offline_measure_refuses_to_download(self, pinned, no_network, tmp_path):
        with pytest.raises(release.NotFetched) as info:
            kata_measure.measure(KataGuest(cmdline=CMDLINE), tmp_path, offline=True)
        assert "is not in the image cache" in str(info.value)
        assert no_network == []


class TestRenderIsOffline:
    def test_render_skips_the_measurement_and_downloads_nothing(
        self, pinned, no_network, tmp_path
    ):
        from spec import stackfile

        sf = stackfile.load(str(_stack_file(tmp_path)))
        result = render.run(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                            project_dir=sf.project_dir)
        data = render.unwrap(
            one(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values").inputs
        )["data"]
        assert "snp_launch_measurement" not in data  # measured by `pulumi up`
        assert no_network == []


class TestFetch:
    def test_fetch_downloads_and_prints_the_measurement(
        self, pinned, server, tmp_path, monkeypatch, capsys
    ):
        (server.root / "kata.tar.zst").write_bytes((tmp_path / "kata-static.tar.zst").read_bytes())
        monkeypatch.setattr(versions, "KATA_STATIC",
                            ReleaseArtifact("kata-static", "4.0.0", server.url("kata.tar.zst"),
                                            pinned.sha256, pinned.size))
        assert cli.main(["fetch", str(_stack_file(tmp_path))]) == 0
        out = capsys.readouterr().out
        assert ", downloaded" in out and "snp_launch_measurement (1 vCPUs): " in out
        assert server.requests == ["/kata.tar.zst"]
        # now `coco check` finds it in the cache: no notice
        assert cli.main(["check", str(_stack_file(tmp_path))]) == 0
        assert "not measured yet" not in capsys.readouterr().err

    def test_nothing_to_fetch(self, capsys):
        assert cli.main(["fetch", str(ROOT / "stacks" / "Pulumi.dev.yaml")]) == 0
        assert "nothing to fetch" in capsys.readouterr().out
