"""`ami demo` and `ami sniff` end to end, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from amitools.cli import main


def test_demo_report_has_every_field_and_passes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    cap = tmp_path / "air.pcap"
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
    rd = r["readings"]
    # Two meters are zeroized on purpose (decommission, tamper): they stop metering, and
    # what they had not sent by then cannot leave them (reported apart from losses).
    assert rd["sent"] == rd["delivered"] > 2 * 12 and rd["lost"] == 0
    assert r["attacks"]["accepted"] == 0 and r["attacks"]["attempted"] > 0
    for kind in ("replay", "forge", "bitflip", "eavesdrop", "rogue_join", "key_theft"):
        assert kind in r["attacks"]["by_kind"]
    theft = r["attacks"]["by_kind"]["key_theft"]
    assert theft["attempted"] >= 40 and theft["accepted"] == 0
    assert {"decrypt_other_meter", "command_other_meter", "join_as_other_meter",
            "impersonate_head_end", "join_after_revocation",
            "copied_keystore_guess"} <= set(theft["attempts"])
    lc = r["lifecycle"]
    assert lc["session_rekey"]["executed"] and lc["root_rotation"]["confirmed_by_join"] == 1
    assert lc["group_key_rotation"]["switched"] == 1 and lc["signer_rotation"]["confirmed"] >= 3
    assert lc["rejoin"] == {"ordered": True, "compromise": True}
    assert lc["decommission"] == {"executed": True, "revoked": True, "zeroized": True}
    assert lc["tamper"]["zeroized"] and lc["revocation"]["revoked"]
    assert "RESULT: PASS" in capsys.readouterr().out

    assert main(["sniff", str(cap), "--limit", "3"]) == 0
    text = capsys.readouterr().out
    assert "JOIN_REQUEST" in text and "summary:" in text and "DATA" in text
