"""Typed results of handling an input: an input refused is a Rejected naming why; each
producer defines the outcome of an input it accepted (join.JoinAccepted, session.Opened...)."""


class Rejected:
    """Input refused, nothing changed: reason is its docs/protocol.md section 6 name."""

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return "Rejected(%r)" % self.reason
