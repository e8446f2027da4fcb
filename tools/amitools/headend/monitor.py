"""The head end's security monitor: correlates device events and head-end rejections.

In the manner of the security event monitor of Itron's OpenWay (an Industrial Defender
appliance that collects, correlates and analyses audit events such as authentication
failures and signature verification failures): the collection engine feeds it the events
meters send in `EVENTS` (docs/protocol.md section 11) with `ingest`, and its own rejections
(section 6 reasons) with `note`. Each `Rule` counts matching events over a sliding window,
fleet-wide or per device, as events or as distinct devices, and raises an alert when the
count reaches its threshold.

Alerts are deduplicated by episode: while matching events keep arriving above the threshold
no more than `window_ms` apart, the one open alert for that rule and scope is extended
(`last_ms`, `count`, devices); after a quiet gap a new alert starts. A device resends alarms
until acknowledged, so device events are counted once per (device, seq). A flood aggregate
(AGGREGATED severity flag) counts as `detail` events.

Sans-IO: every call takes `now_ms` (or reads the optional `clock` when it is None). Times
that go backwards are treated as the latest time seen.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ami import events as ev

FLEET = "fleet"
DEVICE = "device"
SAMPLE = 8  # devices listed per alert
DEDUP_DEPTH = 256  # seqs remembered per device (above a floor) to drop resent events
SWEEP_AT = 4096  # windows kept before ended ones are forgotten


@dataclass(frozen=True)
class Rule:
    """Raise `alert` when `threshold` matching events (or devices) fall in `window_ms`.

    An event matches if its kind (device events: the kind's name; head-end rejections: the
    reason) is in `kinds` (empty: any) and its severity is at least `min_severity`.
    """

    alert: str
    kinds: frozenset[str]
    threshold: int
    window_ms: int = 60_000
    scope: str = FLEET  # FLEET: one count for all devices; DEVICE: one per device
    distinct_devices: bool = False  # count distinct devices rather than events
    min_severity: int = ev.INFO

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.window_ms < 1:
            raise ValueError("threshold and window_ms must be positive")
        if self.scope not in (FLEET, DEVICE):
            raise ValueError(f"scope must be {FLEET!r} or {DEVICE!r}")
        if self.distinct_devices and self.scope != FLEET:
            raise ValueError("distinct_devices needs the fleet scope")

    def matches(self, kind: str, severity: int) -> bool:
        return (not self.kinds or kind in self.kinds) and severity >= self.min_severity


MINUTE = 60_000
DEFAULT_RULES: tuple[Rule, ...] = (
    # Forged commands or join responses across the fleet (OpenWay: "signature verification
    # failure").
    Rule("signature_failure_storm", frozenset({"bad_signature", "unknown_signer"}), 20),
    # One device replaying or being replayed at: frames, commands, joins.
    Rule(
        "replay_attack",
        frozenset({"replay", "counter_reused", "join_nonce_replay", "dev_nonce_replay"}),
        5,
        scope=DEVICE,
    ),
    # Frames or joins failing authentication across the fleet ("device authentication
    # failure", "message decryption failure").
    Rule(
        "auth_failure_storm",
        frozenset({"auth", "bad_certificate", "expired_certificate", "key_confirmation"}),
        20,
    ),
    Rule("join_flood", frozenset({"rate_limited", "unknown_device", "revoked"}), 20),
    # Signed commands aimed at the wrong device, time or order: someone probing with copies.
    Rule(
        "command_probe",
        frozenset({"wrong_target", "expired", "not_yet_valid", "window_violation"}),
        10,
    ),
    # Many meters opened up at once: a physical campaign.
    Rule("tamper_wave", frozenset({"tamper"}), 3, 10 * MINUTE, distinct_devices=True),
    # Many disconnects at once (Mueller: mass disconnect from a compromised operator).
    Rule("mass_disconnect", frozenset({"relay_open"}), 50, 10 * MINUTE, distinct_devices=True),
    # Any critical event on a device (tamper, lost state) is worth an operator's look.
    Rule("critical_event", frozenset(), 1, 60 * MINUTE, DEVICE, min_severity=ev.CRITICAL),
)


def _eui_key(eui: bytes | str | None) -> str | None:
    if eui is None:
        return None
    if isinstance(eui, (bytes, bytearray)):
        if len(eui) != 8:
            raise ValueError("an EUI-64 is 8 bytes")
        return bytes(eui).hex()
    if isinstance(eui, str):
        return eui.lower()
    raise TypeError("eui must be bytes, str or None")


class _Window:
    """Sliding window of (time, weight, device) with its weight sum and device counts."""

    __slots__ = ("items", "total", "devices")

    def __init__(self) -> None:
        self.items: deque[tuple[int, int, str | None]] = deque()
        self.total = 0
        self.devices: Counter[str] = Counter()

    def add(self, now: int, weight: int, device: str | None) -> None:
        self.items.append((now, weight, device))
        self.total += weight
        if device is not None:
            self.devices[device] += 1

    def prune(self, now: int, window_ms: int) -> None:
        items = self.items
        while items and items[0][0] <= now - window_ms:
            _, weight, device = items.popleft()
            self.total -= weight
            if device is not None:
                self.devices[device] -= 1
                if not self.devices[device]:
                    del self.devices[device]


class SecurityMonitor:
    """Correlates security events of a fleet into deduplicated alerts (module docstring)."""

    def __init__(
        self,
        rules: Iterable[Rule] = DEFAULT_RULES,
        *,
        thresholds: Mapping[str, int] | None = None,
        clock: Callable[[], int] | None = None,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """thresholds overrides the threshold of rules by alert name; clock gives now_ms
        when a call passes None; on_alert is called with each new alert."""
        rules = tuple(rules)
        names = {r.alert for r in rules}
        if len(names) != len(rules):
            raise ValueError("alert names must be unique")
        for name, value in (thresholds or {}).items():
            if name not in names:
                raise ValueError(f"no rule raises {name!r}")
            rules = tuple(replace(r, threshold=value) if r.alert == name else r for r in rules)
        self.rules = rules
        self._clock = clock
        self._on_alert = on_alert
        self._now = 0
        self._windows: dict[tuple[str, str | None], _Window] = {}
        # Open episode per (alert, scope): the alert and every device seen in it.
        self._open: dict[tuple[str, str | None], tuple[dict[str, Any], set[str]]] = {}
        self._sweep_at = SWEEP_AT
        self.alerts: list[dict[str, Any]] = []
        self._device_events: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()
        self._seen: dict[str, tuple[int, set[int]]] = {}  # device -> (floor, seqs above it)
        self._duplicates = 0
        self._aggregates = 0
        self._malformed = 0

    # --- input -----------------------------------------------------------------------------

    def ingest(
        self,
        eui: bytes | str,
        events: bytes | Iterable[tuple[int, int, int, int, int]],
        now_ms: int | None = None,
    ) -> int:
        """Take a device's events (decoded tuples, or an EVENTS body); returns how many
        were new. A malformed body is counted as a `malformed` rejection."""
        now = self._time(now_ms)
        device = _eui_key(eui)
        if device is None:
            raise ValueError("device events need the device's EUI")
        if isinstance(events, (bytes, bytearray, memoryview)):
            try:
                events = ev.decode_events(bytes(events))
            except ev.EventError:
                self._malformed += 1
                self._observe("malformed", ev.default_severity(ev.MALFORMED), 1, device, now)
                self._rejections["malformed"] += 1
                return 0
        new = 0
        for seq, _time, kind, severity, detail in events:
            if not self._first_time(device, seq):
                self._duplicates += 1
                continue
            new += 1
            weight = 1
            if severity & ev.AGGREGATED:
                self._aggregates += 1
                weight = max(detail, 1)
            name = ev.kind_name(kind)
            self._device_events[name] += weight
            self._observe(name, severity & ev.SEVERITY_MASK, weight, device, now)
        return new

    def note(self, reason: str, eui: bytes | str | None = None, now_ms: int | None = None) -> None:
        """Take one rejection of the head end (a section 6 reason), for a device if known."""
        now = self._time(now_ms)
        kind = ev.kind_for(reason)
        severity = ev.WARNING if kind is None else ev.default_severity(kind)
        self._rejections[reason] += 1
        self._observe(reason, severity, 1, _eui_key(eui), now)

    # --- output ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts for a report: device events by kind, head-end rejections by reason, alerts
        by kind, plus devices reporting, resent duplicates, aggregates, malformed bodies."""
        return {
            "device_events": dict(sorted(self._device_events.items())),
            "headend_rejections": dict(sorted(self._rejections.items())),
            "alerts": dict(sorted(Counter(a["kind"] for a in self.alerts).items())),
            "devices_reporting": len(self._seen),
            "duplicates": self._duplicates,
            "aggregates": self._aggregates,
            "malformed_bodies": self._malformed,
        }

    def open_alerts(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Alerts whose episode is still running (a matching event within its window)."""
        now = self._time(now_ms)
        window = {r.alert: r.window_ms for r in self.rules}
        return [a for a in self.alerts if now - a["last_ms"] <= window[a["kind"]]]

    # --- internals -------------------------------------------------------------------------

    def _time(self, now_ms: int | None) -> int:
        if now_ms is None:
            if self._clock is None:
                raise ValueError("now_ms is required without a clock")
            now_ms = self._clock()
        self._now = max(self._now, int(now_ms))
        return self._now

    def _first_time(self, device: str, seq: int) -> bool:
        floor, seen = self._seen.get(device, (0, set()))
        if seq <= floor or seq in seen:
            return False
        seen.add(seq)
        if len(seen) > 2 * DEDUP_DEPTH:
            keep = sorted(seen)[-DEDUP_DEPTH:]
            floor = keep[0] - 1
            seen = set(keep)
        self._seen[device] = (floor, seen)
        return True

    def _observe(self, kind: str, severity: int, weight: int, device: str | None, now: int):
        for rule in self.rules:
            if not rule.matches(kind, severity):
                continue
            if rule.scope == DEVICE:
                if device is None:
                    continue
                key = (rule.alert, device)
            else:
                key = (rule.alert, None)
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window()
            window.prune(now, rule.window_ms)
            window.add(now, weight, device)
            value = len(window.devices) if rule.distinct_devices else window.total
            if value >= rule.threshold:
                self._raise(rule, key, window, weight, device, now)
        if len(self._windows) > self._sweep_at:
            self._sweep(now)
            self._sweep_at = max(SWEEP_AT, 2 * len(self._windows))

    def _raise(self, rule: Rule, key, window: _Window, weight: int, device, now: int) -> None:
        episode = self._open.get(key)
        if episode is not None and now - episode[0]["last_ms"] <= rule.window_ms:
            alert, devices = episode
            alert["last_ms"] = now
            alert["count"] += weight
            if device is not None:
                _add_device(alert, devices, device)
            return
        alert = {
            "kind": rule.alert,
            "scope": FLEET if key[1] is None else key[1],
            "first_ms": now,
            "last_ms": now,
            "count": window.total,
            "devices": [],
            "device_count": 0,
        }
        devices: set[str] = set()
        for item in window.items:
            if item[2] is not None:
                _add_device(alert, devices, item[2])
        self._open[key] = (alert, devices)
        self.alerts.append(alert)
        if self._on_alert is not None:
            self._on_alert(alert)

    def _sweep(self, now: int) -> None:
        """Forget empty windows and ended episodes (a large fleet's per-device state)."""
        window_of = {r.alert: r.window_ms for r in self.rules}
        for key in list(self._windows):
            w = self._windows[key]
            w.prune(now, window_of[key[0]])
            if not w.items:
                del self._windows[key]
        for key in list(self._open):
            if now - self._open[key][0]["last_ms"] > window_of[key[0]]:
                del self._open[key]


def _add_device(alert: dict[str, Any], devices: set[str], device: str) -> None:
    if device in devices:
        return
    devices.add(device)
    alert["device_count"] = len(devices)
    if len(alert["devices"]) < SAMPLE:
        alert["devices"].append(device)
