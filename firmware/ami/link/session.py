"""Receiving a DATA frame under a session or group key (docs/protocol.md sections 1.2, 2 and
6), the one path every receiver takes once it picked the key of the frame's generation:
replay window, CCM, then the window and the persisted receive floor advance, then the message
is decoded. Nothing changes before the tag verifies; every refusal is a typed Rejected."""

from ami.crypto import AuthError
from ami.link import frame, messages


class Rejected:
    """Input refused, nothing changed: reason is its docs/protocol.md section 6 name."""

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return "Rejected(%r)" % self.reason


class Opened:
    """A DATA frame that authenticated: its counter and decoded message."""

    def __init__(self, fcnt, mtype, fields):
        self.fcnt = fcnt
        self.mtype = mtype
        self.fields = fields


def unseal(fr, key, window, floor=None):
    """Plaintext of a decoded DATA frame under key (the caller's key of the frame's
    generation), or Rejected (replay, auth). window: the key's replay window, advanced
    once the tag verifies; floor: the persisted receive floor (ami.store.counters.RxFloor)
    noted with it, or None."""
    if not window.check(fr.fcnt):
        return Rejected("replay")
    try:
        plain = frame.open_frame(key, fr)
    except AuthError:
        return Rejected("auth")
    window.accept(fr.fcnt)
    if floor is not None:
        floor.note(fr.fcnt)
    return plain


def message(fcnt, plain, down):
    """An authenticated plaintext decoded for its direction: Opened, or Rejected(malformed)."""
    try:
        mtype, fields = messages.decode(plain, down=down)
    except frame.FrameError:
        return Rejected("malformed")
    return Opened(fcnt, mtype, fields)


def open_data(fr, key, window, down, floor=None):
    """unseal(), then message(): Opened, or Rejected."""
    plain = unseal(fr, key, window, floor)
    if isinstance(plain, Rejected):
        return plain
    return message(fr.fcnt, plain, down)


class Session:
    """The device's active session: keys, transmit counter, receive floor, replay window."""

    def __init__(self, join_nonce, k_up, k_down):
        self.join_nonce = join_nonce
        self.key_gen = join_nonce & 0xFF
        self.k_up = k_up
        self.k_down = k_down
        self.tx = None
        self.rx = None
        self.window = None

    def open(self, fr):
        """A downlink under this session: Opened, or Rejected."""
        if fr.key_gen != self.key_gen:
            return Rejected("key_generation")
        return open_data(fr, self.k_down, self.window, True, self.rx)
