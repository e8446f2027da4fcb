"""`ami hil`: one board meter in the fleet's scenarios (hardware in the loop).

The board runs the firmware's board runtime (`main.py`, ami.board) and speaks the node
protocol (docs/protocol.md section 9) over its UART or USB serial port; the host bridges it
onto the virtual radio as the last meter of a small fleet, the command campaign's victim:
it joins the head end, reports readings, executes a signed disconnect, an arm and a local
restore (the button, as a B request), is power-cycled, and the attacker's replays,
forgeries and rogue joins are tried on it and on the others. The report has the keys of
`ami demo`'s, plus `board`.

Targets:
- `--qemu an385|an500`: an emulated MPS2 board (amitools.boards), started and killed by this
  command (also on Ctrl-C and SIGTERM). Provisioned over the raw REPL into the littlefs
  partitions in its spare RAM (ami.board.config.MPS2_DATA, MPS2_SECURE); a power cycle stops
  the CPU from QEMU's monitor, saves those partitions (`pmemsave`) and boots a new QEMU with
  them loaded, as flash survives a power cut.
- `--port /dev/ttyACM0`: a real board with the firmware and main.py on it (`make deploy`);
  provisioned over the raw REPL (with its chip id bound into the device secret); a power
  cycle is a soft reset.
- `--unix`: the unix port (`ami.unixnode`, the same board runtime with a host profile).
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ami.board import config as board_config
from ami.commands import envelope as E
from ami.ports.framing import slip_encode
from ami.relay import STATE_NAMES

from amitools.cliargs import UsageError, check_output, positive_int, probability
from amitools.office.provision import DeviceKit, provision
from amitools.outputs import write_result
from amitools.scenarios.demo import summary, verdict
from amitools.sim.fleet import T0_MS, DemoOptions, Fleet, run_fleet
from amitools.sim.mpnode import MicroPythonMeter, NodeClient
from amitools.sim.powercut import PowerCuts

# A board answers within this or is taken for dead (a join's ECDH and ECDSA on an emulated
# Cortex-M3 take seconds).
REPLY_TIMEOUT_S = 60.0
SERIAL_TIMEOUT_S = 30.0
FLASH_START = board_config.MPS2_DATA[1]
FLASH_SIZE = board_config.MPS2_SECURE[1] + board_config.MPS2_SECURE[2] - FLASH_START
COMMAND_NAMES = {E.DISCONNECT: "disconnect", E.ARM_RECONNECT: "arm_reconnect",
                 E.RECONNECT: "reconnect", E.LOAD_LIMIT: "load_limit", E.NOTIFY: "notify",
                 E.KEY_CHANGE: "key_change", E.FIRMWARE_ACTIVATE: "firmware_activate",
                 E.REJOIN: "rejoin", E.DECOMMISSION: "decommission"}


def _hex_files(files: dict[str, bytes]) -> str:
    return "{" + ", ".join(f"{n!r}: bytes.fromhex({b.hex()!r})" for n, b in files.items()) + "}"


class SerialMeter(NodeClient):
    """A board serving the node protocol on a serial line, driven through mpremote's raw
    REPL to provision it and start its loop. Subclasses say how the board is powered."""

    profile = ""  # ami.board.config profile name of the board
    seeded = False  # provisioned with an entropy seed: boards without a hardware RNG

    def __init__(self, address: bytes) -> None:
        NodeClient.__init__(self)
        self.address = address
        self.link: Any = None  # mpremote SerialTransport

    def _connect(self, device: str, soft_reset: bool) -> None:
        from mpremote.transport_serial import SerialTransport

        self.link = SerialTransport(device, timeout=SERIAL_TIMEOUT_S)
        self.link.serial.timeout = SERIAL_TIMEOUT_S
        self.exit()  # a loop already serving (main.py at boot) gives the REPL back
        time.sleep(0.2)
        self.link.enter_raw_repl(soft_reset=soft_reset, timeout_overall=SERIAL_TIMEOUT_S)

    def exec(self, code: str) -> str:
        """Run code on the board over the raw REPL; its output (RuntimeError if it raised)."""
        out, err = self.link.exec_raw(code, timeout=REPLY_TIMEOUT_S)
        if err:
            raise RuntimeError(f"board {self.address.hex()}: {err.decode(errors='replace')}")
        return out.decode(errors="replace")

    def load(self, image: dict[str, bytes], secret: bytes, seed: bytes, cfg: dict) -> None:
        """Factory-provision the board (ami.board.boot.provision), then soft-reset it."""
        secure = {"secret.bin": secret, "config.json": json.dumps(cfg).encode()}
        if self.seeded:  # no RNG on the board: the seeded generator (docs/boards.md)
            secure["seed.bin"] = seed
        self.exec(
            "from ami.board import boot, config\n"
            f"boot.provision(config.profile({self.profile!r}), {_hex_files(secure)}, "
            f"{_hex_files(image)})\n"
        )
        self.link.enter_raw_repl(soft_reset=True, timeout_overall=SERIAL_TIMEOUT_S)

    def serve(self) -> None:
        """Start the board's main loop; from here the line carries the node protocol."""
        self.link.exec_raw_no_follow(f"from ami.board.boot import main\nmain({self.profile!r})")
        self._decoder.reset()

    def _write(self, data: bytes) -> None:
        self.link.serial.write(data)

    def _read(self) -> bytes:
        ser = self.link.serial
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            chunk = ser.read(max(1, ser.in_waiting))
            if chunk:
                return chunk
        raise RuntimeError(f"board {self.address.hex()} silent for {REPLY_TIMEOUT_S} s")

    def _close_link(self) -> None:
        if self.link is not None:
            try:
                self.link.serial.close()
            except OSError:
                pass
            self.link = None


