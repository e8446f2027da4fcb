"""Ports: the only code in the firmware that touches files, streams, clocks, pins or the RNG.

The core is sans-IO and is handed one object per port, so the same logic runs on a board,
on the MicroPython unix port under the host harness, and on CPython in tests:

- clock: `now()`, `ticks_ms()`, `ticks_diff(a, b)`, `ticks_add(t, ms)`;
  SystemClock, VirtualClock.
- storage: named blobs, `read`, `write`, `delete`, `names`, wear counters;
  MemoryStorage, FileStorage (atomic replace via temp file and rename).
- entropy: `random_bytes(n)`; SystemEntropy (os.urandom), DeterministicEntropy (tests).
- framing: SLIP codec, `slip_encode`, `SlipDecoder` (sans-IO, used by transport).
- transport: whole frames, `send(frame)`, non-blocking `poll()`; LoopbackTransport,
  StreamTransport (SLIP over pipes, stdio, UART), `stdio_transport()`.
- gpio: Relay (`close`, `open`, `is_closed`), Button and TamperInput (`poll`, `is_active`);
  Sim* for hosts, Pin* over any pin object; `board` builds Pin* from machine.Pin.
- watchdog: `watchdog(timeout_ms)`, machine.WDT where the board has one.
- secret: the device secret from the provisioned half and machine.unique_id().

Submodules are imported on demand, so a board loads only the ports it uses.
"""
