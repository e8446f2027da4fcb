"""`ami hil`: one board meter (the unix port, the emulated MPS2-AN385) through the fleet's
scenarios, with the report keys of `ami demo`; the short power-cut campaign on the board."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from amitools import REPO
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


def _emulator_missing() -> str | None:
    for tool in ("qemu-system-arm", "arm-none-eabi-gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make check-boards; .ci/run installs it)"
    return None


def test_hil_on_the_emulated_an385(tmp_path: Path, capsys) -> None:
    missing = _emulator_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path / "r.json"
    assert main(["hil", "--qemu", "an385", "--hours", "4", "--json", str(out)]) == 0
    check_report(json.loads(out.read_text()), "qemu-an385")
    assert "RESULT: PASS" in capsys.readouterr().out
    assert not _our_emulators(), "an emulator outlived ami hil"


def test_power_cuts_on_the_emulated_an385(tmp_path: Path) -> None:
    """The short campaign (make soak runs a long one): cuts at random instants of the
    board's requests, every invariant held, and the scenarios still pass."""
    missing = _emulator_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path / "r.json"
    assert main(["hil", "--qemu", "an385", "--hours", "4", "--power-cuts", "0.05",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    pc = r["power_cuts"]
    assert pc["cuts"] >= 3 and pc["violation_count"] == 0 and pc["frames_checked"] > 50
    assert r["board"]["power_cycles"] == pc["cuts"] + 1  # and the campaign's own reboot
    assert r["readings"]["lost"] == 0 and r["attacks"]["accepted"] == 0
    assert not _our_emulators(), "an emulator outlived ami hil"


def _our_emulators() -> list[str]:
    """QEMU processes running this checkout's firmware."""
    found = subprocess.run(["pgrep", "-af", "qemu-system-arm"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if str(REPO) in line]