class Monitor:
    """QEMU's human monitor on a unix socket: stop the CPU, save memory, quit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock: socket.socket | None = None

    def _prompt(self) -> str:
        assert self.sock is not None
        out = b""
        while not out.endswith(b"(qemu) "):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("QEMU monitor closed")
            out += chunk
        return out.decode(errors="replace")

    def command(self, line: str) -> str:
        """Run one monitor command; its output."""
        if self.sock is None:
            deadline = time.monotonic() + SERIAL_TIMEOUT_S
            while True:
                try:
                    self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self.sock.settimeout(SERIAL_TIMEOUT_S)
                    self.sock.connect(str(self.path))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self._prompt()
        self.sock.sendall(line.encode() + b"\n")
        return self._prompt()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class QemuMeter(SerialMeter):
    """An emulated MPS2 board under QEMU (amitools.boards), its flash in RAM."""

    profile = "mps2"
    seeded = True

    def __init__(self, address: bytes, board: str, workdir: Path,
                 cuts: PowerCuts | None = None) -> None:
        from amitools.boards import build, romfs

        SerialMeter.__init__(self, address)
        self.cuts = cuts
        self.board = build.BOARDS[board]
        self.firmware = build.build(self.board)
        self.romfs = romfs.firmware_image()
        self.workdir = workdir
        self.flash_image = workdir / "flash.img"
        self.qemu: Any = None
        self.monitor: Monitor | None = None

    def power_on(self, flash: Path | None = None) -> None:
        """Boot QEMU (with a saved flash image loaded, if given) and enter its raw REPL."""
        from amitools.boards import qemu

        sock = self.workdir / f"monitor{self.reboots}.sock"
        extra = ("-monitor", f"unix:{sock},server=on,wait=off")
        if flash is not None:
            extra += ("-device", f"loader,file={flash},addr={FLASH_START:#x},force-raw=on")
        self.qemu = qemu.start(self.board, self.firmware, self.romfs, extra)
        self.monitor = Monitor(sock)
        self._connect(self.qemu.port, soft_reset=False)

    def _call(self, op: bytes, now_ms: int, data: bytes = b"") -> tuple[str | None, list[bytes]]:
        cuts = self.cuts
        delay = cuts.arm(op) if cuts is not None else None
        if delay is None:
            t = time.perf_counter()
            reason, frames = SerialMeter._call(self, op, now_ms, data)
            if cuts is not None:
                cuts.took(op, time.perf_counter() - t)
                cuts.uplinks(frames)
            return reason, frames
        assert cuts is not None
        before = self.info()
        self._write(slip_encode(op + now_ms.to_bytes(8, "big") + data))
        time.sleep(delay)
        self.reboot()  # the CPU stops wherever it is, the flash as it was then
        frames = SerialMeter._call(self, b"S", now_ms)[1]
        cuts.after_cut(op, before, self.info())
        cuts.uplinks(frames)
        return "power_cut", frames

    def save_flash(self, path: Path) -> None:
        """Freeze the CPU where it is and save the flash partitions to path."""
        assert self.monitor is not None
        self.monitor.command("stop")
        self.monitor.command(f'pmemsave {FLASH_START:#x} {FLASH_SIZE:#x} "{path}"')

    def power_off(self) -> None:
        """Kill QEMU (the flash is lost unless saved first)."""
        self._close_link()
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.qemu is not None:
            self.qemu.close()
            self.qemu = None

    def reboot(self) -> None:
        """Power cycle: the flash partitions saved, QEMU killed and booted again on them."""
        self.save_flash(self.flash_image)
        self.power_off()
        self.reboots += 1
        self.power_on(self.flash_image)
        self.serve()

    def close(self) -> None:
        self.power_off()


class PortMeter(SerialMeter):
    """A real board on a serial port, with the firmware and main.py installed."""

    def __init__(self, address: bytes, device: str, profile: str) -> None:
        SerialMeter.__init__(self, address)
        self.device = device
        self.profile = profile

    def power_on(self) -> None:
        self._connect(self.device, soft_reset=True)

    def chip_id(self) -> bytes | None:
        """The board's machine.unique_id(), bound into its device secret; None if none."""
        out = self.exec(
            "import machine\nf = getattr(machine, 'unique_id', None)\n"
            "print(f().hex() if f else '')\n"
        ).strip()
        return bytes.fromhex(out) if out else None

    def reboot(self) -> None:
        """A soft reset: RAM lost, flash kept (a real power cut needs a relay on VBUS)."""
        self.exit()
        time.sleep(0.2)
        self.link.enter_raw_repl(soft_reset=True, timeout_overall=SERIAL_TIMEOUT_S)
        self.reboots += 1
        self.serve()

    def close(self) -> None:
        if self.link is not None:
            self.exit()  # leave the board at its REPL
        self._close_link()


