"""Watchdog port: `feed()` once per pass of the main loop, or the board resets.

`watchdog(timeout_ms)` gives `machine.WDT` where the board has one, else None (the unix
port, the emulated boards: nothing resets a hung loop there, and the loop does not need to
know). Once started, a hardware watchdog cannot be stopped: leaving the loop (the X request)
resets the board after the timeout unless something else feeds it.
"""


def watchdog(timeout_ms):
    """machine.WDT(timeout=timeout_ms) if the board has one, else None."""
    try:
        from machine import WDT
    except ImportError:  # no machine module, or one without a watchdog
        return None
    return WDT(timeout=timeout_ms)
