"""Sealing WAL files for object storage: zstd, then AES-256-GCM with the archive's random key.

A sealed object is `MAGIC | nonce (12 bytes) | AES-GCM(zstd(content))`, the WAL file's name bound in as associated
data (an object copied under another segment's name does not open). Beside it, as object metadata that needs no
key to check: the SHA-256 of the sealed bytes (damage at rest shows without the password) and a keyed tag of the
content (HMAC-SHA256), which tells a repeated push of the same file from a different file under the same name
without decrypting anything, and without exposing a plain digest of the log.

The key is random, one per archive (see `keys`: wrapped under the destination's restic password in the archive's
`key.json`, at restic's own key-derivation cost): a stolen bucket's objects are as hard to open as its restic
repository, and every destination and job has its own key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"replica-wal\x01"
NONCE_BYTES = 12
KEY_BYTES = 32
# Level 1: a 16 MiB segment compresses in ~30 ms; higher levels cost the archiver time for little (WAL is mostly
# full-page images and zero padding).
ZSTD_LEVEL = 1


class SealBroken(Exception):
    """A sealed object does not open: wrong key, damaged bytes or another file's object."""


@dataclass(frozen=True)
class SealingKey:
    """The two keys of one destination's WAL archive: the cipher's and the content tag's."""

    cipher_key: bytes
    tag_key: bytes

    def __repr__(self) -> str:
        return "SealingKey(***)"


def content_tag(key: SealingKey, name: str, content: bytes) -> str:
    """Return the keyed tag (hex) of a WAL file's name and content."""
    return hmac.new(key.tag_key, name.encode() + b"\x00" + content, hashlib.sha256).hexdigest()


def seal(key: SealingKey, name: str, content: bytes) -> bytes:
    """Return the sealed form of a WAL file's content."""
    nonce = os.urandom(NONCE_BYTES)
    compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(content)
    return MAGIC + nonce + AESGCM(key.cipher_key).encrypt(nonce, compressed, name.encode())


def unseal(key: SealingKey, name: str, sealed: bytes) -> bytes:
    """Return the content sealed by `seal` under the same name and key. Raises SealBroken."""
    if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + NONCE_BYTES:
        raise SealBroken("not a sealed WAL object")
    nonce = sealed[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        compressed = AESGCM(key.cipher_key).decrypt(nonce, sealed[len(MAGIC) + NONCE_BYTES :], name.encode())
    except InvalidTag:
        raise SealBroken("authentication failed (wrong password, damaged object or another file's object)") from None
    try:
        return zstandard.ZstdDecompressor().decompress(compressed)
    except zstandard.ZstdError as error:
        raise SealBroken(f"authenticated but not decompressible: {error}") from None
