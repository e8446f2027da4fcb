"""Signed critical commands (docs/protocol.md section 10).

``envelope``: the envelope codec (struct; exact lengths, every field range-checked).
``verify``: the device's checks of section 10.3, the persisted per-target command counters
and the NOTIFY announcements that a notice-requiring action must match.
"""
