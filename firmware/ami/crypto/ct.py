"""Comparison that does not stop at the first differing byte."""


def constant_time_eq(a, b):
    """True if a == b; the time taken depends on the lengths only, not on where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
