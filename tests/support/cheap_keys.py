"""Test-only: give a restic repository a key file with cheap scrypt parameters.

restic 0.14 calibrates scrypt at `restic init` to take ~0.5 s of CPU (N=32768, r=8, p=6 on the CI machine), and
every later command that opens the repository pays it again: thousands of commands in the suite. The parameters are
not configurable, but restic reads them from the key file, so a key file may hold any. `cheapen_repository_keys`
opens the master key with the calibrated key once and stores it again under a key file with CHEAP_PARAMETERS (the
old file removed): the repository, its config and its data are unchanged, only opening it gets fast.

Production repositories never see this (nothing under src/ or benchmarks/ imports it): a cheap key file is a weak
password hash, acceptable only for throwaway test repositories. The format (restic `doc/design.rst`, "Keys,
Encryption and MAC"; `internal/crypto`, `internal/repository/key.go`): scrypt(password, salt, N, r, p) gives 64
bytes, a 32-byte AES-256 key then a 32-byte Poly1305-AES MAC key (16 bytes k for AES-128, 16 bytes r); the key
file's `data` is IV(16) || AES-256-CTR(plaintext) || MAC(16), the MAC being Poly1305 over the ciphertext with the
one-time key r || AES-128_k(IV).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.poly1305 import Poly1305

IV_BYTES = 16
MAC_BYTES = 16
SALT_BYTES = 64  # restic refuses a key file with any other salt length


@dataclass(frozen=True)
class ScryptParameters:
    """scrypt's cost parameters as a key file holds them (N, r, p)."""

    n: int
    r: int
    p: int


# ~1 ms instead of ~0.5 s; restic accepts any N > 1 that is a power of two.
CHEAP_PARAMETERS = ScryptParameters(n=1024, r=8, p=1)


class KeyNotOpened(Exception):
    """The password does not open this key file (its MAC does not verify): restic's "wrong password"."""


@dataclass(frozen=True)
class DerivedKeys:
    """What scrypt derives from a password: the AES-256 key and the Poly1305-AES key (k, r) that seal a key file."""

    encryption: bytes
    mac_k: bytes
    mac_r: bytes


def derive_keys(password: str, salt: bytes, parameters: ScryptParameters) -> DerivedKeys:
    """Return the keys scrypt derives from `password` and `salt` with `parameters` (64 bytes, split as restic)."""
    derived = Scrypt(salt=salt, length=64, n=parameters.n, r=parameters.r, p=parameters.p).derive(password.encode())
    return DerivedKeys(encryption=derived[:32], mac_k=derived[32:48], mac_r=derived[48:])


def _mac(ciphertext: bytes, iv: bytes, keys: DerivedKeys) -> bytes:
    # Poly1305's one-time key is r || AES-128_k(IV) (ECB: one block, by design); the library clamps r as restic's
    # Go poly1305 does.
    encryptor = Cipher(algorithms.AES(keys.mac_k), modes.ECB()).encryptor()
    one_time_key = keys.mac_r + encryptor.update(iv) + encryptor.finalize()
    return Poly1305.generate_tag(one_time_key, ciphertext)


def _ctr(data: bytes, iv: bytes, keys: DerivedKeys) -> bytes:
    cipher = Cipher(algorithms.AES(keys.encryption), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def open_sealed(sealed: bytes, keys: DerivedKeys) -> bytes:
    """Return the plaintext of restic's IV || ciphertext || MAC; raises KeyNotOpened when the MAC does not verify."""
    iv, ciphertext, tag = sealed[:IV_BYTES], sealed[IV_BYTES:-MAC_BYTES], sealed[-MAC_BYTES:]
    if len(sealed) < IV_BYTES + MAC_BYTES or not hmac.compare_digest(_mac(ciphertext, iv, keys), tag):
        raise KeyNotOpened("the MAC of the key file does not verify")
    return _ctr(ciphertext, iv, keys)  # CTR: decryption is the same keystream XOR


def seal(plaintext: bytes, keys: DerivedKeys) -> bytes:
    """Return `plaintext` sealed as restic seals it: a fresh random IV, AES-256-CTR, then the Poly1305-AES MAC."""
    iv = os.urandom(IV_BYTES)
    ciphertext = _ctr(plaintext, iv, keys)
    return iv + ciphertext + _mac(ciphertext, iv, keys)


def parameters_of(key_file: bytes) -> ScryptParameters:
    """Return the scrypt parameters a key file holds; raises ValueError for a KDF other than scrypt."""
    document = json.loads(key_file)
    if document.get("kdf") != "scrypt":
        raise ValueError(f"unknown KDF {document.get('kdf')!r} in a restic key file")
    return ScryptParameters(n=int(document["N"]), r=int(document["r"]), p=int(document["p"]))


def cheapen_key_file(key_file: bytes, password: str, parameters: ScryptParameters = CHEAP_PARAMETERS) -> bytes:
    """Return a new key file that holds the same master key as `key_file`, sealed under `parameters` and a new salt.

    Raises KeyNotOpened when `password` does not open `key_file`, ValueError when it is no scrypt key file.
    """
    document: dict[str, Any] = json.loads(key_file)
    calibrated = derive_keys(password, base64.b64decode(document["salt"]), parameters_of(key_file))
    master_key = open_sealed(base64.b64decode(document["data"]), calibrated)
    salt = os.urandom(SALT_BYTES)
    cheap = derive_keys(password, salt, parameters)
    document.update(
        N=parameters.n,
        r=parameters.r,
        p=parameters.p,
        salt=base64.b64encode(salt).decode(),
        data=base64.b64encode(seal(master_key, cheap)).decode(),
    )
    return json.dumps(document).encode()


def key_file_name(key_file: bytes) -> str:
    """Return the name restic stores a key file under: the SHA-256 of its content, in hex."""
    return hashlib.sha256(key_file).hexdigest()
