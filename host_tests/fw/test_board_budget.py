"""The firmware crypto must import and run inside a board's heap (run under -X heapsize=64K)."""

import gc

from ami import crypto


def test_all_primitives_in_small_heap():
    gc.collect()
    d = b"\x11" * 32
    pub = crypto.p256_public_key(d)
    sig = crypto.ecdsa_sign(d, b"disconnect")
    # Twice under the same key: the second call builds and uses the cached comb table.
    assert crypto.ecdsa_verify(pub, b"disconnect", sig)
    assert crypto.ecdsa_verify(pub, b"disconnect", sig)
    assert not crypto.ecdsa_verify(pub, b"reconnect", sig)
    peer = crypto.p256_public_key(b"\x22" * 32)
    assert crypto.ecdh(d, peer) == crypto.ecdh(b"\x22" * 32, pub)
    key = crypto.hkdf_sha256(b"ikm", b"salt", b"info", 16)
    frame = crypto.aes_ccm_encrypt(key, bytes(13), bytes(64), b"hdr")
    assert crypto.aes_ccm_decrypt(key, bytes(13), frame, b"hdr") == bytes(64)
    assert crypto.aes_key_unwrap(key, crypto.aes_key_wrap(key, key)) == key
    assert len(crypto.aes_cmac(key, b"m")) == 16
    assert crypto.crc16(b"123456789") == 0x2189
