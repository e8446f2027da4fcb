"""pytest set-up: firmware and tools on the path, compact vector subsets generated once."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("firmware", "tools", "host_tests/fw"):
    path = os.path.join(ROOT, sub)
    if path not in sys.path:
        sys.path.insert(0, path)


def pytest_configure(config):
    out = os.environ.setdefault("AMI_VECTORS", os.path.join(ROOT, "build", "vectors"))
    from amitools.reference import vectors

    vectors.build(out)


def pytest_terminal_summary(terminalreporter):
    """Close with the same plain line as the MicroPython runner, naming the crypto backend."""
    from ami import crypto

    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    terminalreporter.write_line(f"cpython-{crypto.BACKEND}: {passed} passed, {failed} failed")
