"""Metrology port: the meter's cumulative energy register.

`SimMetrology` stands in for a metering chip: a deterministic daily load profile of 24
hourly power levels (watts) drawn from a seed, integrated exactly in integer watt-hours.
A board with a pulse output would implement `energy_wh(now_s)` by counting pulses.
"""

import hashlib


class SimMetrology:
    """Cumulative energy of a simulated household, a pure function of the seed and time."""

    def __init__(self, seed):
        h = hashlib.sha256(b"ami metrology" + bytes(seed)).digest()
        # 24 hourly loads between 150 W and 2,700 W: a plausible household curve.
        self.watts = [150 + h[i] * 10 for i in range(24)]
        # Watt-seconds consumed from midnight to the start of each hour, and in a whole day.
        self._before = [0] * 25
        for i in range(24):
            self._before[i + 1] = self._before[i] + self.watts[i] * 3600

    def energy_wh(self, now_s):
        """Energy in Wh consumed from the Unix epoch to now_s (integer, never decreasing)."""
        days, rest = divmod(now_s, 86400)
        hour, sec = divmod(rest, 3600)
        return (days * self._before[24] + self._before[hour] + self.watts[hour] * sec) // 3600
