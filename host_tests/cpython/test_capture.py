"""Captures: `ami demo --capture` writes pcap the Wireshark dissector in tools/wireshark decodes
frame for frame as the construct spec does, bad FCS flagged; `ami sniff` reads it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from amitools.cli import main
from amitools.reference import spec
from amitools.sim import capture
from amitools.sim.fleet import DemoOptions, run_demo

LUA = Path(__file__).resolve().parents[2] / "tools" / "wireshark" / "ami.lua"
FIELDS = ("frame.number", "amiph.flags", "amiph.partition", "ami.type", "ami.verdict",
          "ami.fcs.good", "_ws.expert.message")


@pytest.fixture(scope="module")
def demo_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two workers' radios merged into one capture, attacks included."""
    path = tmp_path_factory.mktemp("cap") / "air.pcap"
    opts = DemoOptions(meters=6, micropython=1, seed=2, hours=3, workers=2, capture=str(path))
    report = run_demo(opts)
    assert report["workers"] == 2 and report["joined"] == 6
    return path


def with_bad_frames(src: Path, out: Path) -> list[capture.Packet]:
    """The capture plus three frames made bad here: an FCS off by one bit, a frame of a
    reserved type with a good FCS, and a frame too short to be one."""
    packets = list(capture.read(str(src)))
    good = next(p.frame for p in packets if p.frame[0] & 0x0F == spec.DATA
                and spec.crc16_kermit(p.frame[:-2]) == int.from_bytes(p.frame[-2:], "little"))
    bad_fcs = good[:-1] + bytes((good[-1] ^ 0x01,))
    body = bytes((0x15,)) + good[1:-2]  # type 5: not defined
    reserved = body + spec.crc16_kermit(body).to_bytes(2, "little")
    t = packets[-1].time_ms
    extra = [capture.Packet(t + i + 1, capture.F_INJECTED, 0, capture.NO_NODE, f)
             for i, f in enumerate((bad_fcs, reserved, b"\x14\x00"))]
    writer = capture.CaptureWriter(str(out))
    for p in packets + extra:
        writer.write(p)
    writer.close()
    return packets + extra


def tshark(*args: str) -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (.ci/run installs it from Debian's packages)")
    proc = subprocess.run([exe, "-X", f"lua_script:{LUA}", *args], capture_output=True,
                          text=True, timeout=300, check=True)
    return proc.stdout


def test_capture_merges_workers_in_time_order(demo_capture: Path) -> None:
    packets = list(capture.read(str(demo_capture)))
    times = [p.time_ms for p in packets]
    assert times == sorted(times)
    assert {p.partition for p in packets} == {0, 1}
    assert any(p.flags & capture.F_INJECTED for p in packets)  # the attacker's frames too
    assert any(p.flags & capture.F_DOWN for p in packets)
    assert any(not p.flags & capture.F_DOWN for p in packets)


def test_dissector_decodes_every_frame_as_the_spec(demo_capture: Path, tmp_path: Path) -> None:
    path = tmp_path / "air+bad.pcap"
    packets = with_bad_frames(demo_capture, path)
    verbose = tshark("-r", str(path), "-V")
    assert "Lua Error" not in verbose and "Malformed Packet" not in verbose
    args = ["-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for name in FIELDS:
        args += ["-e", name]
    rows = [line.split("\t") for line in tshark(*args).splitlines()]
    assert len(rows) == len(packets)
    seen: set[str] = set()
    for p, (number, flags, partition, ftype, verdict, fcs_good, message) in zip(
        packets, rows, strict=True
    ):
        where = f"packet {number}: {p.frame.hex()}"
        assert int(flags, 16) == p.flags and int(partition) == p.partition, where
        try:
            parsed = spec.parse_frame(p.frame)
        except spec.SpecError as exc:
            assert verdict == exc.reason, where
            seen.add(exc.reason)
            if exc.reason == "crc":
                assert fcs_good == "0" and message.startswith("Bad FCS"), where
            continue
        assert verdict == "ok" and fcs_good == "1", where
        assert int(ftype) == parsed.vt.ftype, where
        seen.add(spec.TYPE_NAMES[parsed.vt.ftype])
    assert seen >= {*spec.TYPE_NAMES.values(), "crc", "malformed"}


def test_sniff_reads_the_capture_and_refuses_other_files(
    demo_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sniff", str(demo_capture), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "JOIN_REQUEST" in out and "summary:" in out and "injected" in out
    pcapng = b"\x0a\x0d\x0d\x0a" + bytes(40)
    for name, data in (("notes.txt", b"hello\n" * 10), ("x.pcapng", pcapng),
                       ("short.pcap", b"\xd4\xc3")):
        bad = tmp_path / name
        bad.write_bytes(data)
        assert main(["sniff", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"ami sniff: error: {bad}:")
    truncated = tmp_path / "cut.pcap"
    truncated.write_bytes(demo_capture.read_bytes()[:-3])
    assert main(["sniff", str(truncated)]) == 2
    assert "truncated" in capsys.readouterr().err
