"""Host side of the AMI endpoint emulator: provisioning, head end, radio, signer, benchmarks."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
