"""The board's main loop: the node protocol (docs/protocol.md section 9) over a stream.

The host owns time: every request carries `now_ms`, and the meter never reads a clock of
its own. A request is `op (1) || now_ms (8) || data`: S start, R receive (data: a radio
frame), T tick, B restore button, Z tamper, Q query, X exit. The replies are `F || frame`
per frame to transmit, `J || json` for a query, then `D || next_wakeup_ms (8, all ones for
none) || reason` (empty reason: accepted).

Local inputs on a board: a press of the restore button is taken with the next request's
time (the host's clock), as if it had come with it; the tamper input acts at once, stamped
with the host's last time plus the ticks since, since zeroization must not wait for a
host. The watchdog is fed on every pass of the loop.
"""

import json

from ami.runtime import const

_NONE = b"\xff" * 8
# Idle wait between passes when inputs or a watchdog need looking at (ms).
IDLE_MS = const(20)


class NodeLoop:
    """Serves one meter over a transport (ami.ports.transport), with optional button and
    tamper inputs (ami.ports.gpio), a watchdog (ami.ports.watchdog) and a clock
    (ami.ports.clock, for the ticks between requests)."""

    def __init__(self, meter, transport, button=None, tamper=None, watchdog=None, clock=None):
        self.meter = meter
        self.transport = transport
        self.button = button
        self.tamper = tamper
        self.watchdog = watchdog
        self.clock = clock
        self.requests = 0
        self._pressed = False
        self._now = 0  # the host's last time
        self._at = clock.ticks_ms() if clock is not None else 0  # ticks when it was given

    def _host_now(self):
        if self.clock is None:
            return self._now
        return self._now + max(0, self.clock.ticks_diff(self.clock.ticks_ms(), self._at))

    def poll_inputs(self):
        """Look at the button and tamper inputs once."""
        if self.button is not None and self.button.poll():
            self._pressed = True
        if self.tamper is not None and self.tamper.poll():
            self.meter.tamper(self._host_now())

    def step(self):
        """One pass: feed the watchdog, poll the inputs, serve the requests that arrived.
        Returns False once the host said X or the stream ended."""
        if self.watchdog is not None:
            self.watchdog.feed()
        self.poll_inputs()
        for req in self.transport.poll():
            if not self.handle(req):
                return False
        return not getattr(self.transport, "eof", False)

    def handle(self, req):
        """Serve one request; False for X."""
        op = req[0:1]
        now = int.from_bytes(req[1:9], "big")
        if op == b"X":
            return False
        self.requests += 1
        self._now = now
        if self.clock is not None:
            self._at = self.clock.ticks_ms()
        meter = self.meter
        if self._pressed:
            self._pressed = False
            meter.press_button(now)
        reason = None
        out = []
        if len(req) < 9:
            reason = "bad_request"
        elif op == b"S":
            out = meter.start(now)
        elif op == b"R":
            reason, out = meter.receive(req[9:], now)
        elif op == b"T":
            out = meter.tick(now)
        elif op == b"B":
            meter.press_button(now)
        elif op == b"Z":
            meter.tamper(now)
        elif op == b"Q":
            self.transport.send(b"J" + json.dumps(meter.info()).encode())
        else:
            reason = "bad_request"
        for fr in out:
            self.transport.send(b"F" + fr)
        wake = meter.next_wakeup()
        head = _NONE if wake is None else wake.to_bytes(8, "big")
        self.transport.send(b"D" + head + (reason or "").encode())
        return True

    def run(self):
        """Serve until X or the end of the stream, idling in the transport's wait(ms)
        between passes (without one the loop spins)."""
        wait = getattr(self.transport, "wait", None)
        idle = -1 if self.button is None and self.tamper is None and self.watchdog is None \
            else IDLE_MS
        while self.step():
            if wait is not None:
                wait(idle)
