"""Exit codes: one per kind of failure, the same in every command (spec.errors.ExitCode).

0 ok, 1 changes found (--exit-code), 2 invalid input or usage, 3 something unreachable, 4 a
failure or anything unexpected. Each case runs the real entry point (cli.main.main), in text
and in JSON mode; under --output json stdout stays empty and stderr's last line is an error
object that validates against cli/schemas/error.schema.json.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import cli
import images
import spec
from cli import main, output
from spec.errors import CocoError, ExitCode

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    capsys: pytest.CaptureFixture[str], argv: list[str], json_mode: bool
) -> tuple[int, str, str]:
    code = main.main([*argv, "-o", "json"] if json_mode else argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_reported(code: int, out: str, err: str, json_mode: bool, expected: int) -> None:
    assert code == expected, err
    if json_mode:
        assert out == ""
        found = json.loads(err.strip().splitlines()[-1])
        jsonschema.validate(found, output.schema("error"))
        assert found["error"]["exitCode"] == expected
    else:
        assert "error" in err


def _setup_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "token").write_text("not checked before the request\n")
    (tmp_path / "notrender").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    return {"tmp": str(tmp_path)}


# (name, argv with {tmp} and {port} placeholders, JSON-capable); all invalid input: exit 2
INVALID = [
    ("check: no such stack", ["check", "no-such-stack"], True),
    ("check: invalid stack", ["check", "{tmp}/Pulumi.bad.yaml"], True),
    ("render: no such stack", ["render", "no-such-stack"], True),
    ("fetch: no such stack", ["fetch", "no-such-stack"], False),
    ("initdata: no such stack", ["initdata", "no-such-stack"], True),
    ("initdata: not a certificate", ["initdata", "dev", "--cacert", "{tmp}/token"], True),
    ("diff: not render output", ["diff", "{tmp}/notrender", "{tmp}/notrender"], True),
    ("kbs: no token", ["kbs", "get-reference-value", "x", "--url", "http://127.0.0.1:1"], True),
    ("kbs: no such file", ["kbs", "set-resource", "a/b/c", "{tmp}/missing",
                           "--url", "http://127.0.0.1:1", "--token-file", "{tmp}/token"], False),
    ("preview-summary: not preview JSON", ["preview-summary", "{tmp}/bad.json"], False),
    ("image build: no such recipe", ["image", "build", "no-such-recipe", "--out", "{tmp}/o"],
     False),
]


def _argv(template: list[str], values: dict[str, str]) -> list[str]:
    return [a.format(**values) for a in template]


class TestInvalidInput:
    """Bad input exits 2 in every command, and never 1 (which means "changes found")."""

    @pytest.mark.parametrize(
        ("argv", "json_mode"),
        # commands without JSON output: -o json is a usage error (test_usage_errors_exit_2)
        [(argv, j) for _, argv, has in INVALID for j in ((False, True) if has else (False,))],
        ids=[f"{n} ({j})" for n, _, has in INVALID for j in ("text", "json")[: 1 + has]],
    )
    def test_exit_2(self, argv, json_mode, tmp_path, capsys) -> None:
        values = _setup_files(tmp_path)
        (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  coco:nodePools:\n    - tee: tdz\n")
        code, out, err = run(capsys, _argv(argv, values), json_mode)
        assert_reported(code, out, err, json_mode, ExitCode.INVALID)

    @pytest.mark.parametrize(
        "argv",
        [
            ["check"],  # no stack
            ["check", "dev", "--no-such-option"],
            ["check", "dev", "-s", "mixed"],  # two different stacks
            ["diff", "a", "b", "-s", "dev"],  # diff takes no stack
            ["fetch", "dev", "-o", "json"],  # no JSON output
            ["render", "dev", "--out", "-", "-o", "json"],
            ["kbs", "set-resource"],
            ["completion", "tcsh"],
        ],
    )
    def test_usage_errors_exit_2(self, argv: list[str], capsys) -> None:
        with pytest.raises(SystemExit) as info:
            main.main(argv)
        assert info.value.code == ExitCode.INVALID
        assert "usage: coco" in capsys.readouterr().err


class TestUnreachable:
    """The network, a KBS, a registry or a cloud API that fails: exit 3 everywhere."""

    @pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
    def test_kbs_not_listening(self, json_mode, tmp_path, capsys) -> None:
        _setup_files(tmp_path)
        argv = ["kbs", "get-reference-value", "x", "--url", f"http://127.0.0.1:{closed_port()}",
                "--insecure-http", "--token-file", str(tmp_path / "token")]
        code, out, err = run(capsys, argv, json_mode)
        assert_reported(code, out, err, json_mode, ExitCode.UNREACHABLE)

    def test_kbs_set_resource_not_listening(self, tmp_path, capsys) -> None:
        _setup_files(tmp_path)
        argv = ["kbs", "set-resource", "a/b/c", str(tmp_path / "token"),
                "--url", f"http://127.0.0.1:{closed_port()}", "--insecure-http",
                "--token-file", str(tmp_path / "token")]
        code, out, err = run(capsys, argv, False)
        assert_reported(code, out, err, False, ExitCode.UNREACHABLE)

    @pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
    def test_cloud_api_fails_during_live_check(self, json_mode, monkeypatch, capsys) -> None:
        from components import preflight

        def unreachable(spec: Any) -> list[Any]:
            raise ConnectionError("compute.googleapis.com: connection reset")

        monkeypatch.setattr(preflight, "_default_checker", lambda cloud: unreachable)
        code, out, err = run(capsys, ["check", "gcp-snp", "--live"], json_mode)
        assert_reported(code, out, err, json_mode, ExitCode.UNREACHABLE)
        assert "connection reset" in err

    def test_ec2_does_not_answer(self, monkeypatch, capsys) -> None:
        """AWS turned refusals into issues (2) and a dead endpoint too: now the endpoint that
        does not answer is 3, as for Azure and GCP."""
        from botocore.exceptions import EndpointConnectionError

        from components import preflight
        from components.aws import preflight as aws_preflight

        class Client:
            def get_paginator(self, operation: str) -> Any:
                raise EndpointConnectionError(endpoint_url="https://ec2.us-east-2.amazonaws.com")

        def checker(spec: Any) -> Any:
            return aws_preflight.live_check(spec, client=aws_preflight.Ec2(lambda r: Client()))

        monkeypatch.setattr(preflight, "_default_checker", lambda cloud: checker)
        code, out, err = run(capsys, ["check", "aws-snp", "--live"], False)
        assert_reported(code, out, err, False, ExitCode.UNREACHABLE)
        assert "did not answer" in err

    def test_registry_unreachable(self, monkeypatch, capsys) -> None:
        from images import oci
        from images.errors import DownloadError

        def resolve(self: Any, ref: Any) -> str:
            raise DownloadError("cannot reach the registry for ghcr.io/x/y:1")

        monkeypatch.setattr(oci.Client, "resolve", resolve)
        code, out, err = run(capsys, ["image", "resolve", "ghcr.io/x/y:1"], False)
        assert_reported(code, out, err, False, ExitCode.UNREACHABLE)

    def test_fetch_download_fails(self, monkeypatch, capsys) -> None:
        from images import kata
        from images.errors import DownloadError

        def measure(*args: Any, **kwargs: Any) -> Any:
            raise DownloadError("https://github.com/...: connection refused")

        monkeypatch.setattr(kata, "measure", measure)
        code, out, err = run(capsys, ["fetch", "baremetal-snp"], False)
        if "nothing to fetch" in out:
            pytest.fail("baremetal-snp has no kataGuest any more: pick a stack that has one")
        assert_reported(code, out, err, False, ExitCode.UNREACHABLE)


class TestUnexpected:
    """A bug exits 4 (was 1, which scripts read as "changes found"); --debug shows why."""

    @pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
    def test_unexpected_exception(self, json_mode, monkeypatch, capsys) -> None:
        def broken(args: Any) -> int:
            raise KeyError("a bug")

        monkeypatch.setattr(main, "cmd_check", broken)
        code, out, err = run(capsys, ["check", "dev"], json_mode)
        assert_reported(code, out, err, json_mode, ExitCode.FAILED)
        assert "Traceback" not in err
        code = main.main(["check", "dev", "--debug"])
        assert code == ExitCode.FAILED and "Traceback" in capsys.readouterr().err

    def test_failed_operation(self, monkeypatch, capsys) -> None:
        from images import tdx
        from images.errors import MeasurementMismatch

        def measure(*args: Any, **kwargs: Any) -> Any:
            raise MeasurementMismatch("MRTD differs from the reference tool")

        monkeypatch.setattr(tdx, "measure_mrtd", measure)
        code, out, err = run(capsys, ["image", "measure", "tdx", "--firmware", "x.fd"], False)
        assert_reported(code, out, err, False, ExitCode.FAILED)


def _error_classes() -> list[type[CocoError]]:
    for package in (spec, images, cli):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    importlib.import_module("components.preflight")
    found: list[type[CocoError]] = []
    todo: list[type[CocoError]] = [CocoError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


class TestDefinedOnce:
    def test_every_error_class_carries_an_exit_code_of_the_table(self) -> None:
        classes = _error_classes()
        assert len(classes) > 10  # the walk found the project's errors
        # "changes found" is an error only where a command's job is to report changes
        reports_changes = {"cli.image.LockOutdated"}
        for cls in classes:
            name = f"{cls.__module__}.{cls.__qualname__}"
            if name in reports_changes:
                assert cls.exit_code == ExitCode.CHANGES, cls
            else:
                failures = (ExitCode.INVALID, ExitCode.UNREACHABLE, ExitCode.FAILED)
                assert cls.exit_code in failures, cls

    def test_kbs_errors_need_no_special_case(self) -> None:
        """The KBS client's errors carry their codes: cli.main has no list of modules."""
        from cli.kbs_client import KbsClientError, KbsUnreachable

        assert KbsClientError.exit_code == ExitCode.INVALID
        assert KbsUnreachable.exit_code == ExitCode.UNREACHABLE
        assert not hasattr(main, "_kbs_errors")

    def test_help_lists_the_table(self, capsys) -> None:
        from spec.errors import EXIT_CODES

        with pytest.raises(SystemExit):
            main.main(["--help"])
        out = capsys.readouterr().out
        for code, what in EXIT_CODES:
            assert f"  {int(code)}  {what}" in out

    def test_docs_list_the_table(self) -> None:
        from spec.errors import EXIT_CODES

        text = (ROOT / "docs" / "cli.md").read_text()
        for code, what in EXIT_CODES:
            assert f"| {int(code)} | {what} |" in text


