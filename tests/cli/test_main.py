"""The `coco` command line itself: help, version, and what `--cacert` accepts."""

from __future__ import annotations

import datetime
import json
from importlib import metadata
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cli import main
from spec import versions


def ca_pem() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class TestHelpAndVersion:
    def test_bare_coco_shows_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main.main([]) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: coco") and "check" in out and "render" in out

    def test_version_names_ours_and_cocos(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main.main(["--version"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"coco-stack {metadata.version('coco-stack')} ")
        assert versions.COCO_RELEASE in out and versions.TRUSTEE_VERSION in out


class TestInitdataCacert:
    def run(self, capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
        code = main.main(["initdata", "dev", "--cacert", str(path), "-o", "json"])
        out, err = capsys.readouterr()
        return code, out, err

    def test_certificate_accepted(self, tmp_path: Path, capsys) -> None:
        cert, _ = ca_pem()
        (tmp_path / "ca.pem").write_bytes(cert)
        code, out, _ = self.run(capsys, tmp_path / "ca.pem")
        assert code == 0
        assert cert.decode().strip().splitlines()[1] in json.loads(out)["toml"]

    def test_private_key_refused_and_not_printed(self, tmp_path: Path, capsys) -> None:
        cert, key = ca_pem()
        for name, data in (("key.pem", key), ("both.pem", cert + key)):
            (tmp_path / name).write_bytes(data)
            code, out, err = self.run(capsys, tmp_path / name)
            assert code == 2
            assert "holds a private key" in err
            assert out == "" and key.decode().splitlines()[1] not in err

    def test_other_file_refused(self, tmp_path: Path, capsys) -> None:
        (tmp_path / "notes.txt").write_text("not a certificate\n")
        code, out, err = self.run(capsys, tmp_path / "notes.txt")
        assert code == 2 and out == ""
        assert "is not a PEM CA certificate" in err


_NOISY = """
import sys, warnings
from cli import main
def noisy(args):  # stands in for a command that imports a noisy SDK
    warnings.warn("You are using a Python version ...", FutureWarning, stacklevel=1)
    return 0
main.cmd_check = noisy
sys.exit(main.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("argv", "shown"), [(["check", "dev"], False), (["--debug", "check", "dev"], True)]
)
def test_library_warnings_stay_out_of_the_output(argv: list[str], shown: bool) -> None:
    """A library's FutureWarning during a command (google.api_core warns about Python 3.11 on
    import) does not reach stderr; --debug shows it. A fresh interpreter, as a user runs it."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", _NOISY, *argv],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert ("FutureWarning" in done.stderr) is shown
