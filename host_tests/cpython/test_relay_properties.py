"""Stateful property test of the relay: random commands, button presses, demand samples, time
jumps and power cuts at any byte of any record write (with a reboot after each cut).

Properties, checked after every step:
- supply is never on after an unrevoked disconnect: a disconnect reported executed (or one a
  cut left persisted) not followed by an executed arm and then button, or an allowed remote
  reconnect;
- the relay never moves more than the policy allows: every close at least min_interval_s
  after the move before it, and no hour holds more than max_per_hour moves;
- the relay, the controller and the persisted record always agree (in particular right after
  a reboot), and a refusal changes nothing.
"""

from __future__ import annotations

from ami.keyschedule import derive_storage_key
from ami.ports.entropy import DeterministicEntropy
from ami.ports.flashsim import FlashSim, PowerCut
from ami.ports.gpio import SimRelay
from ami.relay import (
    ARMED,
    CONNECTED,
    DISCONNECTED,
    RECORD,
    STATE_NAMES,
    TRIPPED,
    RelayController,
    RelayPolicy,
    decode,
)
from ami.store.records import RecordStore
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

KEY = derive_storage_key(b"relay property secret")
T0 = 1767225600
HOUR = 3600

# A cut at byte k of the next record write; records are 51 + 4n bytes (n <= 10 here), so
# the range covers torn writes, the complete-but-unacknowledged write and no cut at all.
cuts = st.one_of(st.none(), st.integers(0, 100))
watts = st.sampled_from((0, 300, 999, 1000, 1001, 2500, 10**6))


