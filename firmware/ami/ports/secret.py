"""Device secret port: the device-unique secret the storage key comes from (ami.store.records).

On a board it binds two halves: the chip's `machine.unique_id()` and a secret written at
provisioning (into OTP, or a flash partition the record storage does not hold). A copy of
the record storage opens nothing without both; moved to another chip, even with the
provisioned half, it opens nothing either, since the chip id differs. The provisioning host
reads the chip id over the local port and seals the key store image under the same secret
(`ami provision --chip-id`). On the host a per-node secret file stands for the result (the
unix port and CPython have no chip id).
"""

from ami.crypto import hkdf_sha256

INFO = b"AMI device secret"


def chip_id():
    """machine.unique_id() as bytes, or None where the platform has none."""
    try:
        import machine
    except ImportError:
        return None
    unique_id = getattr(machine, "unique_id", None)
    return None if unique_id is None else bytes(unique_id())


def device_secret(provisioned, chip=None):
    """HKDF-SHA-256(provisioned secret, salt = chip id, "AMI device secret") (32 bytes).
    chip: the chip id (default: this chip's); ValueError if there is none."""
    if chip is None:
        chip = chip_id()
    if not chip:
        raise ValueError("no chip id: this platform has no machine.unique_id()")
    if not isinstance(provisioned, (bytes, bytearray)) or len(provisioned) < 16:
        raise ValueError("the provisioned secret must be at least 16 bytes")
    return hkdf_sha256(bytes(provisioned), bytes(chip), INFO, 32)
