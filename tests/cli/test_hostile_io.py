"""Hostile input and hostile servers (review1 #3-#6): files that are not UTF-8 are bad input
(exit 2, naming the file and the bad byte); a KBS answering garbage failed (exit 3); the admin
token and the request's secret body never come back in a message, even when the server echoes
them; query and fragment values of a URL are never printed."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from cli import main, output
from spec.redact import redact_urls, scrub_fragments

TOKEN = "tok-S3CRET-1234567890.payload-PART-abcdef.sig-PIECE-zyxwvu"
VALUE = b"resource-VALUE-S3CRET-42"
NOT_UTF8 = b"line one\n\xff\xfe\x00bad"


class _Echo(http.server.BaseHTTPRequestHandler):
    """/CODE/...: answers HTTP CODE with the request's Authorization header and body echoed;
    /200/garbage and /200/binary answer 200 with a body that is not JSON / not UTF-8."""

    def log_message(self, *args: object) -> None:
        pass

    def _handle(self) -> None:
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        code = int(self.path.split("/")[1])
        if self.path.startswith("/200/garbage"):
            body = b"<html>proxy page</html>"
        elif self.path.startswith("/200/binary"):
            body = b"\xff\xfe not json"
        else:
            auth = self.headers.get("Authorization", "")
            body = (
                f"echo Authorization: {auth} | raw={auth[7:]} | cut={auth[9:30]} | "
                f'{{"authorization": "{auth}"}} | body='
            ).encode() + sent
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _handle


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tok").write_text(TOKEN + "\n")
    (tmp_path / "nu.bin").write_bytes(NOT_UTF8)
    (tmp_path / "value").write_bytes(VALUE)
    (tmp_path / "policy.rego").write_text("package policy\n")
    return {"tmp": str(tmp_path)}


def _json_output(argv: list[str]) -> bool:
    """Whether the command of ARGV has JSON output (of the kbs commands only the read has)."""
    return argv[0] != "kbs" or argv[1] == "get-reference-value"


def _modes(argvs: dict[str, list[str]]) -> list[tuple[str, bool]]:
    """Every case in text mode, and in JSON mode where its command has JSON output."""
    return [(case, json_mode) for case in sorted(argvs) for json_mode in (False, True)
            if not json_mode or _json_output(argvs[case])]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str], json_mode: bool) -> tuple[int, str]:
    assert not json_mode or _json_output(argv), "a case without JSON output run in JSON mode"
    code = main.main([*argv, "-o", "json"] if json_mode else argv)
    out, err = capsys.readouterr()
    if json_mode and code:
        found = json.loads(err.strip().splitlines()[-1])
        jsonschema.validate(found, output.schema("error"))
        assert found["error"]["exitCode"] == code
    return code, out + err


# -- #3: nothing of the token (or the resource value) comes back, text or JSON ---------------

@pytest.mark.parametrize("status", [401, 403, 404, 500])
@pytest.mark.parametrize(("call", "json_mode"),
                         [("get", False), ("get", True), ("set-resource", False)])
def test_echoed_token_and_value_never_printed(echo, files, capsys, status, call, json_mode):
    url = f"{echo}/{status}"
    argv = (["kbs", "get-reference-value", "x"] if call == "get"
            else ["kbs", "set-resource", "a/b/c", f"{files['tmp']}/value"])
    code, text = _run(capsys, [*argv, "--url", url, "--token-file", f"{files['tmp']}/tok",
                               "--insecure-http"], json_mode)
    assert code == (3 if status >= 500 else 2)
    assert f"HTTP {status}" in text
    for piece in ("S3CRET", "payload-PART", "sig-PIECE", "1234567890", "VALUE"):
        assert piece not in text, text


def test_scrub_fragments_hides_any_part_of_a_secret() -> None:
    secret = "abcdefgh-0123456789"
    text = f"x {secret} y {secret[3:14]} z {secret[::-1]} w"
    shown = scrub_fragments(text, [secret])
    assert "abcdefgh" not in shown and "def-0123" not in shown and "0123456" not in shown
    assert shown.startswith("x [secret] y [secret] z ") and shown.endswith(" w")
    assert scrub_fragments("nothing here", [secret]) == "nothing here"


@pytest.mark.parametrize("command", ["set-resource", "set-resource-policy",
                                     "set-attestation-policy"])
def test_json_output_refused_where_there_is_none(files, capsys, command):
    """`-o json` on a kbs write is a usage error before anything is sent, not ignored."""
    argv = ["kbs", command, *(["a/b/c"] if command == "set-resource" else []),
            f"{files['tmp']}/value",
            "--url", "http://127.0.0.1:1", "--insecure-http", "--token-file",
            f"{files['tmp']}/tok", "-o", "json"]
    with pytest.raises(SystemExit) as exit_:
        main.main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert f"coco kbs {command} has no JSON output" in err
    assert "kbs get-reference-value" in err.splitlines()[-1]


# -- #4: files that are not UTF-8 are bad input, exit 2, naming file and byte -----------------

BAD_FILE_ARGV = {
    "initdata --cacert": ["initdata", "dev", "--cacert", "{tmp}/nu.bin"],
    "kbs --token-file": ["kbs", "get-reference-value", "x", "--url", "http://127.0.0.1:1",
                         "--insecure-http", "--token-file", "{tmp}/nu.bin"],
    "kbs --cacert": ["kbs", "get-reference-value", "x", "--url", "https://127.0.0.1:1",
                     "--token-file", "{tmp}/tok", "--cacert", "{tmp}/nu.bin"],
    "set-resource-policy": ["kbs", "set-resource-policy", "{tmp}/nu.bin", "--url",
                            "http://127.0.0.1:1", "--insecure-http", "--token-file", "{tmp}/tok"],
    "set-attestation-policy": ["kbs", "set-attestation-policy", "{tmp}/nu.bin", "--url",
                               "http://127.0.0.1:1", "--insecure-http", "--token-file",
                               "{tmp}/tok"],
    "initdata --policy": ["initdata", "dev", "--url", "http://kbs:8080", "--policy",
                          "{tmp}/nu.bin"],
}


@pytest.mark.parametrize(("case", "json_mode"), _modes(BAD_FILE_ARGV))
def test_non_utf8_file_exit_2(files, capsys, case, json_mode):
    argv = [a.format(**files) for a in BAD_FILE_ARGV[case]]
    code, text = _run(capsys, argv, json_mode)
    assert code == 2, text
    assert "unexpected" not in text and "UnicodeDecodeError" not in text
    assert "nu.bin" in text and "not valid UTF-8" in text
    assert "line 2" in text and "0xff" in text


def test_preview_summary_non_utf8_exit_2(files, capsys):
    code, text = _run(capsys, ["preview-summary", f"{files['tmp']}/nu.bin"], False)
    assert code == 2 and "not valid UTF-8" in text and "nu.bin" in text
    assert "unexpected" not in text


def test_preview_summary_non_utf8_stdin_exit_2(capsys, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(NOT_UTF8)))
    code, text = _run(capsys, ["preview-summary", "-"], False)
    assert code == 2 and "not valid UTF-8" in text and "(stdin)" in text


# -- #5: a KBS answering 200 with garbage failed: exit 3 ---------------------------------------

@pytest.mark.parametrize("json_mode", [False, True])
@pytest.mark.parametrize("kind", ["garbage", "binary"])
def test_malformed_kbs_answer_exit_3(echo, files, capsys, kind, json_mode):
    code, text = _run(capsys, ["kbs", "get-reference-value", "x", "--url", f"{echo}/200/{kind}",
                               "--token-file", f"{files['tmp']}/tok", "--insecure-http"],
                      json_mode)
    assert code == 3, text
    assert "not JSON" in text and "unexpected" not in text


# -- #6: query and fragment values of a URL are never printed ---------------------------------

@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://h/?token=S3CRET", "https://h/?token=[redacted]"),
        ("'https://h:1/p?a=S3CRET&b=S3CRET2#S3CRET3' no", "'https://h:1/p?a=[redacted]&b=[redacted]"
         "#[redacted]' no"),
        ("see https://h/#access_token=S3CRET.", "see https://h/#[redacted]"),
        ("https://u:S3CRET@h/?S3CRET", "https://[redacted]@h/?[redacted]"),
        ("plain https://h/path, ok", "plain https://h/path, ok"),
    ],
)
def test_redact_urls_query_and_fragment(text, shown):
    assert redact_urls(text) == shown


@pytest.mark.parametrize("json_mode", [False, True])
@pytest.mark.parametrize("where", ["--url", "COCO_KBS_URL", "initdata --url"])
@pytest.mark.parametrize("tail", ["?token=S3CRET-123", "#S3CRET-123", "?a=1&t=S3CRET-123#x"])
def test_url_query_never_printed(files, capsys, monkeypatch, where, tail, json_mode):
    url = f"https://127.0.0.1:1/{tail}"
    if where == "initdata --url":
        argv = ["initdata", "dev", "--url", url]
    else:
        argv = ["kbs", "get-reference-value", "x", "--token-file", f"{files['tmp']}/tok"]
        if where == "--url":
            argv += ["--url", url]
        else:
            monkeypatch.setenv("COCO_KBS_URL", url)
    code, text = _run(capsys, argv, json_mode)
    assert code == 2 and "S3CRET" not in text and "[redacted]" in text, text


def test_initdata_credentials_message_is_about_guests(capsys):
    code, text = _run(capsys, ["initdata", "dev", "--url", "https://u:S3CRET@kbs:8080"], False)
    assert code == 2 and "S3CRET" not in text
    assert "admin" not in text and "annotation" in text


def test_diff_non_utf8_render_document_names_the_byte(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "resources.json").write_bytes(b'{"resources": []}')
    (tmp_path / "b" / "resources.json").write_bytes(b'{"resources":\n ["\xff"]}')
    code, text = _run(capsys, ["diff", str(tmp_path / "a"), str(tmp_path / "b")], True)
    assert code == 2 and "not valid UTF-8" in text and "line 2" in text


def test_redirect_location_echoing_the_token_is_scrubbed(capsys, files):
    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:1/{auth[7:]}/x")
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        code, text = _run(capsys, ["kbs", "get-reference-value", "x", "--url",
                                   f"http://127.0.0.1:{httpd.server_address[1]}",
                                   "--token-file", f"{files['tmp']}/tok", "--insecure-http"],
                          True)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 2 and "redirect" in text
    assert "S3CRET" not in text and "payload-PART" not in text
