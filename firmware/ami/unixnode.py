"""A meter as a process of the MicroPython unix port: the board runtime (ami.board) with a
host profile, driven over stdin/stdout.

    micropython -m ami.unixnode NODE_DIR

NODE_DIR holds `secret.bin` (the device-unique secret), `seed.bin` (the entropy seed, so a
run is repeatable: ami.ports.entropy.seeded_entropy, with the boot counter `boots`),
`config.json` (Meter configuration), `flash/` (the node's records: its files survive a
restart, as flash survives a power cut) and `anchor/` (the anchor port, standing for a
secure element's monotonic counters: apart from `flash/`). The protocol is the board's
(ami.board.node, docs/protocol.md section 9).
"""

import sys

from ami.board import boot

if __name__ == "__main__":
    boot.serve(boot.host(sys.argv[1]))
