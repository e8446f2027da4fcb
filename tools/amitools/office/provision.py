"""Provisioning: the utility CA, the head end's identity, and per device its EUI-64, a
unique AES root key, a P-256 key pair, a certificate, and a sealed key store image.

Nothing secret is written in the clear except the two roots that stand for hardware:
the head end's HSM master secret (`headend/hsm.key`) and each device's unique secret
(`devices/<eui>/secret.bin`). For a board whose chip id was read (`chip_ids`), secret.bin
is the half written at provisioning and the key store is sealed under
`ami.ports.secret.device_secret(secret, chip id)`, which only that chip derives; without
one (host nodes) secret.bin is the device secret itself. The CA and head-end private keys
are wrapped under the HSM secret, registry keys under a KEK derived from it, and each key
store image is sealed under a storage key derived from the device secret.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ami import crypto
from ami import identity as ident
from ami.crypto import p256
from ami.keyschedule import derive_storage_key
from ami.keystore import RECORD
from ami.keystore import image as keystore_image
from ami.ports.entropy import DeterministicEntropy, SystemEntropy
from ami.ports.secret import device_secret
from ami.ports.storage import MemoryStorage
from ami.store.records import RecordStore

from amitools.cliargs import UsageError, hex_list, positive_int
from amitools.headend import HeadEndIdentity, Registry
from amitools.office.signer import Signer, hsm_kek
from amitools.outputs import replace_dir, secret_dir, write_secret

EUI_PREFIX = bytes.fromhex("02414d49")  # locally administered, "AMI"
HEADEND_EUI = EUI_PREFIX + bytes.fromhex("ffff0001")
ISSUER_ID = 1
SIGNER_KEY_ID = 1
DEFAULT_VALIDITY_S = 15 * 365 * 86400  # a meter's service life


def device_eui(serial: int) -> bytes:
    """EUI-64 of the device with this serial number."""
    return EUI_PREFIX + serial.to_bytes(4, "big")


def new_private(entropy) -> bytes:
    """A P-256 private scalar in [1, n-1]."""
    while True:
        d = entropy.random_bytes(32)
        if 0 < int.from_bytes(d, "big") < p256.N:
            return d


@dataclass
class DeviceKit:
    """Everything one device receives at manufacture, and what the head end registers."""

    eui: bytes
    role: int
    secret: bytes  # the device secret, or on a board the half written at provisioning
    root_key: bytes
    public: bytes
    cert: bytes
    image: dict[str, bytes]  # storage blobs of the sealed key store, ready to copy
    chip_id: bytes | None = None  # a board's machine.unique_id(), bound into its secret

    def storage(self) -> MemoryStorage:
        """A fresh in-memory storage holding the key store image."""
        return MemoryStorage(dict(self.image))


@dataclass
class Provisioned:
    """A provisioned system: CA, head end and devices."""

    hsm: bytes
    ca_private: bytes
    ca_public: bytes
    headend: HeadEndIdentity
    signer_wrapped: bytes = b""
    signer_public: bytes = b""
    devices: list[DeviceKit] = field(default_factory=list)

    def signer(self, counters: str | Path = ":memory:") -> Signer:
        """The command signer, its key unwrapped only inside it (the HSM's role)."""
        return Signer(self.hsm, self.signer_wrapped, SIGNER_KEY_ID, counters)

    @property
    def kek(self) -> bytes:
        """Registry key-encryption key, derived from the HSM secret."""
        return crypto.hkdf_sha256(self.hsm, b"", b"AMI registry kek", 16)

    def registry(self, path: str | Path = ":memory:") -> Registry:
        """A head-end registry with every device registered."""
        reg = Registry(path, self.kek)
        for d in self.devices:
            reg.add_device(d.eui, d.role, d.cert, d.public, d.root_key)
        reg.commit()
        return reg


def provision(
    meters: int,
    now_s: int,
    seed: int | None = None,
    validity_s: int = DEFAULT_VALIDITY_S,
    role: int = ident.ROLE_METER,
    first_serial: int = 1,
    chip_ids: list[bytes] | None = None,
) -> Provisioned:
    """Create CA, head end and `meters` devices. A seed makes every key reproducible
    (for repeatable test fleets only: seeded keys are not secret). chip_ids: the boards'
    machine.unique_id() values, one per device in order (see the module docstring)."""
    if chip_ids is not None and len(chip_ids) != meters:
        raise ValueError(f"{len(chip_ids)} chip ids for {meters} devices")
    entropy = SystemEntropy() if seed is None else DeterministicEntropy(b"prov%d" % seed)
    ca_private = new_private(entropy)
    ca_public = crypto.p256_public_key(ca_private)
    he_private = new_private(entropy)
    prov = Provisioned(
        hsm=entropy.random_bytes(32),
        ca_private=ca_private,
        ca_public=ca_public,
        headend=HeadEndIdentity(HEADEND_EUI, he_private, ca_public),
    )
    signer_private = new_private(entropy)
    prov.signer_wrapped = crypto.aes_key_wrap(hsm_kek(prov.hsm), signer_private)
    prov.signer_public = crypto.p256_public_key(signer_private)
    he_public = crypto.p256_public_key(he_private)
    for i, serial in enumerate(range(first_serial, first_serial + meters)):
        chip = chip_ids[i] if chip_ids else None
        prov.devices.append(
            _device(prov, entropy, serial, role, now_s, validity_s, he_public, chip)
        )
    return prov


def _device(prov, entropy, serial, role, now_s, validity_s, he_public, chip) -> DeviceKit:
    eui = device_eui(serial)
    secret = entropy.random_bytes(32)
    root = entropy.random_bytes(16)
    private = new_private(entropy)
    public = crypto.p256_public_key(private)
    cert = ident.make_certificate(
        prov.ca_private, ISSUER_ID, role, eui, now_s - 86400, now_s + validity_s, public
    ).to_bytes()
    payload = keystore_image(
        eui, cert, prov.ca_public, prov.headend.eui, he_public, root, private,
        [(SIGNER_KEY_ID, prov.signer_public)],
    )
    storage = MemoryStorage()
    sealing = secret if chip is None else device_secret(secret, chip)
    RecordStore(storage, derive_storage_key(sealing), entropy).write(RECORD, payload)
    image = storage.snapshot()
    return DeviceKit(eui, role, secret, root, public, cert, image, chip)


def write(prov: Provisioned, out: Path) -> None:
    """Write a provisioned system to a directory (see the module docstring); every file
    readable by its owner only (0600 in 0700 directories)."""
    he_dir = secret_dir(out / "headend")
    write_secret(he_dir / "hsm.key", prov.hsm)
    wrap_key = hsm_kek(prov.hsm)
    identity = {
        "eui": prov.headend.eui.hex(),
        "ca_public": prov.ca_public.hex(),
        "issuer_id": ISSUER_ID,
        "headend_private_wrapped": crypto.aes_key_wrap(wrap_key, prov.headend.private).hex(),
        "ca_private_wrapped": crypto.aes_key_wrap(wrap_key, prov.ca_private).hex(),
        "signer_key_id": SIGNER_KEY_ID,
        "signer_public": prov.signer_public.hex(),
        "signer_wrapped": prov.signer_wrapped.hex(),
    }
    write_secret(he_dir / "identity.json", (json.dumps(identity, indent=2) + "\n").encode())
    db = he_dir / "registry.db"
    if db.exists():
        db.unlink()
    write_secret(db, b"")  # created 0600 before SQLite writes keys into it
    prov.registry(db).db.close()
    for d in prov.devices:
        dev_dir = secret_dir(out / "devices" / d.eui.hex())
        write_secret(dev_dir / "secret.bin", d.secret)
        if d.chip_id is not None:
            write_secret(dev_dir / "chip_id.hex", (d.chip_id.hex() + "\n").encode())
        for name, blob in d.image.items():
            write_secret(dev_dir / name, blob)
        write_secret(dev_dir / "certificate.bin", d.cert)


def _command(args: argparse.Namespace) -> int:
    """`ami provision`: write a provisioned system to --out, which must not exist (--force:
    replaced whole, once the new one is complete)."""
    import tempfile
    import time

    out = Path(args.out)
    if args.chip_id is not None and len(args.chip_id) != args.meters:
        raise UsageError(f"--chip-id gives {len(args.chip_id)} chip ids for --meters "
                         f"{args.meters}")
    if out.exists() and not args.force:
        raise UsageError(f"--out {args.out}: exists (--force replaces it whole)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")
    # Written beside --out and renamed into place: an interrupted run leaves no half CA.
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError:
        raise UsageError(f"--out {args.out}: cannot write there") from None
    try:
        prov = provision(args.meters, int(time.time()), seed=args.seed, chip_ids=args.chip_id)
        write(prov, tmp)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"provisioned CA, head end and {args.meters} devices into {args.out}")
    return 0


def add_parser(sub: Any) -> None:
    """Register `ami provision`."""
    p = sub.add_parser("provision", help="create CA, head end and device key stores")
    p.add_argument("--meters", type=positive_int, default=20)
    p.add_argument("--out", default="build/provision", help="a directory not yet there")
    p.add_argument("--force", action="store_true", help="replace an existing --out whole")
    p.add_argument("--seed", type=int, help="reproducible keys (tests only: not secret)")
    p.add_argument("--chip-id", metavar="HEX[,HEX...]", type=hex_list,
                   help="boards' machine.unique_id(), one per device: each key store is "
                        "sealed under a secret only that chip derives (ami.ports.secret)")
    p.set_defaults(func=_command)
