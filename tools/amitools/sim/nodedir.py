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

from amitools.outputs import secret_dir, write_secret

SEED = 7
NOW = 1_767_225_600


def provisioned_node(out: Path) -> Path:
    """Write one provisioned device, with what its head end and signer need, into `out`."""
    from amitools.office.provision import SIGNER_KEY_ID, provision
    from amitools.office.signer import hsm_kek

    prov = provision(1, NOW, seed=SEED)
    kit = prov.devices[0]
    flash = secret_dir(out / "flash")
    for name, blob in kit.image.items():
        write_secret(flash / name, blob)
    write_secret(out / "secret.bin", kit.secret)
    write_secret(out / "he.key", prov.headend.private)
    signer = crypto.aes_key_unwrap(hsm_kek(prov.hsm), prov.signer_wrapped)
    write_secret(out / "root.key", kit.root_key)
    write_secret(out / "signer.key", bytes((SIGNER_KEY_ID,)) + signer)
    return out
