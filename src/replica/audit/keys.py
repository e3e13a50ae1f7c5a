"""The operator's Ed25519 key: signing events as they are appended, and checking signatures anywhere.

The private key stays with the operator (a PEM file that only replica's user can read); the public key is
published (hex of its 32 raw bytes) so that an auditor can check an evidence pack away from the host. A key is
named by its id: the first 16 hex digits of the SHA-256 of its raw public bytes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from replica.audit.chain import signed_bytes
from replica.errors import ConfigError

SIGNATURE_ALGORITHM = "ed25519"


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """Return the id of a public key: 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(public_hex(public_key).encode("ascii")).hexdigest()[:16]


def public_hex(public_key: Ed25519PublicKey) -> str:
    """Return a public key as the hex of its 32 raw bytes (how replica publishes it)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


@dataclass(frozen=True)
class Signer:
    """Signs event hashes with the operator's private key."""

    private_key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        """Return the id of the key pair."""
        return key_id_of(self.private_key.public_key())

    @property
    def verifier(self) -> Verifier:
        """Return the verifier of this key's signatures."""
        return Verifier({self.key_id: self.private_key.public_key()})

    def sign(self, hash_hex: str) -> str:
        """Return the hex signature of an event hash."""
        return self.private_key.sign(signed_bytes(hash_hex)).hex()


@dataclass(frozen=True)
class Verifier:
    """Checks event signatures against the public keys an auditor trusts, by key id."""

    public_keys: dict[str, Ed25519PublicKey]

    def __call__(self, key_id: str, hash_hex: str, signature_hex: str) -> bool:
        """Return True when `signature_hex` is a valid signature of `hash_hex` by the trusted key `key_id`."""
        public_key = self.public_keys.get(key_id)
        if public_key is None:
            return False
        try:
            public_key.verify(bytes.fromhex(signature_hex), signed_bytes(hash_hex))
        except (InvalidSignature, ValueError):
            return False
        return True


def load_signer(path: Path) -> Signer:
    """Return the signer of the PEM private key in `path`.

    Raises ConfigError naming the file (never its content) when it cannot be read or is not an Ed25519 key.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError([f"settings audit_signing_key_file: cannot read {path}: {error.strerror}"]) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError([f"settings audit_signing_key_file: {path} is not an unencrypted PEM private key"]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError([f"settings audit_signing_key_file: {path} is not an Ed25519 key"])
    return Signer(key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Return the public key in `path`: the hex of its 32 raw bytes (as `audit keygen` writes) or a PEM.

    Raises ConfigError naming the file when it holds neither.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not text"
        raise ConfigError([f"--public-key: cannot read {path}: {reason}"]) from None
    return parse_public_key(text, what=f"--public-key {path}")


def parse_public_key(text: str, *, what: str) -> Ed25519PublicKey:
    """Return the Ed25519 public key written as 64 hex digits or a PEM block. Raises ConfigError naming `what`."""
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if isinstance(key, Ed25519PublicKey):
                return key
        else:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError:
        pass
    raise ConfigError([f"{what}: not an Ed25519 public key (64 hex digits or PEM)"])


def generate_key(path: Path) -> Signer:
    """Write a new Ed25519 private key to `path` (mode 0600, never over an existing file) and its public key to
    `path.pub`; return its signer. Raises FileExistsError when `path` exists."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # O_EXCL: a second keygen must never replace the key that signed the log so far.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    Path(f"{path}.pub").write_text(public_hex(key.public_key()) + "\n", encoding="ascii")
    return Signer(key)
