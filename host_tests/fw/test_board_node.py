"""The board runtime (ami.board): the node loop over a stream, local inputs, the watchdog,
and a node booted from a host directory; both runtimes."""

import json

from ami.crypto import p256

# First, as a board does at boot: the tables need blocks that a 256K unix-port heap no
# longer has in one piece once this module's imports are loaded.
p256.warm()

from ami.board import boot
from ami.board.node import NodeLoop
from ami.meter import UNPROVISIONED
from ami.ports.clock import VirtualClock
from ami.ports.framing import SlipDecoder, slip_encode
from ami.ports.gpio import PinButton, PinTamper
from ami.ports.storage import FileStorage, MemoryStorage
from ami.ports.transport import StreamTransport
from fwtest import Fifo, raises, remove_tree, temp_dir
from meterpair import SECRET, T0, down, meter, provision

NONE = (1 << 64) - 1


class Host:
    """The host's end of the stream: sends requests, decodes the replies."""

    def __init__(self):
        self.to_node = Fifo()
        self.from_node = Fifo()
        self.decoder = SlipDecoder(512)

    def link(self):
        return StreamTransport(self.to_node, self.from_node, 300)  # 1 KB less heap

    def request(self, op, now, data=b""):
        self.to_node.write(slip_encode(op + now.to_bytes(8, "big") + data))

    def replies(self):
        data = self.from_node.read(1 << 20)
        return self.decoder.feed(data) if data else []


def done(reply):
    """(next wakeup or None, reason or None) of a D reply."""
    assert reply[:1] == b"D"
    wake = int.from_bytes(reply[1:9], "big")
    return (None if wake == NONE else wake), (reply[9:].decode() or None)


class FakePin:
    def __init__(self, level):
        self.level = level

    def value(self):
        return self.level


class CountingDog:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def test_node_loop_speaks_the_node_protocol():
    host = Host()
    loop = NodeLoop(meter(provision(MemoryStorage())), host.link())
    host.request(b"S", T0)
    assert loop.step()
    replies = host.replies()
    assert [r[:1] for r in replies[:-1]] == [b"F"] * (len(replies) - 1) and len(replies) > 1
    wake, reason = done(replies[-1])
    assert reason is None and wake is not None and wake > T0
    host.request(b"R", T0 + 1, down(1, b"\x00"))  # a message type no meter knows
    host.request(b"R", T0 + 2, b"\x01\x02")  # no frame at all
    host.request(b"Q", T0 + 3)
    host.request(b"?", T0 + 4)
    host.request(b"T", 5)  # too short: 8 bytes of time are missing
    assert loop.step()
    replies = host.replies()
    reasons = [done(r)[1] for r in replies if r[:1] == b"D"]
    assert reasons[1] is not None and reasons[3] == "bad_request"
    info = json.loads([r for r in replies if r[:1] == b"J"][0][1:])
    assert info["state"] == "active" and info["relay"] is not None and info["queue"] >= 0
    host.request(b"X", T0 + 5)
    assert not loop.step()
    assert loop.requests == 6


def test_button_press_comes_with_the_next_request_and_tamper_acts_at_once():
    host = Host()
    button = PinButton(FakePin(1), active_low=True, use_irq=False)
    tamper = PinTamper(FakePin(0), active_high=True, use_irq=False)
    clock = VirtualClock(ticks=100)
    m = meter(provision(MemoryStorage()))
    dog = CountingDog()
    loop = NodeLoop(m, host.link(), button, tamper, dog, clock)
    host.request(b"S", T0)
    loop.step()
    host.replies()
    button.pin.level = 0  # pressed between two requests
    loop.step()
    assert host.replies() == []  # nothing happens before the host's next request
    button.pin.level = 1
    host.request(b"R", T0 + 5000, b"\x01")
    loop.step()
    assert done(host.replies()[-1])[0] == T0 + 5000  # the button's timer: due at once
    clock.advance_ms(700)
    tamper.pin.level = 1  # the enclosure opens with no request in flight
    loop.step()
    assert m.state == UNPROVISIONED
    zeroized = [e for e in m.events.events() if e[1] == (T0 + 5700) // 1000]
    assert zeroized, "tamper stamped with the host's last time plus the ticks since"
    assert dog.feeds == 4


def test_boot_builds_a_node_from_a_host_directory():
    root = temp_dir()
    try:
        flash_dir = FileStorage(root + "/flash")
        provision(flash_dir)
        secure = FileStorage(root)
        secure.write("secret.bin", SECRET)
        secure.write("seed.bin", b"bench seed")
        secure.write("config.json", b'{"reserve": 8}')
        host = Host()
        loop = boot.build(boot.host(root), host.link())
        assert loop.meter.state == "active" and secure.read("boots") == b"\x00\x00\x00\x01"
        host.request(b"S", T0)
        loop.step()
        assert done(host.replies()[-1])[1] is None
        assert loop.meter.cfg.reserve == 8
        secure.delete("secret.bin")
        raises(OSError, boot.build, boot.host(root), host.link())
    finally:
        remove_tree(root)
