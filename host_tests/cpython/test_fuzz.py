"""A short fuzzing run of every target on both runtimes (`make fuzz` runs the long one), and
checks that the harness's invariants do catch what they are meant to."""

from __future__ import annotations

from pathlib import Path

import pytest
from amitools.measure import fuzz
from amitools.ondevice import fuzztargets as ft
from amitools.ondevice.fuzzmp import fuzz as mutate_run

CPYTHON_RUNS = 20_000
MP_RUNS = 3_000
SEED = 1
# Issue 12, part A (another branch fixes them), which the head-end target finds within a few
# thousand inputs; any other crash fails the test. Defect 1: a reading of 2^63 Wh or more
# makes the batch insert raise. Defect 2: a STATUS with a receive floor near 2^32 pushes the
# downlink counter past 32 bits and sealing raises.
KNOWN_HEADEND_DEFECTS = {
    "too large to convert to SQLite INTEGER": "issue 12 A1: a u64 reading >= 2^63",
    "ValueError('fcnt out of range')": "issue 12 A2: a STATUS receive floor near 2^32",
}


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[bytes]]:
    return fuzz.corpus()


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_short_atheris_run(target: str, seeds: dict[str, list[bytes]], tmp_path: Path) -> None:
    cdir = tmp_path / "corpus"
    fuzz._write_corpus(seeds[target], cdir)
    result = fuzz.run_cpython(target, CPYTHON_RUNS, SEED, cdir, tmp_path)
    for crash in result["crashes"] if target.startswith("head") else ():
        for text, defect in KNOWN_HEADEND_DEFECTS.items():
            if text in crash:
                pytest.xfail(f"{defect} breaks the head end: {crash}")
    assert result["crashes"] == [] and result["returncode"] == 0, result
    assert result["inputs"] >= CPYTHON_RUNS and result["coverage"]["edges"] > 0  # instrumented


def test_short_mutation_run_on_the_unix_port(seeds: dict[str, list[bytes]],
                                             tmp_path: Path) -> None:
    cfile = tmp_path / "corpus.txt"
    cfile.write_text("".join(f"{t} {d.hex()}\n" for t in fuzz.FIRMWARE_TARGETS
                             for d in seeds[t]))
    report = fuzz.run_mp(list(fuzz.FIRMWARE_TARGETS), MP_RUNS, SEED, cfile)
    assert "failed" not in report, report
    assert report["runtime"] == "micropython"
    for name in fuzz.FIRMWARE_TARGETS:
        entry = report["targets"][name]
        assert entry["inputs"] == MP_RUNS and entry["violations"] == [], (name, entry)


def test_decoder_target_flags_an_untyped_exception() -> None:
    def broken(data: bytes) -> None:
        raise IndexError("out of range")

    target = ft.DecoderTarget("broken", (broken,), ft.FrameError)
    with pytest.raises(ft.Violation, match="IndexError"):
        target.run(b"\x00\x01")


def test_meter_target_flags_a_state_change_from_unauthenticated_input() -> None:
    target = ft.MeterTarget()
    real = target.meter.receive

    def leaky(data: bytes, now_ms: int) -> tuple[str | None, list[bytes]]:
        target.storage.write("config.a", b"x")  # what no rejected frame may do
        return real(data, now_ms)

    target.meter.receive = leaky
    with pytest.raises(ft.Violation, match="flash changed by a malformed frame"):
        target.run(b"\x00" + bytes(30))


def test_meter_target_flags_an_unauthenticated_frame_accepted() -> None:
    target = ft.MeterTarget()
    target.meter.receive = lambda data, now_ms: (None, [])
    with pytest.raises(ft.Violation, match="unauthenticated input accepted"):
        target.run(b"\x01" + bytes(30))


class Recorder:
    """A target that keeps its inputs."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def run(self, data: bytes) -> None:
        self.seen.append(data)


def test_mutation_is_the_same_for_a_seed() -> None:
    pool = ft.seeds()["frame"]
    a, b = Recorder(), Recorder()
    mutate_run(a, pool, 500, 7, ft.Violation)
    mutate_run(b, pool, 500, 7, ft.Violation)
    assert a.seen == b.seen and len(set(a.seen)) > 400
