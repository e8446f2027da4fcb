"""The `ami` command line: every bad input of docs/cli.md ends in its one line and exit
status 2; outputs, secrets and interruptions behave as that page says."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from amitools import REPO
from amitools.cli import build_parser, main
from amitools.measure.bench import exit_status

DOC = REPO / "docs" / "cli.md"


def bad_input_rows() -> list[tuple[str, str]]:
    """(command, error line) of each row of docs/cli.md's bad-input table."""
    text = DOC.read_text()
    section = text.split("## Bad input", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section, re.MULTILINE)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv): (exit status, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    existing = tmp_path / "existing.json"
    existing.write_text("{}\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a capture\n")
    directory = tmp_path / "dir"
    directory.mkdir()
    return {"EXISTING": str(existing), "NOTCAPTURE": str(notes), "DIR": str(directory)}


def substitute(text: str, places: dict[str, str]) -> str:
    return re.sub(r"\b(EXISTING|NOTCAPTURE|DIR)\b", lambda m: places[m.group(1)], text)


def test_the_table_has_rows_for_every_command() -> None:
    rows = bad_input_rows()
    assert len(rows) >= 50
    named = {cmd.split("ami ", 1)[1].split()[0] for cmd, _ in rows}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert named == set(sub.choices)


@pytest.mark.parametrize(("command", "line"), bad_input_rows())
def test_bad_input(command: str, line: str, places, capsys, monkeypatch) -> None:
    words = shlex.split(substitute(command, places))
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        monkeypatch.setenv(name, value)
    assert words[0] == "ami"
    code, out, err = run(words[1:], capsys)
    assert (code, out, err) == (2, "", substitute(line, places) + "\n")


def test_json_dash_writes_the_report_to_stdout_and_the_summary_to_stderr(capsys) -> None:
    # --micropython left out: its default (3) shrinks to a smaller fleet, no error.
    code, out, err = run(["demo", "--meters", "2", "--hours", "2", "--json", "-"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["meters"] == report["micropython_meters"] == 2
    assert "RESULT: PASS" in err and "ami demo: join phase:" in err


def test_force_replaces_an_existing_output_whole(tmp_path: Path, capsys) -> None:
    out = tmp_path / "wear.json"
    out.write_text("old")
    code, stdout, _ = run(["wear", "--days", "1", "--json", str(out), "--force"], capsys)
    assert code == 0 and json.loads(out.read_text()) == json.loads(stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wear.json"]  # no temporary left


def modes(root: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode))
            for p in root.rglob("*")}


def test_provision_refuses_an_existing_directory_and_force_replaces_it_whole(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "prov"
    old_umask = os.umask(0o022)  # a permissive umask: secrets must be 0600 regardless
    try:
        assert run(["provision", "--meters", "2", "--out", str(out)], capsys)[0] == 0
        hsm = (out / "headend" / "hsm.key").read_bytes()
        (out / "stale.txt").write_text("from before")
        assert run(["provision", "--meters", "2", "--out", str(out)], capsys)[0] == 2
        assert (out / "headend" / "hsm.key").read_bytes() == hsm  # untouched
        assert run(["provision", "--meters", "1", "--out", str(out), "--force"], capsys)[0] == 0
    finally:
        os.umask(old_umask)
    assert not (out / "stale.txt").exists()
    assert (out / "headend" / "hsm.key").read_bytes() != hsm
    assert len(list((out / "devices").iterdir())) == 1
    assert modes(out) == {("dir", 0o700), ("file", 0o600)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prov"]


def test_node_directories_hold_secrets_owner_only(tmp_path: Path) -> None:
    from amitools.office.provision import provision
    from amitools.sim.mpnode import MicroPythonMeter
    from amitools.sim.nodedir import provisioned_node

    old_umask = os.umask(0o022)
    try:
        provisioned_node(tmp_path / "fixture")
        kit = provision(1, 1_767_225_600, seed=1).devices[0]
        node = MicroPythonMeter(kit.eui, tmp_path / "node", kit.image, kit.secret, b"seed")
        node.close()
    finally:
        os.umask(old_umask)
    secrets = [p for p in tmp_path.rglob("*") if p.name != "config.json"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in secrets if p.is_file()} == {0o600}


def test_bench_fails_when_a_target_is_missed() -> None:
    ok = {"id": "a", "status": "PASS"}
    na = {"id": "b", "status": "N/A"}
    assert exit_status({"errors": [], "targets": [ok, na]}) == 0
    assert exit_status({"errors": [], "targets": [ok, {"id": "c", "status": "FAIL"}]}) == 1
    assert exit_status({"errors": ["MicroPython: no report"], "targets": [ok]}) == 1


def descendants(pid: int) -> set[int]:
    """Every live process below pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - out
        out |= frontier
    return out


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(("sig", "workers", "status", "word"), [
    (signal.SIGTERM, 1, 143, "terminated"),
    (signal.SIGINT, 1, 130, "interrupted"),
    (signal.SIGTERM, 2, 143, "terminated"),
])
def test_an_interrupted_demo_cleans_up(
    tmp_path: Path, sig: int, workers: int, status: int, word: str
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    report, capture = tmp_path / "r.json", tmp_path / "air.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "amitools", "demo", "--meters", "40", "--micropython", "2",
         "--workers", str(workers), "--json", str(report), "--capture", str(capture)],
        env=dict(os.environ, TMPDIR=str(tmp)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(tmp.glob("ami-demo-*/*/flash")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into the run: the unix-port meters are up
    children = descendants(proc.pid)
    assert children, "no unix-port meter was started"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err.splitlines()[-1] == f"ami demo: {word}" and "Traceback" not in err
    assert list(tmp.iterdir()) == []  # the keys' temporary directory is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # no partial output
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in children if alive(p)]
