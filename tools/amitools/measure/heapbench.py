"""`ami heapbench`: the meter's heap on 32-bit emulated boards, per deployment, beside the
unix port's figures (docs/benchmarks.md, between ``<!-- heapbench:begin -->`` and
``<!-- heapbench:end -->``).

Deployments: the firmware's .mpy files on littlefs (loaded into the heap at import), in a
ROMFS image (bytecode run in place), or frozen into the build. On each, the on-device script
``ondevice/mpheap.py`` measures the live heap after ``import ami.meter`` and after a join (the
head end's half played on the board, its own share subtracted), and the heap each phase needs
at its peak: a ballast of small bytearrays holds part of the free heap during the phase,
bisected to the largest ballast the phase survives (1 KB resolution). Then the firmware runs
again on builds whose whole GC heap is 64 KB (a joined meter and a signed command) and 16 KB
(the crypto).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from amitools import REPO
from amitools.boards import qemu
from amitools.boards.build import BOARDS, Variant, build
from amitools.boards.romfs import build_image, stage
from amitools.cliargs import check_output
from amitools.measure.bench import publish
from amitools.runtimes import compile_firmware, compiled_firmware, micropython_binary
from amitools.sim.nodedir import provisioned_node

ONDEVICE = Path(__file__).resolve().parent.parent / "ondevice"
RAMDISK = REPO / "boards" / "qemu" / "ramdisk.py"
BEGIN = "<!-- heapbench:begin -->"
END = "<!-- heapbench:end -->"
DEPLOYMENTS = ("littlefs", "romfs", "frozen")
PHASES = ("join", "command")
BUDGET = 64 * 1024
CRYPTO_BUDGET = 16 * 1024
STEP = 1024
HEAP_LINE = re.compile(r"HEAP (\{.*\})")

# Before each run, after a soft reset: the RAM disk (kept across resets), the path to the
# firmware for the deployment, and the on-device scripts.
PREPARE = """\
import sys, ramdisk
ramdisk.mount("/flash", fresh=False)
sys.path.append("/rom/tools")
{path}
del ramdisk
"""
# Copy the firmware from the image to littlefs, as `make deploy` puts it on a board.
COPY_TO_FLASH = """\
import os, ramdisk
ramdisk.mount("/flash")
def cp(src, dst):
    os.mkdir(dst)
    for name, kind, *_ in os.ilistdir(src):
        if kind == 0x4000:
            cp(src + "/" + name, dst + "/" + name)
        else:
            with open(src + "/" + name, "rb") as f, open(dst + "/" + name, "wb") as g:
                g.write(f.read())
cp("/rom/fw", "/flash/fw")
os.mkdir("/flash/meter")
"""
FW_PATH = {"littlefs": 'sys.path.append("/flash/fw")', "romfs": 'sys.path.append("/rom/fw")',
           "frozen": ""}


def bench_image() -> Path:
    """ROMFS image: firmware in fw/ (off the path), the scripts, a provisioned node."""
    node = REPO / "build" / "heapbench-node"
    shutil.rmtree(node, ignore_errors=True)
    provisioned_node(node)
    modules = {f"tools/{n}.mpy": ONDEVICE / f"{n}.py"
               for n in ("mpheap", "faultmeter", "faultengine")}
    modules["lib/ramdisk.mpy"] = RAMDISK
    files = {f"node/{p.relative_to(node)}": p for p in node.rglob("*") if p.is_file()}
    return build_image(stage("heapbench", modules, files, firmware_at="fw"))


def _parse(out: str) -> dict[str, Any]:
    found = HEAP_LINE.search(out)
    if found is None:
        raise qemu.BoardError("mpheap printed no figures:\n" + out)
    return json.loads(found.group(1))


def _run(b: qemu.QemuBoard, deployment: str, args: str) -> dict[str, Any]:
    b.soft_reset()
    b.exec(PREPARE.format(path=FW_PATH[deployment]))
    return _parse(b.exec(f"import mpheap\nmpheap.main(['mpheap', {args}])", timeout=600))


def _meter_args(phase: str | None = None, ballast: int = 0) -> str:
    extra = f", {phase!r}, {str(ballast)!r}" if phase else ""
    return f"'meter', '/rom/node', '/flash/meter'{extra}"


def _needed(b: qemu.QemuBoard, deployment: str, fig: dict[str, Any], phase: str) -> int:
    """Heap the phase needs at its peak (meter's share): the bisected largest ballast."""
    ok, bad = 0, fig[f"free_{phase}"]
    while bad - ok > STEP:
        mid = (ok + bad) // 2
        if _run(b, deployment, _meter_args(phase, mid))["failed"] is None:
            ok = mid
        else:
            bad = mid
    # Live before the phase (meter's share) plus the free heap the phase used up.
    live = fig["meter"] if phase == "join" else fig["live_command"]
    return live + fig[f"free_{phase}"] - ok


def board_figures(key: str, image: Path) -> dict[str, Any]:
    """Every deployment's figures on one board, and the 64 KB and 16 KB runs."""
    board = BOARDS[key]
    result: dict[str, Any] = {}
    for deployment in DEPLOYMENTS:
        elf = build(board, Variant(frozen=deployment == "frozen"))
        with qemu.boot(board, elf, image) as b:
            b.exec(COPY_TO_FLASH)
            fig = _run(b, deployment, _meter_args())
            if fig["failed"] is None:
                for phase in PHASES:
                    fig[f"peak_{phase}"] = _needed(b, deployment, fig, phase)
            result[deployment] = fig
    for deployment in ("romfs", "frozen"):
        elf = build(board, Variant(frozen=deployment == "frozen", heap=BUDGET))
        with qemu.boot(board, elf, image) as b:
            b.exec(COPY_TO_FLASH)
            result[f"{deployment}_64k"] = _run(b, deployment, _meter_args())
    elf = build(board, Variant(heap=CRYPTO_BUDGET))
    with qemu.boot(board, elf, image) as b:
        result["crypto_16k"] = _run(b, "romfs", "'crypto'")
    return result


def unix_figures() -> dict[str, Any]:
    """The same script on the 64-bit unix port, firmware .mpy files loaded into the heap."""
    mpy = compiled_firmware() or compile_firmware()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=REPO / "build") as tmp:
        node = provisioned_node(Path(tmp) / "node")
        work = Path(tmp) / "meter"
        work.mkdir()
        env = {"MICROPYPATH": f"{mpy}:{ONDEVICE}"}
        for what, args in (("meter", ["meter", str(node), str(work)]), ("crypto", ["crypto"])):
            proc = subprocess.run(
                [micropython_binary(), "-X", "heapsize=256K", str(ONDEVICE / "mpheap.py"), *args],
                capture_output=True, text=True, env=env, timeout=600,
            )
            out[what] = _parse(proc.stdout + proc.stderr)
    return out


