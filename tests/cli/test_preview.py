"""`coco preview-summary`: errors and what never reaches the summary. The summary of real
`pulumi preview --json` output is tested in the e2e tier (tests/e2e/test_stack.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main, preview

URN = "urn:pulumi:dev::coco::coco:stack:CocoStack$kubernetes:core/v1:Secret::coco-kbs-resources"


def test_values_never_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {
        "steps": [
            {
                "op": "update",
                "urn": URN,
                "diffReasons": ["stringData"],
                "newState": {"inputs": {"stringData": {"res-1": "TOP-SECRET"}}},
            },
            {"op": "same", "urn": URN.replace("coco-kbs-resources", "other")},
        ]
    }
    (tmp_path / "p.json").write_text(json.dumps(doc))
    assert main.main(["preview-summary", str(tmp_path / "p.json"), "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert "| update | `kubernetes:core/v1:Secret` | `coco-kbs-resources` | `stringData` |" in out
    assert "TOP-SECRET" not in out and "`other`" not in out
    assert out.startswith("### `pulumi preview` of dev")


def test_no_changes() -> None:
    assert "No changes." in preview.markdown({"steps": [{"op": "same", "urn": URN}]})


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", json.dumps({"steps": [{"op": "create", "urn": "nope"}]})]
)
def test_not_preview_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    (tmp_path / "p.json").write_text(text)
    assert main.main(["preview-summary", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "not readable `pulumi preview --json` output" in err and "Traceback" not in err
