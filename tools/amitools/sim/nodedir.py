"""A provisioned node directory: the fixture the unix-port scripts (link bench, power-loss
campaign) boot a meter from.

Layout: ``flash/`` (the key store image), ``secret.bin`` (the device secret), ``he.key`` (the
head end's private key), ``root.key`` (the registry's copy of the device root key) and
``signer.key`` (key id (1) | the command signer's private key (32)). Provisioned from a fixed
seed and time, so every run of a benchmark or campaign starts from the same device.
"""

from __future__ import annotations

from pathlib import Path

from ami import crypto

SEED = 7
NOW = 1_767_225_600


def provisioned_node(out: Path) -> Path:
    """Write one provisioned device, with what its head end and signer need, into `out`."""
    from amitools.office.provision import SIGNER_KEY_ID, provision
    from amitools.office.signer import hsm_kek

    prov = provision(1, NOW, seed=SEED)
    kit = prov.devices[0]
    (out / "flash").mkdir(parents=True, exist_ok=True)
    for name, blob in kit.image.items():
        (out / "flash" / name).write_bytes(blob)
    (out / "secret.bin").write_bytes(kit.secret)
    (out / "he.key").write_bytes(prov.headend.private)
    signer = crypto.aes_key_unwrap(hsm_kek(prov.hsm), prov.signer_wrapped)
    (out / "root.key").write_bytes(kit.root_key)
    (out / "signer.key").write_bytes(bytes((SIGNER_KEY_ID,)) + signer)
    return out