def _kb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1024:.1f}"


def _failed(f: dict[str, Any]) -> str:
    return f" (out of memory in {f['failed']})" if f.get("failed") else ""


def _verdict(fig: dict[str, Any], budget: int) -> str:
    kb = budget // 1024
    if fig.get("failed"):
        return f"**fails** in {kb} KB (MemoryError in {fig['failed']})"
    return f"runs in {kb} KB"


def render(report: dict[str, Any]) -> str:
    """The Markdown section for docs/benchmarks.md."""
    unix = report["unix"]
    lines = [
        "### Heap on 32-bit boards (emulated, `ami heapbench`)",
        "",
        "Live heap in KB after `gc.collect()`: after `import ami.meter`, with the meter built "
        "from its records, after a join (session, reading queue, event log, relay), and the "
        "heap each phase needs at its peak (bisected with a ballast, 1 KB steps). The head "
        "end's half, played on the board for the join, is not counted.",
        "",
        "| runtime | deployment | import | meter | joined | peak join | peak command |",
        "|---|---|---|---|---|---|---|",
    ]
    u = unix["meter"]
    lines.append(f"| unix port, 64-bit | .mpy files | {_kb(u.get('import'))} | "
                 f"{_kb(u.get('meter'))} | {_kb(u.get('joined'))} | — | — |")
    for key, boards in report["boards"].items():
        for deployment in DEPLOYMENTS:
            f = boards[deployment]
            lines.append(
                f"| qemu-{key} | {deployment}{_failed(f)} | {_kb(f.get('import'))} "
                f"| {_kb(f.get('meter'))} "
                f"| {_kb(f.get('joined'))} | {_kb(f.get('peak_join'))} "
                f"| {_kb(f.get('peak_command'))} |"
            )
    lines += ["", "Builds whose whole GC heap is the budget (head end's half included):", ""]
    for key, boards in report["boards"].items():
        lines.append(
            f"- qemu-{key}: joined meter + signed DISCONNECT: ROMFS "
            f"{_verdict(boards['romfs_64k'], BUDGET)}, frozen "
            f"{_verdict(boards['frozen_64k'], BUDGET)}; crypto (import, ECDSA sign and verify, "
            f"ECDH, HKDF, AES-CCM; ROMFS): {_verdict(boards['crypto_16k'], CRYPTO_BUDGET)}."
        )
    c = unix["crypto"]
    lines.append(f"- unix port, 64-bit: `import ami.crypto` {_kb(c.get('import'))} KB, "
                 f"{_kb(c.get('after'))} KB live after the operations.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """The command: measure, print, optionally write the section and the JSON."""
    check_output("--json", args.json, args.force)
    check_output("--write", args.write, force=True)
    qemu.kill_on_signals()
    image = bench_image()
    report = {"unix": unix_figures(),
              "boards": {k: board_figures(k, image) for k in args.boards}}
    publish(render(report), report, args.write, args.json, BEGIN, END)
    return 0


def add_parser(sub: Any) -> None:
    """Register `ami heapbench`."""
    p = sub.add_parser("heapbench", help="the meter's heap on the emulated 32-bit boards")
    p.add_argument("--boards", nargs="+", choices=sorted(BOARDS), default=sorted(BOARDS))
    p.add_argument("--write", metavar="FILE", help="update this Markdown file's section")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=run)
