"""`ami hil`: one board meter (the unix port here; the emulated board once built) through
the fleet's scenarios, with the report keys of `ami demo`."""

from __future__ import annotations

import json
from pathlib import Path

from amitools.cli import main

DEMO_KEYS = {"meters", "micropython_meters", "joined", "join_failures", "readings", "attacks",
             "rejections", "counted", "radio", "rates", "wall_seconds", "workers", "commands",
             "relay", "events", "security_monitor", "lifecycle"}


def check_report(r: dict, target: str) -> None:
    assert DEMO_KEYS <= set(r), DEMO_KEYS - set(r)
    assert r["meters"] == 4 and r["joined"] == 4 and r["micropython_meters"] == 1
    assert r["readings"]["lost"] == 0 and r["readings"]["delivered"] > 0
    assert r["attacks"]["accepted"] == 0
    for kind in ("replay", "forge", "rogue_join", "copycat", "replay_after_reboot"):
        assert r["attacks"]["by_kind"][kind]["attempted"] > 0, kind
    b = r["board"]
    assert b["target"] == target and b["state"] == "active"
    assert b["commands_executed"]["disconnect"] >= 1
    assert b["commands_executed"]["arm_reconnect"] >= 1
    assert b["commands_refused"], "the copied and replayed commands reached the board"
    assert b["events"]["relay_close"] >= 1 and b["power_cycles"] == 1


def test_hil_on_the_unix_port(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.json"
    assert main(["hil", "--unix", "--hours", "4", "--json", str(out)]) == 0
    check_report(json.loads(out.read_text()), "unix")
    assert "RESULT: PASS" in capsys.readouterr().out
