"""The power-loss campaign over every persistent store; runs unchanged on MicroPython and
CPython (the firmware dialect).

    micropython faultcampaign.py [--step N] [--stores a,b] [--node DIR] [--path DIR]

prints one JSON line; from CPython, `run(step=1, stores=None)` returns the same dict:
`{runtime, backend, step, cut_points, torn_writes, reboots, violations: [..], by_store:
{STORE: {cut_points, torn_writes, reboots, writes, violations, seconds}}, seconds}`.

Method (docs/faults.md): per store scenario, a deterministic workload runs once on a FlashSim
from a fixed start image and its writes are logged. Then for every cut point (every write,
every step-th byte of it and always its last byte) the workload runs again from the same
image with the power cut armed there; after the cut the flash reboots, the store (or the
whole node) is opened from flash as a boot does, the invariants are checked against a model
of what was ACKNOWLEDGED (an operation is acknowledged once its call returned), and the
workload carries on to its end, where one more power cycle is checked.

The engine is amitools.ondevice.faultengine; the scenarios, one small function each, are in
amitools.ondevice.faultstores (keystore, counters, join_nonces, relay, events, commands, queue) and
amitools.ondevice.faultmeter (meter), each with a registry SCENARIOS name -> function: separate
modules, so that a MicroPython process holds only the code of the stores it runs. A NODE_DIR
(amitools.sim.nodedir) provisions the meter as the link benchmark does; without one the
meter scenario provisions a device with firmware code alone. `--path DIR` puts a directory
of these modules precompiled with mpy-cross first on the path (amitools.measure.faults does so).

Heap (MicroPython unix port): the seven store scenarios run in 256K, one process per store
or all together; the meter scenario, which holds the head end's half of the link beside the
meter, needs about 272K: amitools.measure.faults gives it 320K (docs/faults.md).
"""

import gc
import json
import sys

from ami import crypto
from ami.ports.clock import SystemClock

_clock = SystemClock()  # the firmware's clock port: ticks on either runtime

USAGE = "usage: faultcampaign.py [--step N] [--stores a,b] [--node DIR] [--path DIR]"
ORDER = ("keystore", "counters", "join_nonces", "relay", "events", "commands", "queue", "meter")
# The module holding each store's scenario.
MODULES = {"meter": "faultmeter"}
for _name in ORDER[:-1]:
    MODULES[_name] = "faultstores"


# Firmware modules, leaves first: imported one at a time with a collection in between
# before a scenario module (which imports them all at once), so that a small MicroPython heap
# is left in few large holes rather than many small ones (a table or a page buffer needs a
# contiguous block).
FIRMWARE = (
    "ami.crypto", "ami.link.frame", "ami.link.messages", "ami.store.records", "ami.ports.storage",
    "ami.ports.flashsim", "ami.ports.anchor", "ami.keystore", "ami.events", "ami.relay",
    "ami.commands.envelope", "ami.commands.verify", "ami.commands.execute", "ami.link.join",
    "ami.store.counters", "ami.link.groups", "ami.link.replay", "ami.readings", "ami.meter",
)


def _settle():
    for name in FIRMWARE:
        try:
            __import__(name)
        except ImportError:  # a module this firmware version does not have
            pass
        gc.collect()


def _load(mod):
    try:
        return __import__("amitools.ondevice." + mod, None, None, ["SCENARIOS"])
    except ImportError:  # MicroPython: the script's directory is on the path
        return __import__(mod)


def module(name):
    """The scenario module of a store (imported on first use)."""
    return _load(MODULES[name])


def scenario(name):
    """The scenario function of a store: f(tally, step) (the meter's also takes node)."""
    return module(name).SCENARIOS[name]


def run(step=1, stores=None, node=None, max_listed=None):
    """The campaign over `stores` (names, default all) cutting every step-th byte; node: a
    NODE_DIR path, a faultmeter.Node, or None; at most max_listed violations listed per
    store (all counted; default faultengine.MAX_LISTED). The report as a dict."""
    _settle()
    engine = _load("faultengine")
    if max_listed is None:
        max_listed = engine.MAX_LISTED
    if not isinstance(step, int) or step < 1:
        raise ValueError("step must be an int >= 1")
    names = ORDER if stores is None else tuple(stores)
    for name in names:
        if name not in MODULES:
            raise ValueError("unknown store %r (stores: %s)" % (name, ", ".join(ORDER)))
    report = {
        "runtime": sys.implementation.name,
        "backend": crypto.BACKEND,
        "step": step,
        "cut_points": 0,
        "torn_writes": 0,
        "reboots": 0,
        "violations": [],
        "by_store": {},
    }
    start = _clock.ticks_ms()
    for name in names:
        t = engine.Tally(name, max_listed)
        module(name)
        gc.collect()
        t0 = _clock.ticks_ms()
        if name == "meter":
            mod = module(name)
            mod.scenario_meter(t, step, mod.load_node(node) if isinstance(node, str) else node)
        else:
            scenario(name)(t, step)
        report["by_store"][name] = t.report(_clock.ticks_diff(_clock.ticks_ms(), t0))
        report["cut_points"] += t.cut_points
        report["torn_writes"] += t.torn_writes
        report["reboots"] += t.reboots
        report["violations"] += t.messages
        if t.violations > len(t.messages):
            report["violations"].append("%s: %d more violations not listed" % (
                name, t.violations - len(t.messages)))
        t = None
        gc.collect()
    report["seconds"] = _clock.ticks_diff(_clock.ticks_ms(), start) / 1000
    return report


def main(argv):
    from ami.crypto import p256

    p256.warm()  # first, as a device at boot: the long-lived tables get contiguous memory
    step = 1
    stores = None
    node = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--step", "--stores", "--node", "--path") and i + 1 < len(argv):
            value = argv[i + 1]
            if arg == "--step":
                step = int(value)
            elif arg == "--stores":
                stores = [s for s in value.split(",") if s]
            elif arg == "--node":
                node = value
            else:  # the campaign's modules precompiled (mpy-cross): searched first
                sys.path.insert(0, value)
            i += 2
        else:
            print(USAGE)
            sys.exit(2)
    emit(run(step, stores, node))


def emit(report):
    """Print the report as one JSON line, piece by piece: one string of it all would need a
    block as large as the line, which a fragmented small heap may not have."""
    write = sys.stdout.write
    sep = "{"
    for key in report:
        write(sep + json.dumps(key) + ": ")
        sep = ", "
        value = report[key]
        if isinstance(value, list):
            inner = "["
            for item in value:
                write(inner + json.dumps(item))
                inner = ", "
            write("[]" if inner == "[" else "]")
        else:
            write(json.dumps(value))
    write("}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
