"""Host side of the AMI endpoint emulator: provisioning, head end, radio, signer, benchmarks."""

import os
from importlib.util import find_spec
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = find_spec("ami")
# The directory that holds the firmware package `ami`: firmware/ in the source tree (or an
# editable install), site-packages in a regular install.
FIRMWARE = (
    Path(_spec.origin).resolve().parent.parent if _spec and _spec.origin else REPO / "firmware"
)
# Build products (the firmware compiled with mpy-cross): build/ of the source tree; a
# per-user cache when the tools run from a regular install.
BUILD = (
    REPO / "build" if (REPO / "firmware" / "ami").is_dir()
    else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ami-endpoint-emulator"
)