@dataclass
class HilOptions:
    target: str  # "qemu-an385", "qemu-an500", "port:/dev/...", "unix"
    meters: int = 4
    seed: int = 1
    loss: float = 0.05
    hours: int = 6
    power_cuts: float = 0.0  # emulated boards: the chance that a request is cut


def _board_factory(opts: HilOptions, workdir: Path, holder: list[NodeClient],
                   cuts: PowerCuts | None,
                   port_meter: PortMeter | None) -> Callable[[DeviceKit, bytes, dict], NodeClient]:
    def make(kit: DeviceKit, seed: bytes, cfg: dict) -> NodeClient:
        node: NodeClient
        if opts.target == "unix":
            node = MicroPythonMeter(kit.eui, workdir / "board", kit.image, kit.secret, seed, cfg)
        elif opts.target.startswith("qemu-"):
            qnode = QemuMeter(kit.eui, opts.target[5:], workdir, cuts)
            holder.append(qnode)
            qnode.power_on()
            qnode.load(kit.image, kit.secret, seed, cfg)
            qnode.serve()
            node = qnode
        else:
            assert port_meter is not None
            port_meter.address = kit.eui
            port_meter.load(kit.image, kit.secret, seed, cfg)
            port_meter.serve()
            node = port_meter
        if node not in holder:
            holder.append(node)
        return node

    return make


def board_summary(node: NodeClient, target: str) -> dict[str, Any]:
    """What the board meter itself did, from its queries: state, relay, the commands it
    executed or refused, its security events."""
    info = node.last_info
    executed: dict[str, int] = {}
    refused: dict[str, int] = {}
    for _t, _tag, command, result in sorted(node.verdicts):
        into = executed if result == "ok" else refused
        name = COMMAND_NAMES.get(command, str(command))
        into[name] = into.get(name, 0) + 1
    relay = info.get("relay")
    return {
        "target": target,
        "eui": node.address.hex(),
        "state": info.get("state"),
        "relay": STATE_NAMES[relay] if relay is not None else None,
        "readings_queued": info.get("queue"),
        "commands_executed": executed,
        "commands_refused": refused,
        "events": info.get("events", {}),
        "requests": node.requests,
        "power_cycles": node.reboots,
    }


def board_verdict(board: dict[str, Any], power_cuts: bool) -> list[str]:
    """The board-specific reasons a run failed. Under power cuts the board must end active,
    but need not have executed the campaign's commands: a cut while one is delivered loses
    it as a lost radio frame would, and the head end does not send a command twice."""
    problems = []
    if board["state"] != "active":
        problems.append(f"board meter ended {board['state']}, not active")
    if power_cuts:
        return problems
    for name in ("disconnect", "arm_reconnect"):
        if not board["commands_executed"].get(name):
            problems.append(f"board meter never executed the signed {name}")
    if not board["events"].get("relay_close"):
        problems.append("board meter never closed its relay (local restore)")
    return problems


