"""The data key of one WAL archive: random, wrapped under the repository password, cached unwrapped locally.

Each archive (one job at one destination) has its own random key (`SealingKey`, the cipher's and the content tag's),
stored beside the segments as `key.json`: the scrypt parameters and salt, and the key wrapped with AES-GCM under
the key scrypt derives from the destination's restic password. scrypt costs about what restic's own key derivation
costs (~0.5 s, 128 MiB), so the archive is no cheaper a way to guess the password than the repository. A push
must not pay that each time (PostgreSQL runs one per segment): the unwrapped key is cached in a 0600 file under
the state directory, named after the job and the digest of the key file it came from; a cache that cannot be
written or read costs one derivation per process, nothing else. The key file carries a check value (a keyed hash
of the job's name under the key): a cached key, or an unwrapped one, that does not produce it is not the archive's
key, so a damaged cache costs a derivation instead of sealing segments nobody else can open.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from replica.files import write_atomically
from replica.wal.sealing import KEY_BYTES, NONCE_BYTES, SealingKey

KEY_FILE = "key.json"
KEY_FORMAT = 1
# restic's own strength (its key files use scrypt with N=2^15..2^17, r=8, p=1, ~0.5 s): measured ~0.47 s here.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
# A key file asking for less is refused: whoever can write to the bucket could otherwise plant a key file that
# makes the password cheap to guess (the key itself cannot be planted: it must unwrap under the password).
MINIMUM_SCRYPT_N = 2**17
SALT_BYTES = 16
WRAP_LABEL = b"replica wal key v1\x00"
CHECK_LABEL = b"replica wal key check v1\x00"
CACHE_FOLDER = "wal-keys"


class KeyFileRefused(Exception):
    """A key file that does not open: wrong password, damaged, weak parameters or another job's key file."""


def _scrypt(password: SecretStr, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.get_secret_value().encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 1024 * 1024, dklen=32
    )


def new_key_file(password: SecretStr, job: str) -> tuple[bytes, SealingKey]:
    """Return a new random archive key and its key file (JSON bytes), wrapped under `password` for `job`."""
    material = os.urandom(2 * KEY_BYTES)
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    wrapping = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    wrapped = AESGCM(wrapping).encrypt(nonce, material, WRAP_LABEL + job.encode())
    document = {
        "format": KEY_FORMAT,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "nonce": _b64(nonce),
        "wrapped_key": _b64(wrapped),
    }
    key = SealingKey(material[:KEY_BYTES], material[KEY_BYTES:])
    document["check"] = key_check(key, job)
    return json.dumps(document, sort_keys=True).encode(), key


def key_check(key: SealingKey, job: str) -> str:
    """Return the check value of an archive key for `job` (hex): what tells the archive's key from any other."""
    return hmac.new(key.cipher_key + key.tag_key, CHECK_LABEL + job.encode(), hashlib.sha256).hexdigest()


def _checks(key_file: bytes, key: SealingKey, job: str) -> bool:
    """Return True when `key` produces the check value the key file records."""
    try:
        recorded = json.loads(key_file).get("check")
    except (ValueError, AttributeError):
        return False
    return isinstance(recorded, str) and hmac.compare_digest(recorded, key_check(key, job))


def open_key_file(content: bytes, password: SecretStr, job: str) -> SealingKey:
    """Return the archive key a key file wraps. Raises KeyFileRefused when it does not open with `password` for
    `job`, is not a key file, or asks for a derivation weaker than MINIMUM_SCRYPT_N."""
    try:
        document: dict[str, Any] = json.loads(content)
        kdf = document["kdf"]
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        salt, nonce, wrapped = _unb64(kdf["salt"]), _unb64(document["nonce"]), _unb64(document["wrapped_key"])
    except (ValueError, KeyError, TypeError) as error:
        raise KeyFileRefused(f"not a WAL key file ({error})") from None
    if document.get("format") != KEY_FORMAT or kdf.get("name") != "scrypt":
        raise KeyFileRefused(f"unknown key file format {document.get('format')!r}")
    if n < MINIMUM_SCRYPT_N or r < SCRYPT_R or p < 1:
        raise KeyFileRefused(f"its scrypt parameters (N={n}, r={r}, p={p}) are weaker than replica's; refused")
    try:
        material = AESGCM(_scrypt(password, salt, n, r, p)).decrypt(nonce, wrapped, WRAP_LABEL + job.encode())
    except (InvalidTag, ValueError):
        raise KeyFileRefused("it does not open (wrong password, damaged, or another job's key file)") from None
    if len(material) != 2 * KEY_BYTES:
        raise KeyFileRefused("it wraps a key of the wrong size")
    key = SealingKey(material[:KEY_BYTES], material[KEY_BYTES:])
    if not _checks(content, key, job):
        raise KeyFileRefused("its key does not match the key file's check value")
    return key


def cached_key(cache_dir: Path, key_file: bytes, job: str) -> SealingKey | None:
    """Return the key cached for this exact key file of `job`, or None (no cache, unreadable, damaged, or not the
    key the key file's check value names)."""
    try:
        material = (cache_dir / _cache_name(key_file, job)).read_bytes()
    except OSError:
        return None
    if len(material) != 2 * KEY_BYTES:
        return None
    key = SealingKey(material[:KEY_BYTES], material[KEY_BYTES:])
    return key if _checks(key_file, key, job) else None


def cache_key(cache_dir: Path, key_file: bytes, job: str, key: SealingKey) -> None:
    """Cache an unwrapped key in a 0600 file (folder 0700); a cache that cannot be written is skipped silently: it
    only costs the next process one derivation."""
    with contextlib.suppress(OSError):
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(cache_dir / _cache_name(key_file, job), key.cipher_key + key.tag_key)  # 0600


def _cache_name(key_file: bytes, job: str) -> str:
    # Named after the job and the key file's digest: a key file replaced in the bucket, or another job's copied in,
    # is never answered from this cache.
    return hashlib.sha256(job.encode() + b"\x00" + key_file).hexdigest() + ".key"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)
