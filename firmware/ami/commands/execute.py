"""Acting on signed commands: check, persist the counter, drive the relay, answer.

The order is the one docs/protocol.md section 10.3 requires: every check first (no state
change), then the command counter is persisted, and only then does the relay move. Every
outcome, executed or refused, is logged and answered upstream with COMMAND_RESULT.
"""

from ami import crypto
from ami import relay as R
from ami.commands import envelope as E
from ami.link import messages

# COMMAND_RESULT reason codes of the section 10.3 refusals (sent as 16 + code).
CHECK_CODES = {
    "malformed": 1, "unknown_signer": 2, "bad_signature": 3, "wrong_target": 4,
    "not_yet_valid": 5, "expired": 6, "counter_reused": 7, "window_violation": 8,
    "record_corrupt": 9,
}
REFUSED = 1
LOG_SIZE = 32


class CommandExecutor:
    """Runs verified commands against the relay; logs to the security event log."""

    def __init__(self, verifier, relay, events, lifecycle=None):
        self.verifier = verifier
        self.relay = relay
        self.events = events
        # KEY_CHANGE, REJOIN and DECOMMISSION act on the device's keys and session, which
        # the meter owns: lifecycle(envelope, now_s) -> Outcome.
        self.lifecycle = lifecycle
        # The last verdicts, (time, envelope tag, command, reason or "ok") where the tag is
        # SHA-256(envelope)[:8]: for diagnostics and the test harness (RAM only; the event
        # log is the persistent record).
        self.log = []

    def handle(self, data, now_s, group=None):
        """(refusal reason or None, COMMAND_RESULT plaintext) for one envelope; group: the
        id of the group frame it came in (None: the device's session), where a refusal by
        the checks is logged but not answered (plaintext None)."""
        reason, env = self.verifier.check(data, now_s, group)
        tag = crypto.sha256(data)[:8]
        counter = env.counter if env is not None else 0
        command = env.command if env is not None else 0
        if reason is None:
            reason = self.verifier.commit(env)  # persisted before anything acts
        if reason is not None:
            self.events.log_reason(now_s, reason)
            self._note(now_s, tag, command, reason)
            if group is not None:
                return reason, None
            code = 16 + CHECK_CODES.get(reason, 0)
            return reason, messages.encode_command_result(
                counter, command, REFUSED, self.relay.state, code
            )
        outcome = self._act(env, now_s)
        if outcome.event:
            self.events.log_reason(now_s, outcome.event)
        refusal = None if outcome.executed else outcome.reason
        self._note(now_s, tag, command, refusal or "ok")
        return refusal, messages.encode_command_result(
            counter, command, outcome.status_code, outcome.state, outcome.reason_code
        )

    def _note(self, now_s, tag, command, verdict):
        self.log.append((now_s, tag, command, verdict))
        if len(self.log) > LOG_SIZE:
            self.log.pop(0)

    def _act(self, env, now_s):
        c = env.command
        r = self.relay
        if c == E.DISCONNECT:
            return r.disconnect(now_s, env.counter)
        if c == E.ARM_RECONNECT:
            return r.arm(now_s, env.counter)
        if c == E.RECONNECT:
            return r.reconnect(now_s, env.counter)
        if c == E.LOAD_LIMIT:
            limit_w, duration_s, restore = env.args
            return r.set_load_limit(now_s, env.counter, limit_w, duration_s, restore)
        if c == E.KEY_CHANGE or c == E.REJOIN or c == E.DECOMMISSION:
            if self.lifecycle is None:
                return R.Outcome(R.REFUSED, "policy", r.state, env.counter)
            return self.lifecycle(env, now_s)
        # NOTIFY: the verifier stored the announcement when it committed.
        return R.Outcome(R.EXECUTED, "ok", r.state, env.counter)