def run_hil(opts: HilOptions, port_meter: PortMeter | None = None) -> dict[str, Any]:
    """Run the fleet scenarios with the board as the campaign's victim; the report."""
    t = time.perf_counter()
    holder: list[NodeClient] = [port_meter] if port_meter is not None else []
    cuts = PowerCuts(opts.power_cuts, opts.seed) if opts.power_cuts else None
    with tempfile.TemporaryDirectory(prefix="ami-hil-") as tmp:
        workdir = Path(tmp)
        try:
            chips = None
            if port_meter is not None:
                chip = port_meter.chip_id()
                chips = [None] * (opts.meters - 1) + [chip] if chip else None
            demo = DemoOptions(meters=opts.meters, micropython=0, seed=opts.seed,
                               loss=opts.loss, hours=opts.hours)
            prov = provision(opts.meters, T0_MS // 1000, seed=opts.seed,
                             chip_ids=chips)  # type: ignore[arg-type]
            make = _board_factory(opts, workdir, holder, cuts, port_meter)
            fleet = Fleet(demo, workdir, prov, board=make)
            report = run_fleet(fleet)
        finally:
            for node in holder:
                node.close()
    report.pop("_walls")
    report["workers"] = 1
    report["board"] = board_summary(holder[-1], opts.target)
    if cuts is not None:
        report["power_cuts"] = cuts.report()
    report["wall_seconds"] = round(time.perf_counter() - t, 2)
    return report


def main(args: argparse.Namespace) -> int:
    """Entry point of `ami hil`."""
    if args.power_cuts and not args.qemu:
        raise UsageError("--power-cuts needs an emulated board (--qemu)")
    check_output("--json", args.json, args.force)
    port_meter = None
    if args.qemu:
        from amitools.boards import qemu

        qemu.kill_on_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: every emulator is killed
        target = "qemu-" + args.qemu
    elif args.port:
        target = "port:" + args.port
        port_meter = PortMeter(b"", args.port, args.profile)
        port_meter.power_on()
        if not args.profile:
            port_meter.profile = port_meter.exec(
                "from ami.board import config\nprint(config.detect())\n").strip()
    else:
        target = "unix"
    opts = HilOptions(target=target, meters=args.meters, seed=args.seed, loss=args.loss,
                      hours=args.hours, power_cuts=args.power_cuts)
    try:
        report = run_hil(opts, port_meter)
    finally:
        if args.qemu:
            # Whatever path a boot took (a power cycle cut short, a failed provisioning),
            # no emulator outlives the command.
            qemu.kill_all()
    print(summary(report))
    b = report["board"]
    print(f"board ({b['target']}): {b['state']}, relay {b['relay']}, executed "
          f"{b['commands_executed']}, refused {b['commands_refused']}, {b['requests']} "
          f"requests, {b['power_cycles']} power cycle(s)")
    problems = verdict(report) + board_verdict(b, "power_cuts" in report)
    if "power_cuts" in report:
        pc = report["power_cuts"]
        print(f"power cuts: {pc['cuts']} {pc['by_request']}, {pc['frames_checked']} frames "
              f"checked, {pc['violation_count']} violation(s)")
        for v in pc["violations"]:
            print("  " + v)
        problems += [f"power cuts: {v}" for v in pc["violations"]]
    if args.json:
        write_result(args.json, json.dumps(report, indent=2) + "\n")
    print("RESULT:", "PASS" if not problems else "FAIL: " + "; ".join(problems))
    return 1 if problems else 0


def add_parser(sub: Any) -> None:
    """Register `ami hil`."""
    p = sub.add_parser("hil", help="one board meter (emulated, real or unix port) in the "
                                   "fleet's scenarios")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--qemu", choices=("an385", "an500"), help="an emulated MPS2 board")
    where.add_argument("--port", metavar="DEVICE", help="a real board's serial port")
    where.add_argument("--unix", action="store_true", help="the MicroPython unix port")
    p.add_argument("--profile", default="",
                   help="board profile of a --port board (default: what the board detects)")
    p.add_argument("--meters", type=positive_int, default=4,
                   help="fleet size, the board included")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loss", type=probability, default=0.05, help="radio frame loss per link")
    p.add_argument("--hours", type=positive_int, default=6, help="simulated reporting time")
    p.add_argument("--power-cuts", type=probability, default=0.0, metavar="RATE",
                   help="with --qemu: cut the power during this share of the requests")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=main)
