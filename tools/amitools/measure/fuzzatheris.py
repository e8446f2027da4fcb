"""One coverage-guided fuzzing run of one target under atheris (libFuzzer), in its own process:

    python -m amitools.measure.fuzzatheris TARGET CORPUS_DIR [libFuzzer flags]

The firmware (`ami`), the targets and the head end are imported under atheris's coverage
instrumentation. A Violation (amitools.ondevice.fuzztargets) or any other exception escaping
a target is a crash: libFuzzer writes the input to crash-* and exits non-zero.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["ami", "amitools.ondevice.fuzztargets",
                                         "amitools.headend"]):
    from amitools.measure import fuzzheadend
    from amitools.ondevice import fuzztargets


def main(argv: list[str]) -> None:
    name = argv[1]
    makers = dict(fuzztargets.targets(), headend=fuzzheadend.HeadEndTarget,
                  headrekey=fuzzheadend.RekeyingHeadEndTarget)
    target = makers[name]()
    atheris.Setup([argv[0], *argv[2:]], target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
