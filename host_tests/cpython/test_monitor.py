"""Head-end security monitor: thresholds, sliding windows, deduplication, summary."""

from __future__ import annotations

import pytest
from ami import events as ev
from amitools.headend.monitor import DEFAULT_RULES, DEVICE, FLEET, Rule, SecurityMonitor

T = 1_767_225_600_000


def eui(i: int) -> bytes:
    return b"\x02AMI" + i.to_bytes(4, "big")


def event(seq: int, kind: int, detail: int = 0, severity: int | None = None):
    sev = ev.default_severity(kind) if severity is None else severity
    return (seq, T // 1000, kind, sev, detail)


def kinds_of(mon: SecurityMonitor) -> list[str]:
    return [a["kind"] for a in mon.alerts]


def test_signature_storm_needs_the_rate_across_the_fleet():
    mon = SecurityMonitor(thresholds={"signature_failure_storm": 10})
    # Nine failures from nine meters within a minute: below the threshold.
    for i in range(9):
        mon.ingest(eui(i), [event(1, ev.BAD_SIGNATURE)], T + i * 1000)
    assert mon.alerts == []
    mon.note("bad_signature", eui(99), T + 20_000)  # a head-end rejection counts too
    assert kinds_of(mon) == ["signature_failure_storm"]
    alert = mon.alerts[0]
    assert alert["scope"] == FLEET
    assert alert["first_ms"] == alert["last_ms"] == T + 20_000
    assert alert["count"] == 10
    assert alert["device_count"] == 10 and len(alert["devices"]) == 8  # a sample
    assert alert["devices"][0] == eui(0).hex()


def test_sliding_window_forgets_old_events():
    mon = SecurityMonitor(thresholds={"signature_failure_storm": 5})
    # One failure every 15 s: four in any 60 s window, never five.
    for i in range(40):
        mon.note("bad_signature", eui(i), T + i * 15_000)
    assert mon.alerts == []
    # Faster: five within a minute.
    for i in range(5):
        mon.note("bad_signature", eui(i), T + 10**6 + i * 14_000)
    assert kinds_of(mon) == ["signature_failure_storm"]


def test_one_alert_per_episode_then_a_new_one_after_a_quiet_gap():
    raised: list[dict] = []
    mon = SecurityMonitor(thresholds={"signature_failure_storm": 3}, on_alert=raised.append)
    t = T
    for i in range(100):  # a sustained storm: one alert, extended
        mon.note("unknown_signer", eui(i % 7), t)
        t += 1000
    assert len(mon.alerts) == 1 and raised == mon.alerts
    alert = mon.alerts[0]
    assert alert["first_ms"] == T + 2000 and alert["last_ms"] == t - 1000
    assert alert["count"] == 100 and alert["device_count"] == 7
    assert mon.open_alerts(t) == [alert]
    assert mon.open_alerts(t + 61_000) == []
    # A quiet gap longer than the window, then the storm again: a second alert.
    t += 120_000
    for _ in range(3):
        mon.note("bad_signature", None, t)
        t += 1000
    assert kinds_of(mon) == ["signature_failure_storm"] * 2
    assert mon.alerts[1]["devices"] == [] and mon.alerts[1]["count"] == 3


def test_replay_from_one_device_is_per_device():
    mon = SecurityMonitor()
    # Four replays each from many devices: no single device reaches five.
    for i in range(20):
        for k in range(4):
            mon.note("replay", eui(i), T + k)
    assert mon.alerts == []
    for k in range(5):
        mon.ingest(eui(3), [event(10 + k, ev.COUNTER_REUSED)], T + 10_000 + k)
    assert kinds_of(mon) == ["replay_attack"]
    assert mon.alerts[0]["scope"] == eui(3).hex()
    assert mon.alerts[0]["devices"] == [eui(3).hex()]
    # Another device's episode is its own alert.
    for k in range(5):
        mon.note("replay", eui(4), T + 20_000 + k)
    assert [a["scope"] for a in mon.alerts] == [eui(3).hex(), eui(4).hex()]


def test_tamper_wave_counts_devices_not_events():
    mon = SecurityMonitor()
    for k in range(10):  # one meter opened ten times: critical, but no wave
        mon.ingest(eui(1), [event(k + 1, ev.TAMPER)], T + k)
    assert kinds_of(mon) == ["critical_event"]  # one alert per device episode
    mon.ingest(eui(2), [event(1, ev.TAMPER)], T + 60_000)
    assert "tamper_wave" not in kinds_of(mon)
    mon.ingest(eui(3), [event(1, ev.TAMPER)], T + 120_000)
    wave = [a for a in mon.alerts if a["kind"] == "tamper_wave"]
    assert len(wave) == 1 and wave[0]["device_count"] == 3
    # Outside the ten-minute window the first meters no longer count.
    mon2 = SecurityMonitor()
    for i in range(6):
        mon2.ingest(eui(i), [event(1, ev.TAMPER)], T + i * 400_000)
    assert "tamper_wave" not in kinds_of(mon2)


def test_resent_events_are_counted_once_and_aggregates_by_their_count():
    mon = SecurityMonitor(thresholds={"signature_failure_storm": 50})
    batch = [event(1, ev.BAD_SIGNATURE), event(2, ev.BAD_SIGNATURE)]
    assert mon.ingest(eui(1), batch, T) == 2
    assert mon.ingest(eui(1), batch, T + 1) == 0  # not acknowledged in time: resent
    assert mon.ingest(eui(2), batch, T + 2) == 2  # the same seqs from another meter
    assert mon.alerts == []
    agg = event(3, ev.BAD_SIGNATURE, detail=46, severity=ev.ALARM | ev.AGGREGATED)
    assert mon.ingest(eui(1), ev.encode_events([agg]), T + 3) == 1
    assert kinds_of(mon) == ["signature_failure_storm"]
    assert mon.alerts[0]["count"] == 50
    s = mon.summary()
    assert s["device_events"] == {"bad_signature": 50}
    assert s["duplicates"] == 2 and s["aggregates"] == 1 and s["devices_reporting"] == 2


def test_dedup_memory_is_bounded_and_keeps_working():
    mon = SecurityMonitor(rules=())
    for seq in range(1, 2000):
        assert mon.ingest("00aa", [event(seq, ev.CRC)], T) == 1
    floor, seen = mon._seen["00aa"]
    assert len(seen) <= 512 and floor > 1000
    assert mon.ingest("00aa", [event(5, ev.CRC), event(1999, ev.CRC)], T) == 0
    assert mon.ingest("00AA", [event(2000, ev.CRC)], T) == 1  # EUIs compare in hex


def test_malformed_body_is_a_rejection():
    mon = SecurityMonitor()
    assert mon.ingest(eui(1), b"\x02" + bytes(12), T) == 0
    s = mon.summary()
    assert s["headend_rejections"] == {"malformed": 1} and s["malformed_bodies"] == 1


def test_summary_for_a_demo_report():
    mon = SecurityMonitor(thresholds={"auth_failure_storm": 3, "join_flood": 2})
    for i in range(4):
        mon.note("auth", eui(i), T + i)
    mon.note("rate_limited", eui(1), T + 10)
    mon.note("unknown_device", None, T + 11)
    mon.ingest(eui(5), [event(1, ev.RELAY_OPEN), event(2, ev.LOAD_TRIP, 1500)], T + 12)
    s = mon.summary()
    assert s == {
        "device_events": {"load_trip": 1, "relay_open": 1},
        "headend_rejections": {"auth": 4, "rate_limited": 1, "unknown_device": 1},
        "alerts": {"auth_failure_storm": 1, "join_flood": 1},
        "devices_reporting": 1,
        "duplicates": 0,
        "aggregates": 0,
        "malformed_bodies": 0,
    }
    assert list(s["device_events"]) == sorted(s["device_events"])  # stable for reports


def test_custom_rules_and_severity_filter():
    rules = (
        Rule("any_alarm", frozenset(), 2, 1000, DEVICE, min_severity=ev.ALARM),
        Rule("relay_refusals", frozenset({"relay_refused"}), 3, 5000),
    )
    mon = SecurityMonitor(rules)
    mon.ingest(eui(1), [event(1, ev.CRC), event(2, ev.AUTH), event(3, ev.COUNTER_REUSED)], T)
    assert mon.alerts == []
    mon.ingest(eui(1), [event(4, ev.WINDOW_VIOLATION)], T + 999)
    assert kinds_of(mon) == ["any_alarm"]
    for i in range(3):
        mon.note("policy", eui(i), T + 2000)  # a relay refusal reason
    assert kinds_of(mon) == ["any_alarm"]  # "policy" is not the kind name
    for i in range(3):
        mon.ingest(eui(i + 10), [event(1, ev.RELAY_REFUSED)], T + 3000)
    assert kinds_of(mon) == ["any_alarm", "relay_refusals"]


def test_clock_and_time_going_backwards():
    now = [T]
    mon = SecurityMonitor(thresholds={"signature_failure_storm": 2}, clock=lambda: now[0])
    mon.note("bad_signature", eui(1))
    now[0] = T - 500_000  # a clock stepped back is held at the latest time
    mon.note("bad_signature", eui(2))
    assert mon.alerts[0]["first_ms"] == T
    with pytest.raises(ValueError):
        SecurityMonitor().note("auth")


def test_configuration_errors():
    with pytest.raises(ValueError):
        SecurityMonitor(thresholds={"no_such_alert": 3})
    with pytest.raises(ValueError):
        SecurityMonitor((DEFAULT_RULES[0], DEFAULT_RULES[0]))
    with pytest.raises(ValueError):
        Rule("x", frozenset(), 0)
    with pytest.raises(ValueError):
        Rule("x", frozenset(), 1, scope="galaxy")
    with pytest.raises(ValueError):
        Rule("x", frozenset(), 1, scope=DEVICE, distinct_devices=True)
    with pytest.raises(ValueError):
        SecurityMonitor().ingest(None, [], T)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SecurityMonitor().ingest(b"\x01", [], T)


def test_large_fleet_state_is_swept():
    mon = SecurityMonitor()
    t = T
    for i in range(10_000):  # one replay each from many devices, spread over hours
        mon.note("replay", eui(i), t)
        t += 2_000
    assert len(mon._windows) <= 2 * 4096
    assert mon.alerts == []
