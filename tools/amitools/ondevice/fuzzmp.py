"""Seeded mutation fuzzing of the firmware targets (`fuzztargets`), firmware dialect.

    micropython fuzzmp.py --path DIR --runs N --seed S [--targets a,b] [--corpus FILE]

Each target gets N inputs: first its seeds (`fuzztargets.seeds()`, plus the corpus file's
`target hex` lines, frames of a fleet run the host adds), then mutants of them, each made
by 1 to 4 operations (bit flip, interesting byte or 32-bit value, insert, delete, truncate,
duplicate a slice, splice with another seed) drawn from a xorshift generator, so a seed
gives the same inputs on every runtime. Prints one JSON line: per target the inputs run,
seconds and the first violations.
"""

import json
import sys
import time

INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF)
INTERESTING32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE)
MAX_LEN = 300
MAX_VIOLATIONS = 5


class Rng:
    """xorshift32: the same sequence on every runtime (no dependence on `random`)."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n if n > 0 else 0


def mutate(rng, data, pool):
    """One mutant of data: 1 to 4 operations (slices, not in-place edits: MicroPython's
    bytearray cannot delete or insert)."""
    d = bytes(data)
    for _ in range(1 + rng.below(4)):
        op = rng.below(8)
        n = len(d)
        i = rng.below(n)
        if op == 0 and n:
            d = d[:i] + bytes((d[i] ^ (1 << rng.below(8)),)) + d[i + 1:]
        elif op == 1 and n:
            d = d[:i] + bytes((INTERESTING8[rng.below(len(INTERESTING8))],)) + d[i + 1:]
        elif op == 2 and n >= 4:
            i = rng.below(n - 3)
            v = INTERESTING32[rng.below(len(INTERESTING32))]
            d = d[:i] + v.to_bytes(4, "big") + d[i + 4:]
        elif op == 3:
            d = d[:i] + bytes((rng.below(256),)) + d[i:]
        elif op == 4 and n:
            d = d[:i] + d[i + 1 + rng.below(4):]
        elif op == 5 and n:
            d = d[:i]
        elif op == 6 and n:
            j = i + 1 + rng.below(min(16, n - i))
            k = rng.below(n + 1)
            d = d[:k] + d[i:j] + d[k:]
        elif op == 7:
            other = pool[rng.below(len(pool))]
            d = d[:rng.below(n + 1)] + other[rng.below(len(other) + 1):]
    return d[:MAX_LEN]


def fuzz(target, seeds, runs, seed, violation_type):
    """(inputs run, seconds, violations) of runs inputs into target."""
    rng = Rng(seed)
    violations = []
    done = 0
    t0 = time.time()
    while done < runs:
        if done < len(seeds):
            data = seeds[done]
        else:
            data = mutate(rng, seeds[rng.below(len(seeds))], seeds)
        done += 1
        try:
            target.run(data)
        except violation_type as exc:
            if len(violations) < MAX_VIOLATIONS:
                violations.append(str(exc)[:500])
    return done, time.time() - t0, violations


def _args(argv):
    opts = {"--runs": "1000", "--seed": "1", "--targets": "", "--corpus": "", "--path": ""}
    i = 1
    while i < len(argv):
        if argv[i] not in opts or i + 1 >= len(argv):
            raise SystemExit("usage: fuzzmp.py [--path DIR] [--runs N] [--seed S] "
                             "[--targets a,b] [--corpus FILE]")
        opts[argv[i]] = argv[i + 1]
        i += 2
    return opts


def _corpus(path):
    extra = {}
    if path:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    extra.setdefault(parts[0], []).append(bytes.fromhex(parts[1]))
    return extra


def main(argv):
    opts = _args(argv)
    if opts["--path"]:
        sys.path.insert(0, opts["--path"])
    try:
        from amitools.ondevice import fuzztargets as ft
    except ImportError:  # MicroPython: the script's directory (or --path) is on the path
        import fuzztargets as ft
    from ami import crypto

    runs, seed = int(opts["--runs"]), int(opts["--seed"])
    makers = ft.targets()
    names = opts["--targets"].split(",") if opts["--targets"] else list(makers)
    seeds = ft.seeds()
    extra = _corpus(opts["--corpus"])
    report = {"runtime": sys.implementation.name, "backend": crypto.BACKEND, "seed": seed,
              "targets": {}}
    for name in names:
        pool = seeds[name] + extra.get(name, [])
        done, secs, violations = fuzz(makers[name](), pool, runs, seed, ft.Violation)
        report["targets"][name] = {"inputs": done, "seconds": round(secs, 3),
                                   "violations": violations}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv)
