"""Global options anywhere on the line, -s/--stack like pulumi, and help with examples."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from cli import main, options


def parse(*argv: str) -> argparse.Namespace:
    parser = main.build_parser()
    return options.finish(parser, parser.parse_args(list(argv)))


class TestAnyPosition:
    @pytest.mark.parametrize(
        "argv",
        [
            ["--debug", "-o", "json", "check", "dev"],
            ["check", "dev", "--debug", "-o", "json"],
            ["check", "--debug", "dev", "--output", "json"],
            ["-o", "json", "check", "--debug", "dev"],
            ["--debug", "check", "-o", "json", "-s", "dev"],
            ["-s", "dev", "--debug", "check", "-o", "json"],
            ["--stack", "dev", "check", "dev", "--debug", "-o", "json"],  # the same stack twice
        ],
    )
    def test_check(self, argv: list[str]) -> None:
        args = parse(*argv)
        assert (args.command_name, args.stack, args.debug, args.output) == (
            "check", "dev", True, "json"
        )

    def test_defaults_not_clobbered_by_the_subcommand(self) -> None:
        """A subcommand that was not given an option keeps the top-level value (SUPPRESS)."""
        args = parse("--debug", "-o", "json", "check", "dev")
        assert args.debug is True and args.output == "json"
        args = parse("check", "dev")
        assert args.debug is False and args.output == "text"

    @pytest.mark.parametrize(
        "argv",
        [
            ["kbs", "--url", "https://k:8080", "set-resource", "a/b/c", "f", "--debug"],
            ["kbs", "set-resource", "a/b/c", "f", "--url", "https://k:8080", "--debug"],
            ["--debug", "kbs", "set-resource", "--url", "https://k:8080", "a/b/c", "f"],
        ],
    )
    def test_kbs_connection_options(self, argv: list[str]) -> None:
        args = parse(*argv)
        assert args.url == "https://k:8080" and args.debug is True
        assert (args.path, args.file) == ("a/b/c", "f")

    def test_kbs_options_reach_the_client(self, monkeypatch, tmp_path, capsys) -> None:
        """Not only parsed: the URL given after the call is the one the client uses."""
        import cli.kbs_client as client_module

        seen: list[str] = []

        class Client:
            check_url = staticmethod(client_module.KbsClient.check_url)

            def __init__(self, url: str, token: str, ca: Any, **kw: Any) -> None:
                seen.append(url)

            def get_reference_value(self, name: str) -> Any:
                return ["v"]

        monkeypatch.setattr(client_module, "KbsClient", Client)
        (tmp_path / "t").write_text("token")
        for argv in (
            ["kbs", "get-reference-value", "x", "--url", "https://a:1", "--token-file"],
            ["kbs", "--url", "https://a:1", "--token-file"],
        ):
            if argv[1] == "--url":
                argv = [*argv, str(tmp_path / "t"), "get-reference-value", "x", "-o", "json"]
            else:
                argv = [*argv, str(tmp_path / "t"), "-o", "json"]
            assert main.main(argv) == 0
            assert json.loads(capsys.readouterr().out)["value"] == ["v"]
        assert seen == ["https://a:1", "https://a:1"]

    @pytest.mark.parametrize(
        ("argv", "attrs"),
        [
            (["render", "dev", "--exit-code", "--diff", "HEAD"], {"exit_code": True}),
            (["--debug", "diff", "a", "b", "--exit-code", "-o", "json"], {"exit_code": True}),
            (["image", "build", "podvm", "--out", "o", "--debug"], {"debug": True}),
            (["--debug", "image", "measure", "tdx", "--firmware", "f"], {"debug": True}),
            (["preview-summary", "p.json", "--stack", "dev"], {"stack": "dev"}),
            (["initdata", "--cacert", "c.pem", "-s", "dev", "-o", "json"], {"stack": "dev"}),
        ],
    )
    def test_other_commands(self, argv: list[str], attrs: dict[str, Any]) -> None:
        args = parse(*argv)
        for name, value in attrs.items():
            assert getattr(args, name) == value

    def test_debug_after_the_command_shows_tracebacks(self, monkeypatch, capsys) -> None:
        def broken(args: Any) -> int:
            raise KeyError("a bug")

        monkeypatch.setattr(main, "cmd_check", broken)
        main.main(["check", "dev", "--debug"])
        assert "Traceback" in capsys.readouterr().err


class TestStackOption:
    def test_positional_and_option_are_the_same(self, capsys) -> None:
        assert main.main(["check", "dev"]) == 0
        by_position = capsys.readouterr().out
        assert main.main(["check", "-s", "dev"]) == 0
        assert capsys.readouterr().out == by_position
        assert main.main(["-s", "dev", "check"]) == 0
        assert capsys.readouterr().out == by_position

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["check", "dev", "-s", "mixed"], "two different stacks"),
            (["render"], "a stack is needed"),
            (["diff", "a", "b", "-s", "dev"], "takes no stack"),
            (["-s", "dev", "completion", "bash"], "takes no stack"),
        ],
    )
    def test_usage_errors(self, argv: list[str], message: str, capsys) -> None:
        with pytest.raises(SystemExit) as info:
            main.main(argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err


class TestHelp:
    @pytest.mark.parametrize(
        "command",
        [
            ["check"], ["fetch"], ["render"], ["diff"], ["initdata"], ["kbs"],
            ["kbs", "set-resource"], ["kbs", "get-reference-value"], ["preview-summary"],
            ["image"], ["image", "build"], ["completion"],
        ],
    )
    def test_every_command_has_examples(self, command: list[str], capsys) -> None:
        with pytest.raises(SystemExit):
            main.main([*command, "--help"])
        out = capsys.readouterr().out
        assert "examples:\n  coco " in out or "examples:\n  pulumi " in out
        assert "--debug" in out
        # -o/--output shows where JSON output exists (elsewhere it is a usage error)
        has_json = command in (["check"], ["render"], ["diff"], ["initdata"],
                               ["kbs", "get-reference-value"])
        assert ("--output" in out) is has_json
