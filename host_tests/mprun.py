"""The project's test runner for the MicroPython unix port (pytest does not run there).

    micropython host_tests/mprun.py DIR [MODULE ...]

Imports every test_*.py module in DIR (or the named ones), calls each test_* function, and
ends with "micropython: N passed, N failed"; the exit status is 1 if anything failed.
"""

import gc
import os
import sys


def _modules(path):
    names = [f[:-3] for f in os.listdir(path) if f.startswith("test_") and f.endswith(".py")]
    names.sort()
    return names


def run(path, names):
    """Run the tests of the named modules; returns (passed, failed)."""
    passed = failed = 0
    for mod_name in names:
        try:
            mod = __import__(mod_name)
        except Exception as exc:
            failed += 1
            print("ERROR", mod_name, "(import)")
            sys.print_exception(exc)
            continue
        tests = [n for n in dir(mod) if n.startswith("test_")]
        tests.sort()
        for name in tests:
            try:
                getattr(mod, name)()
                passed += 1
            except Exception as exc:
                failed += 1
                print("FAIL", mod_name + "." + name)
                sys.print_exception(exc)
            gc.collect()
        del sys.modules[mod_name]
        gc.collect()
    return passed, failed


def main():
    if len(sys.argv) < 2:
        print("usage: micropython mprun.py DIR [MODULE ...]")
        sys.exit(2)
    path = sys.argv[1]
    names = sys.argv[2:] or _modules(path)
    passed, failed = run(path, names)
    print("micropython: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
