"""The board runtime: what a flashed board runs (`main.py` calls `ami.board.boot.main`).

- config: the board profiles (pin map, storage layout, transport, watchdog), chosen by
  the board's name and the modules it offers;
- flash: block devices for littlefs (a RAM region on the emulated boards) and mounting;
- node: the main loop, the node protocol of docs/protocol.md section 9 over a stream;
- boot: builds the ports from a profile and runs the loop.

The unix-port node (`ami.unixnode`) runs the same loop with a host profile.
"""
