"""The power-loss campaign (`ami faults`, docs/faults.md), sampled: every store on CPython
and on the MicroPython unix port, a cut at every write and at every STEP-th byte of it (and
its last byte). `make soak` runs every byte. And proof that the campaign can fail: stores
broken on purpose are caught."""

from ami import meter
from ami.store.counters import TxCounter
from ami.store.records import RecordCorrupt, RecordStore
from amitools.measure import faults
from amitools.ondevice import faultcampaign, faultengine, faultstores

STEP = 16  # both runtimes in about 7 s on two cores


def test_sampled_campaign_finds_no_violation() -> None:
    report = faults.campaign(step=STEP)
    assert report["violations"] == []
    assert set(report["runtimes"]) == {"cpython", "micropython"}
    for runtime in report["runtimes"].values():
        assert runtime["step"] == STEP
        assert set(runtime["by_store"]) == set(faults.STORES)
        assert runtime["torn_writes"] > 0
    for store in faults.STORES:
        s = report["by_store"][store]
        assert s["cut_points"] > 0 and s["torn_writes"] > 0, store
        assert s["violations"] == 0, store
        assert s["reboots"] >= s["cut_points"], store
    assert report["cut_points"] == sum(r["cut_points"] for r in report["runtimes"].values())


class LateTxCounter(TxCounter):
    """Broken on purpose: hands out the value at its persisted limit before persisting the
    next limit, so a cut during that write makes the reboot hand it out again."""

    def next(self) -> int:
        n = self._next
        if n > self._limit:
            self._persist(n)
        self._next = n + 1
        return n


class InPlaceRecords(RecordStore):
    """Broken on purpose: every write rewrites slot .a in place (no A/B), so a torn write
    leaves no valid copy."""

    def write(self, name: str, payload: bytes) -> int:
        try:
            gen = self.generation(name)
        except RecordCorrupt:
            gen = 0
        self._last[name] = (1, gen)  # "newest in .b": the write goes to .a
        return RecordStore.write(self, name, payload)


def test_campaign_catches_a_counter_reused_after_a_cut(monkeypatch) -> None:
    monkeypatch.setattr(faultstores, "TxCounter", LateTxCounter)
    report = faultcampaign.run(step=4, stores=["counters"])
    assert report["by_store"]["counters"]["violations"] > 0
    # Seen at the reboot (the counter resumes at or below a value handed out), before the
    # workload carries on to hand it out again.
    assert any("transmit counter" in v for v in report["violations"]), report["violations"]


def test_campaign_catches_a_record_written_in_place(monkeypatch) -> None:
    monkeypatch.setattr(faultengine, "RecordStore", InPlaceRecords)
    report = faultcampaign.run(step=8, stores=["keystore", "counters"])
    assert report["by_store"]["keystore"]["violations"] > 0
    assert report["by_store"]["counters"]["violations"] > 0
    assert any("keystore_corrupt" in v for v in report["violations"]), report["violations"]


def test_store_scenarios_anchor_what_the_meter_anchors() -> None:
    assert set(faultengine.ANCHORED) <= set(meter.ANCHORED)


def test_report_merges_runtimes() -> None:
    one = {"cut_points": 3, "torn_writes": 2, "reboots": 6, "violations": ["x: bad"],
           "by_store": {"x": {"cut_points": 3, "torn_writes": 2, "reboots": 6,
                              "violations": 1, "writes": 1, "seconds": 0.1}},
           "backend": "b", "wall_seconds": 0.1, "step": 1}
    merged = faults.merge({"cpython": one, "micropython": one})
    assert merged["cut_points"] == 6 and merged["torn_writes"] == 4 and merged["reboots"] == 12
    assert merged["violations"] == ["cpython: x: bad", "micropython: x: bad"]
    assert merged["by_store"]["x"] == {"cut_points": 6, "torn_writes": 4, "reboots": 12,
                                       "violations": 2}
    assert "x" in faults.summary(merged)
