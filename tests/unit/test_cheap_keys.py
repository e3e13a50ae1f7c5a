"""The test suite's cheap restic keys without restic: sealing as restic seals, and how the init hook reads restic's
arguments and environment (tests/support/cheap_keys.py, tests/support/cheap_init.py)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tests.support.cheap_init import password_of, repository_of, subcommand_of
from tests.support.cheap_keys import (
    CHEAP_PARAMETERS,
    KeyNotOpened,
    ScryptParameters,
    cheapen_key_file,
    derive_keys,
    open_sealed,
    parameters_of,
    seal,
)

# Cheaper than cheap: these tests derive keys several times.
TINY = ScryptParameters(n=16, r=1, p=1)


def key_file(password: str, master_key: bytes) -> bytes:
    """Return a key file as restic writes one, sealing `master_key` under `password` with TINY parameters."""
    salt = os.urandom(64)
    data = seal(master_key, derive_keys(password, salt, TINY))
    document = {
        "created": "2026-01-01T00:00:00Z",
        "username": "u",
        "hostname": "h",
        "kdf": "scrypt",
        "N": TINY.n,
        "r": TINY.r,
        "p": TINY.p,
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(data).decode(),
    }
    return json.dumps(document).encode()


def test_sealed_data_opens_with_its_keys_only() -> None:
    keys = derive_keys("password", b"s" * 64, TINY)
    sealed = seal(b'{"mac":{}}', keys)
    assert open_sealed(sealed, keys) == b'{"mac":{}}'
    with pytest.raises(KeyNotOpened):
        open_sealed(sealed, derive_keys("other", b"s" * 64, TINY))
    with pytest.raises(KeyNotOpened):
        open_sealed(sealed[:-1] + bytes([sealed[-1] ^ 1]), keys)


def test_a_cheapened_key_file_holds_the_same_master_key_under_the_cheap_parameters() -> None:
    original = key_file("password", b"the master key")
    cheap = cheapen_key_file(original, "password")
    document = json.loads(cheap)
    assert parameters_of(cheap) == CHEAP_PARAMETERS
    unchanged = ("created", "username", "hostname", "kdf")
    assert {key: document[key] for key in unchanged} == {key: json.loads(original)[key] for key in unchanged}
    keys = derive_keys("password", base64.b64decode(document["salt"]), CHEAP_PARAMETERS)
    assert open_sealed(base64.b64decode(document["data"]), keys) == b"the master key"
    with pytest.raises(KeyNotOpened):
        cheapen_key_file(original, "wrong")


def test_the_subcommand_comes_after_global_flags_and_their_values() -> None:
    assert subcommand_of(["--json", "init"]) == "init"
    assert subcommand_of(["-r", "init", "--password-file", "/p", "snapshots"]) == "snapshots"
    assert subcommand_of(["--repo=/r", "-o", "s3.connections=2", "backup", "init"]) == "backup"
    assert subcommand_of(["--json"]) is None


def test_repository_and_password_are_resolved_as_restic_resolves_them(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("from-file\n")
    environment = {"RESTIC_REPOSITORY": "/environment", "RESTIC_PASSWORD": "from-environment"}
    assert repository_of(["init"], environment) == "/environment"
    assert repository_of(["-r", "/flag", "init"], environment) == "/flag"
    assert repository_of(["--repo=/inline", "init"], environment) == "/inline"
    assert password_of(["init"], environment) == "from-environment"
    # a password file, by flag or by variable, wins over RESTIC_PASSWORD; restic trims it
    assert password_of(["--password-file", str(password_file), "init"], environment) == "from-file"
    assert password_of(["init"], {**environment, "RESTIC_PASSWORD_FILE": str(password_file)}) == "from-file"
    assert password_of(["init"], {}) is None
