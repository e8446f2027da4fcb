"""Heap of a meter on a board; runs unchanged on MicroPython boards and the unix port.

    micropython mpheap.py meter NODE_DIR WORK_DIR [PHASE BALLAST]
    micropython mpheap.py crypto

`meter`: imports ami.meter and builds G's tables (p256.warm, as a device at boot), then the
head end's half of the link (faultmeter.HeadEnd, in the
firmware dialect) joins a Meter whose records live in WORK_DIR (littlefs on a board), then a
signed DISCONNECT arrives. Figures are live heap after gc.collect(), in bytes, without the
head end's own share (measured as its import and construction): after the import, after the
join, and the free heap at the start of each phase. With PHASE ("join" or "command") and
BALLAST, small bytearrays holding BALLAST bytes of the free heap stay alive during the phase: the
host bisects it to find how much free heap each phase needs at its peak.

`crypto`: imports ami.crypto and runs an ECDSA verify, an ECDH, AES-CCM and HKDF.

Prints one JSON line; "failed" names the phase that ran out of memory, if one did.
"""

import gc
import json
import sys


def _live():
    gc.collect()
    return gc.mem_alloc()


def _ballast(n):
    """Hold about n bytes of the free heap, in small pieces: they fit into whatever holes a
    fragmented heap has, so what runs out afterwards is the phase, not the ballast."""
    hold = []
    start = gc.mem_alloc()
    while gc.mem_alloc() - start < n:
        hold.append(bytearray(48))
    return hold


def _measured(body, *args):
    """Run body(out, base, *args), which fills `out` and names its phase in out["at"]; the
    figures, with "failed" naming the phase that ran out of memory, if one did."""
    out = {"heap": gc.mem_alloc() + gc.mem_free(), "failed": None, "at": "import"}
    try:
        body(out, _live(), *args)
    except MemoryError as exc:
        out["failed"] = out["at"]
        # Where the heap ran out, for the reader (print_exception: MicroPython's traceback).
        getattr(sys, "print_exception", print)(exc)
    del out["at"]
    return out


def _meter(out, base, node_dir, work_dir, phase, ballast):
    from ami.meter import ACTIVE, Config, Meter
    from ami.relay import DISCONNECTED

    out["import"] = _live() - base
    out["at"] = "warm"
    from ami.crypto import p256

    p256.warm()  # as a device at boot: G's long-lived tables get contiguous memory
    out["warm"] = _live() - base
    out["at"] = "head end"
    before = _live()
    try:
        from amitools.ondevice import faultengine as F
        from amitools.ondevice import faultmeter as FM
    except ImportError:  # MicroPython: the scripts are on the path by themselves
        import faultengine as F
        import faultmeter as FM
    from ami.commands import envelope as C
    from ami.link import messages
    from ami.ports.entropy import DeterministicEntropy
    from ami.ports.metrology import SimMetrology
    from ami.ports.storage import FileStorage

    node = FM.load_node(node_dir)
    he = FM.HeadEnd(F.Tally("heap"), node)
    he_share = _live() - before
    out["head_end"] = he_share
    out["at"] = "setup"
    flash = FileStorage(work_dir)
    for name in flash.names():
        flash.delete(name)
    for name, blob in node.image.items():
        flash.write(name, blob)
    m = Meter(flash, node.secret, DeterministicEntropy(b"heap"), SimMetrology(b"heap"),
              Config(reserve=8))
    now = F.T0 * 1000
    he.uplinks(m.start(now))
    out["meter"] = _live() - base - he_share
    out["at"] = "join"
    out["free_join"] = gc.mem_free()
    hold = _ballast(ballast) if phase == "join" else None
    for _ in range(3):
        if m.state == ACTIVE:
            break
        now = max(now, m.next_wakeup() or now)
        for data in he.uplinks(m.tick(now)):
            now += 50
            reason, frames = m.receive(data, now)
            for ss in he.uplinks(frames):
                now += 50
                reason, frames = m.receive(ss, now)
                he.uplinks(frames)
    hold = None
    if m.state != ACTIVE:
        raise RuntimeError("no session after the join")
    out["joined"] = _live() - base - he_share
    env = C.sign(C.encode(C.DISCONNECT, C.TARGET_DEVICE, node.eui, 1, F.T0 - 3600,
                          F.T0 + 86400, node.signer_id), node.signer_private)
    downlink = he.seal(messages.encode_command(env))
    env = None
    out["at"] = "command"
    out["live_command"] = _live() - base - he_share
    out["free_command"] = gc.mem_free()
    hold = _ballast(ballast) if phase == "command" else None
    now += 1000
    reason, frames = m.receive(downlink, now)
    del hold
    he.uplinks(frames)
    if reason is not None or m.relay.state != DISCONNECTED:
        raise RuntimeError("disconnect refused: %s" % reason)


def _crypto(out, base):
    from ami import crypto as c

    out["import"] = _live() - base
    out["at"] = "operations"
    d = c.sha256(b"heap: device key")
    q = c.p256_public_key(d)
    sig = c.ecdsa_sign(d, b"message")
    if not c.ecdsa_verify(q, b"message", sig):
        raise RuntimeError("ECDSA verify failed")
    z = c.ecdh(c.sha256(b"heap: peer key"), q)
    k = c.hkdf_sha256(z, b"salt", b"info", 16)
    box = c.aes_ccm_encrypt(k, bytes(13), b"x" * 64, b"aad")
    if c.aes_ccm_decrypt(k, bytes(13), box, b"aad") != b"x" * 64:
        raise RuntimeError("AES-CCM round trip failed")
    out["after"] = _live() - base


def main(argv):
    if argv[1] == "crypto":
        out = _measured(_crypto)
    else:
        phase = argv[4] if len(argv) > 5 else None
        out = _measured(_meter, argv[2], argv[3], phase, int(argv[5]) if phase else 0)
    print("HEAP " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
