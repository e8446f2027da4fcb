"""Run every firmware test module on the MicroPython unix port, each in a fresh process.

    python host_tests/mprun_all.py MICROPYTHON HEAP DIR

Each module gets a whole heap of its own (as on a board, where a test image holds one
module's worth of code), through the project's runner host_tests/mprun.py. The closing line
sums them: "micropython: N passed, N failed"; the exit status is 1 if anything failed.
"""

import re
import subprocess
import sys
from pathlib import Path


def main() -> int:
    binary, heap, test_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    runner = Path(__file__).with_name("mprun.py")
    passed = failed = 0
    for module in sorted(p.stem for p in test_dir.glob("test_*.py")):
        proc = subprocess.run(
            [binary, "-X", f"heapsize={heap}", str(runner), str(test_dir), module],
            capture_output=True, text=True,
        )
        found = re.search(r"micropython: (\d+) passed, (\d+) failed", proc.stdout)
        if found is None:
            print(proc.stdout + proc.stderr)
            print(f"FAIL {module}: the runner did not finish (exit {proc.returncode})")
            failed += 1
            continue
        p, f = int(found.group(1)), int(found.group(2))
        passed += p
        failed += f
        if f or proc.returncode:
            print(proc.stdout + proc.stderr)
        print(f"  {module}: {p} passed, {f} failed")
    print(f"micropython: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