class StampedRelay(SimRelay):
    """A latching relay that stamps every actual move with the virtual time."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.moves = []

    def close(self):
        if not self.is_closed():
            self.moves.append((self.clock(), "close"))
        super().close()

    def open(self):
        if self.is_closed():
            self.moves.append((self.clock(), "open"))
        super().open()


class RelayMachine(RuleBasedStateMachine):
    @initialize(
        remote=st.booleans(),
        min_interval=st.sampled_from((0, 30, 60, 600)),
        max_per_hour=st.integers(2, 10),
    )
    def setup(self, remote, min_interval, max_per_hour):
        self.policy = RelayPolicy(
            remote_reconnect=remote, min_interval_s=min_interval, max_per_hour=max_per_hour
        )
        self.now = T0
        self.flash = FlashSim()
        self.relay = StampedRelay(lambda: self.now)
        self.boots = 0
        self.counter = 0
        self.ctl = self._boot()
        self.relay.moves.clear()  # the first boot's close is not an operation
        self.disconnected = False  # an unrevoked disconnect is in force
        self.armed = False  # an arm executed since that disconnect

    # -- helpers -----------------------------------------------------------------------------

    def _boot(self):
        self.boots += 1
        records = RecordStore(self.flash, KEY, DeterministicEntropy(b"boot%d" % self.boots))
        ctl = RelayController(records, self.relay, self.policy)
        out = ctl.boot(self.now)
        assert out.status == "executed" and out.reason == "ok", out
        return ctl

    def _next_counter(self):
        self.counter += 1
        return self.counter

    def _run(self, kind, cut, call, keep_armed=False):
        """Call an input, with a power cut armed at byte `cut` of its record write (if any).

        Returns the outcome, or None if the power failed (then the meter has rebooted). An
        armed cut that did not fire is cleared unless keep_armed.
        """
        before = self.ctl.state
        limit, restore = self.ctl.limit_w, self.ctl.restore
        if cut is not None:
            self.flash.arm_cut(1, cut)
        try:
            out = call()
        except PowerCut:
            self.flash.reboot()
            self.ctl = self._boot()
            self._after_cut(kind)
            event(f"cut during {kind}: now {STATE_NAMES[self.ctl.state]}")
            return None
        if self.flash.armed and not keep_armed:  # the input wrote nothing: disarm
            self.flash.reboot()
        if out.reason != "unchanged" or kind != "demand":
            event(f"{kind}: {out.reason} {STATE_NAMES[out.state]}")
        if out.status == "refused":
            assert out.state == before == self.ctl.state, out
            assert out.op is None and out.event in ("relay_refused", None), out
        else:
            assert out.state == self.ctl.state, out
        if kind == "demand" and out.op == "open":  # a trip: only from CONNECTED under a limit
            assert before == CONNECTED and limit and out.event == "load_trip", out
        if kind == "demand" and out.op == "close":  # only an automatic restore
            assert before == TRIPPED and limit and restore == 1, out
        return out

    def _after_cut(self, kind):
        """The cut input may or may not have landed: learn which from the rebooted meter."""
        state = self.ctl.state
        if kind == "disconnect" and state == DISCONNECTED:
            self.disconnected, self.armed = True, False
        elif kind == "arm" and state == ARMED and self.disconnected:
            self.armed = True
        elif kind in ("button", "reconnect") and state == CONNECTED and self.disconnected:
            self._revoke(kind)

    def _revoke(self, kind):
        if kind == "button":
            assert self.armed, "button closed the relay without an arm after the disconnect"
        else:
            assert self.policy.remote_reconnect, "remote reconnect against the policy"
        self.disconnected = self.armed = False

    # -- rules -------------------------------------------------------------------------------

    @rule(dt=st.one_of(st.integers(0, 120), st.integers(0, 2 * HOUR)))
    def advance(self, dt):
        self.now += dt

    @rule(cut=cuts)
    def disconnect(self, cut):
        n = self._next_counter()
        out = self._run("disconnect", cut, lambda: self.ctl.disconnect(self.now, n))
        if out is not None:
            assert out.status == "executed" and out.state == DISCONNECTED, out
            assert out.counter == n
            self.disconnected, self.armed = True, False

    @rule(cut=cuts)
    def arm(self, cut):
        out = self._run("arm", cut, lambda: self.ctl.arm(self.now, self._next_counter()))
        if out is not None and out.status == "executed" and self.disconnected:
            self.armed = True

    @rule(cut=cuts)
    def reconnect(self, cut):
        out = self._run(
            "reconnect", cut, lambda: self.ctl.reconnect(self.now, self._next_counter())
        )
        if out is not None and out.status == "executed":
            assert self.policy.remote_reconnect and out.state == CONNECTED
            if self.disconnected:
                self._revoke("reconnect")

    @rule(cut=cuts)
    def button(self, cut):
        out = self._run("button", cut, lambda: self.ctl.button(self.now))
        if out is not None and out.status == "executed":
            assert out.state == CONNECTED and out.op == "close"
            if self.disconnected:
                self._revoke("button")

    @rule(
        cut=cuts,
        limit=st.sampled_from((0, 1000, 2500)),
        duration=st.sampled_from((0, 10, 60, 300)),
        restore=st.integers(0, 1),
    )
    def load_limit(self, cut, limit, duration, restore):
        n = self._next_counter()
        out = self._run(
            "limit", cut, lambda: self.ctl.set_load_limit(self.now, n, limit, duration, restore)
        )
        if out is not None:
            assert out.status == "executed" and (self.ctl.limit_w, self.ctl.restore) == (
                limit,
                restore,
            )

    @rule(cut=cuts, w=watts)
    def demand(self, cut, w):
        self._run("demand", cut, lambda: self.ctl.demand(self.now, w))

    def _samples(self, cut, w, n, step, while_open=False):
        """n samples of w watts (0 while the relay is open: it carries no load), step seconds
        apart; a power cut armed at byte `cut` of the first record write among them."""
        if cut is not None:
            self.flash.arm_cut(1, cut)
        for _ in range(n):
            if while_open and self.relay.is_closed():
                break
            self.now += step
            load = w if self.relay.is_closed() else 0
            call = lambda load=load: self.ctl.demand(self.now, load)  # noqa: E731
            if self._run("demand", None, call, True) is None:
                break
            self.check_safety()
            self.check_limits()
        if self.flash.armed:
            self.flash.reboot()

    @rule(cut=cuts, w=watts, n=st.integers(1, 20), step=st.sampled_from((1, 15, 60)))
    def load_profile(self, cut, w, n, step):
        """A run of samples at a steady load: lets trips and automatic restores happen."""
        self._samples(cut, w, n, step)

    @rule(cut=cuts, n=st.integers(1, 30))
    def idle_while_open(self, cut, n):
        """While the relay is open, a sample every minute (until it closes)."""
        self._samples(cut, 0, n, 60, while_open=True)

    @rule()
    def power_cycle(self):
        self.flash.reboot()
        self.ctl = self._boot()

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def check_safety(self):
        if self.disconnected:
            assert not self.relay.is_closed(), "supply on after an unrevoked disconnect"
            assert self.ctl.state in (DISCONNECTED, ARMED)

    @invariant()
    def check_agreement(self):
        records = RecordStore(self.flash, KEY, DeterministicEntropy(b"check"))
        persisted = decode(records.read(RECORD))
        assert persisted[0] == self.ctl.state
        assert persisted[3:6] == (self.ctl.limit_w, self.ctl.duration_s, self.ctl.restore)
        assert self.relay.is_closed() == (self.ctl.state == CONNECTED)

    @invariant()
    def check_limits(self):
        moves = self.relay.moves
        for i in range(1, len(moves)):
            if moves[i][1] == "close":
                assert moves[i][0] - moves[i - 1][0] >= self.policy.min_interval_s, moves
        times = [t for t, _ in moves]
        for t in times:
            in_hour = sum(1 for x in times if t <= x < t + HOUR)
            assert in_hour <= self.policy.max_per_hour, (self.policy.max_per_hour, moves)


RelayMachine.TestCase.settings = settings(
    max_examples=600,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_relay_state_machine = RelayMachine.TestCase
