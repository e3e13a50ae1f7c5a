"""The test suite's cheap restic keys (tests/support/cheap_keys.py) against the real restic: after the rewrite the
repository opens with the same password and its key file holds the cheap N; a wrong password still fails as restic's
wrong password. Also the e2e shims' init hook: restic's init runs unchanged and recorded as before."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from replica import errors
from replica.restic.command import Repository, Restic
from tests.support.argv_recorders import ArgvRecorders
from tests.support.cheap_init import LOG_NAME, install_init_hook
from tests.support.cheap_keys import CHEAP_PARAMETERS, KeyNotOpened, key_file_name, parameters_of
from tests.support.key_folders import KeyFolder, LocalKeyFolder, cheapen_repository_keys, key_folder_of
from tests.support.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server

PASSWORD = "cheap-keys-test-password"
WRONG_PASSWORD = "not-the-password"
S3_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_DEFAULT_REGION": REGION,
}


def restic(
    repository: str, password: str, *arguments: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real restic on `repository` with `password` (by environment) and return its outcome."""
    environment = {
        "PATH": path or os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "RESTIC_REPOSITORY": repository,
        "RESTIC_PASSWORD": password,
        **S3_ENVIRONMENT,
    }
    return subprocess.run(
        ["restic", *arguments], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def only_key(keys: KeyFolder) -> bytes:
    """Return the repository's one key file, checking that it is stored under restic's name for it."""
    (name,) = keys.names()
    content = keys.read(name)
    assert name == key_file_name(content)
    return content


def assert_cheap_key_opens_with_the_password_only(repository: str, keys: KeyFolder) -> None:
    """THEN the one key file holds the cheap parameters; restic opens the repository with the password, and a wrong
    password fails as restic's wrong password (exit 12 from restic 0.17, exit 1 and its message in 0.14)."""
    assert parameters_of(only_key(keys)) == CHEAP_PARAMETERS
    listed = restic(repository, PASSWORD, "snapshots", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    refused = restic(repository, WRONG_PASSWORD, "snapshots", "--json")
    assert refused.returncode in (1, 12)
    assert "wrong password or no key found" in refused.stderr
    wrong = Repository("primary", repository, SecretStr(WRONG_PASSWORD), S3_ENVIRONMENT)
    with pytest.raises(errors.WrongPassword):
        Restic().run(wrong, ["snapshots"])


def test_a_local_repository_opens_with_its_cheap_key(tmp_path: Path) -> None:
    # GIVEN a local repository as `restic init` made it, with its calibrated key
    repository = str(tmp_path / "repository")
    created = restic(repository, PASSWORD, "init")
    assert created.returncode == 0, created.stderr
    keys = key_folder_of(repository, {})
    calibrated = parameters_of(only_key(keys))
    assert calibrated.n * calibrated.r * calibrated.p > CHEAP_PARAMETERS.n * CHEAP_PARAMETERS.r * CHEAP_PARAMETERS.p
    # WHEN a wrong password tries the rewrite, THEN nothing changes
    with pytest.raises(KeyNotOpened):
        cheapen_repository_keys(keys, WRONG_PASSWORD)
    assert parameters_of(only_key(keys)) == calibrated
    # WHEN the right one does, THEN one key was rewritten, and a second rewrite has nothing left to do
    assert cheapen_repository_keys(keys, PASSWORD) == 1
    assert cheapen_repository_keys(keys, PASSWORD) == 0
    assert_cheap_key_opens_with_the_password_only(repository, keys)


def test_an_s3_repository_opens_with_its_cheap_key(s3_server: S3Server, bucket: str) -> None:
    # GIVEN a repository under a prefix of a bucket on moto, as `restic init` made it
    repository = f"s3:{s3_server.endpoint_url}/{bucket}/restic/cheap"
    created = restic(repository, PASSWORD, "init")
    assert created.returncode == 0, created.stderr
    # WHEN its key is rewritten through boto3
    keys = key_folder_of(repository, S3_ENVIRONMENT)
    assert cheapen_repository_keys(keys, PASSWORD) == 1
    # THEN restic opens it with the password only; the repository's other files are where restic put them
    assert_cheap_key_opens_with_the_password_only(repository, keys)
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="restic/cheap/")["Contents"]
    assert {item["Key"].split("/")[2] for item in listing} == {"config", "keys"}


def test_the_shims_init_hook_keeps_restic_s_outcome_and_the_recorded_argv(tmp_path: Path) -> None:
    # GIVEN argv shims with the init hook first on PATH
    recorders = ArgvRecorders.install(tmp_path / "shims", ("restic",))
    install_init_hook(recorders.folder)
    repository = str(tmp_path / "repository")
    # WHEN restic init runs through them, twice
    created = restic(repository, PASSWORD, "--json", "init", path=recorders.path())
    again = restic(repository, PASSWORD, "--json", "init", path=recorders.path())
    # THEN the first made the repository with a cheap key; the second failed as restic fails on an existing one
    assert created.returncode == 0, created.stderr
    assert "created restic repository" in created.stdout
    assert again.returncode == 1
    assert "config file already exists" in again.stderr
    assert_cheap_key_opens_with_the_password_only(repository, LocalKeyFolder(Path(repository) / "keys"))
    # AND each start was recorded as before, the hook logged no failure
    assert recorders.lines() == ["restic --json init", "restic --json init"]
    assert not (recorders.folder / LOG_NAME).exists()
