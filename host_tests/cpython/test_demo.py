"""`ami demo` and `ami sniff` end to end, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from amitools.cli import main


def test_demo_report_has_every_field_and_passes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    cap = tmp_path / "air.jsonl"
    code = main([
        "demo", "--meters", "4", "--micropython", "1", "--hours", "3", "--seed", "3",
        "--json", str(out), "--capture", str(cap),
    ])
    assert code == 0
    r = json.loads(out.read_text())
    for key in ("meters", "micropython_meters", "joined", "join_failures", "readings",
                "attacks", "rejections", "wall_seconds", "rates"):
        assert key in r
    assert r["meters"] == 4 and r["micropython_meters"] == 1 and r["joined"] == 4
    assert set(r["readings"]) >= {"sent", "delivered", "lost", "duplicated"}
    assert r["readings"]["sent"] == r["readings"]["delivered"] == 4 * 12
    assert r["attacks"]["accepted"] == 0 and r["attacks"]["attempted"] > 0
    for kind in ("replay", "forge", "bitflip", "eavesdrop", "rogue_join"):
        assert kind in r["attacks"]["by_kind"]
    assert "RESULT: PASS" in capsys.readouterr().out

    assert main(["sniff", str(cap), "--limit", "3"]) == 0
    text = capsys.readouterr().out
    assert "JOIN_REQUEST" in text and "summary:" in text and "DATA" in text
