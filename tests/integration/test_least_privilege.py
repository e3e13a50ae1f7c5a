"""The IAM policies of docs/iam/ under moto's IAM mode: each role's S3 calls pass, everything else is denied.

moto evaluates each request's action and resource against the user's policies (in process: `mock_aws` with
`INITIAL_NO_AUTH_ACTION_COUNT` at 0 once the users exist). The calls replayed are the ones replica's own S3 layer
makes (`S3Storage`, called for real) and the ones restic 0.14 makes for each command, read from moto's request log
while restic ran against it (the table below; README "Least privilege and WORM buckets"). Two gaps of moto, filled
here: it names HeadBucket's permission `s3:HeadBucket` (AWS checks `s3:ListBucket`), so the policies are given to
moto with that alias wherever they grant `s3:ListBucket`; and it does not evaluate `s3:prefix` conditions, so the
listing conditions are checked against restic's listed prefixes with IAM's StringLike rules in a test of their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import moto.settings
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from pydantic import SecretStr

from replica.errors import StorageAccessDenied
from replica.restic.check import check_repository
from replica.restic.command import Repository, Restic
from replica.restic.restore import dump_command, restore_tree
from replica.storage.s3 import S3Storage

POLICIES = Path(__file__).parents[2] / "docs" / "iam"
REGION = "us-east-1"
BUCKET, OFFSITE = "acme-backups", "acme-offsite"
PREFIX, OTHER_PREFIX = "restic/billing", "restic/payroll"
ID = "ab" + "c" * 62  # restic names every file by the SHA-256 of its content
PLACEHOLDERS = {
    "writer": {"BUCKET_NAME": BUCKET, "REPOSITORY_PREFIX": PREFIX},
    "pruner": {"BUCKET_NAME": BUCKET, "REPOSITORY_PREFIX": PREFIX},
    "verifier": {"BUCKET_NAME": BUCKET, "REPOSITORY_PREFIX": PREFIX},
    "copier": {
        "SOURCE_BUCKET": BUCKET,
        "SOURCE_PREFIX": PREFIX,
        "DESTINATION_BUCKET": OFFSITE,
        "DESTINATION_PREFIX": PREFIX,
    },
}

# What restic 0.14 asks of S3, per command: (operation, key below the repository prefix). `list` is ListObjectsV2
# with delimiter "/", `list-all` without one (restic's listing of data/), `head-bucket` only at init.
OPEN = [("list", "keys/"), ("list", "key/"), ("head", "config"), ("get", "config"), ("get", f"keys/{ID}")]
LOCK = [("list", "locks/"), ("get", f"locks/{ID}"), ("put", f"locks/{ID}"), ("delete", f"locks/{ID}")]
READ = [("list", "index/"), ("list", "snapshots/"), ("get", f"index/{ID}"), ("get", f"snapshots/{ID}")]
READ_DATA = [*READ, ("get", f"data/ab/{ID}")]
WRITE = [("put", f"data/ab/{ID}"), ("put", f"index/{ID}"), ("put", f"snapshots/{ID}")]
RESTIC_CALLS: dict[str, list[tuple[str, str]]] = {
    "init": [("head-bucket", ""), ("head", "config"), ("list", "keys/"), ("put", "config"), ("put", f"keys/{ID}")],
    "backup": [*OPEN, *LOCK, *READ, *WRITE],
    "snapshots --no-lock": [*OPEN, ("list", "snapshots/"), ("get", f"snapshots/{ID}")],
    "check --no-lock --read-data-subset": [*OPEN, *READ_DATA, ("list-all", "data/")],
    "restore --no-lock": [*OPEN, *READ_DATA],
    "dump --no-lock": [*OPEN, *READ_DATA],
    "unlock (stale locks)": [*OPEN, *LOCK],
    "forget ID": [*OPEN, *LOCK, ("list", "snapshots/"), ("get", f"snapshots/{ID}"), ("delete", f"snapshots/{ID}")],
    # forget --prune also writes: repacked data and the new index
    "forget --prune ID": [
        *OPEN,
        *LOCK,
        *READ_DATA,
        ("list-all", "data/"),
        ("put", f"data/ab/{ID}"),
        ("put", f"index/{ID}"),
        ("delete", f"data/ab/{ID}"),
        ("delete", f"index/{ID}"),
        ("delete", f"snapshots/{ID}"),
    ],
    # copy's side in the source repository (it takes a lock there too); its side in the destination is a backup's.
    "copy (source)": [*OPEN, *LOCK, *READ_DATA],
    "copy (destination)": [*OPEN, *LOCK, *READ, *WRITE],
}
SIDECAR = f"replica/fingerprints/{ID[:8]}.json"


@dataclass
class Role:
    """An IAM user holding one policy of docs/iam/, with a client and an S3Storage (replica's S3 layer) of its own."""

    name: str
    client: Any
    storage: S3Storage

    def attempt(self, operation: str, key: str, *, bucket: str = BUCKET, prefix: str = PREFIX) -> str:
        """Make one S3 call as restic or replica would; return `allowed` or `denied` (anything else raises)."""
        full_key = f"{prefix}/{key}"
        calls = {
            "head-bucket": lambda: self.client.head_bucket(Bucket=bucket),
            "list": lambda: self.client.list_objects_v2(Bucket=bucket, Prefix=full_key, Delimiter="/"),
            "list-all": lambda: self.client.list_objects_v2(Bucket=bucket, Prefix=full_key),
            "head": lambda: self.client.head_object(Bucket=bucket, Key=full_key),
            "get": lambda: self.client.get_object(Bucket=bucket, Key=full_key),
            "put": lambda: self.client.put_object(Bucket=bucket, Key=full_key, Body=b"restic file"),
            "delete": lambda: self.client.delete_object(Bucket=bucket, Key=full_key),
        }
        try:
            calls[operation]()
        except ClientError as error:
            code = str(error.response["Error"]["Code"])
            if code in {"AccessDenied", "403"}:
                return "denied"
            if code in {"NoSuchKey", "404"}:
                return "allowed"  # moto authorises before it looks: an earlier call of the table deleted the key
            raise
        return "allowed"

    def denied_calls(self, command: str, **where: str) -> list[tuple[str, str]]:
        """Return the calls of a restic command that this role may not make."""
        return [call for call in RESTIC_CALLS[command] if self.attempt(*call, **where) == "denied"]


def bucket_administration(client: Any, version_id: str) -> dict[str, Any]:
    """Return the calls that would undo a bucket's protection or its contents, by name."""
    return {
        "DeleteBucket": lambda: client.delete_bucket(Bucket=BUCKET),
        "PutBucketPolicy": lambda: client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(POLICY_ALL)),
        "PutBucketVersioning (suspend)": lambda: client.put_bucket_versioning(
            Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"}
        ),
        "PutObjectLockConfiguration": lambda: client.put_object_lock_configuration(
            Bucket=BUCKET, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        ),
        "DeleteObjectVersion": lambda: client.delete_object(
            Bucket=BUCKET, Key=f"{PREFIX}/data/ab/{ID}", VersionId=version_id
        ),
        "CreateBucket (a misspelt one)": lambda: client.create_bucket(Bucket="acme-bakcups"),
    }


def denied(call: Any) -> bool:
    try:
        call()
    except ClientError as error:
        return str(error.response["Error"]["Code"]) in {"AccessDenied", "403"}
    return False


POLICY_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def policy_document(role: str) -> dict[str, Any]:
    """Return a role's policy from docs/iam/ with its placeholders filled in."""
    text = (POLICIES / f"{role}.json").read_text()
    for placeholder, value in PLACEHOLDERS[role].items():
        text = text.replace(placeholder, value)
    return dict(json.loads(text))


def for_moto(document: dict[str, Any]) -> dict[str, Any]:
    """Return the policy as moto needs it: `s3:HeadBucket` granted with `s3:ListBucket` (AWS checks the latter
    for HeadBucket; moto the former)."""
    statements = []
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "s3:ListBucket" in actions:
            actions = [*actions, "s3:HeadBucket"]
        statements.append({**statement, "Action": actions})
    return {**document, "Statement": statements}


@pytest.fixture(scope="module")
def roles() -> Iterator[dict[str, Role]]:
    """The four roles as IAM users, and two versioned buckets holding a repository's files under two prefixes."""
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        users = {}
        for name in [*PLACEHOLDERS, "admin"]:
            iam.create_user(UserName=name)
            document = POLICY_ALL if name == "admin" else for_moto(policy_document(name))
            iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(document))
            users[name] = iam.create_access_key(UserName=name)["AccessKey"]
        admin = boto3.client("s3", region_name=REGION)
        for bucket in (BUCKET, OFFSITE):
            admin.create_bucket(Bucket=bucket)
            admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            for prefix in (PREFIX, OTHER_PREFIX):
                keys = ["config", f"keys/{ID}", f"locks/{ID}", f"data/ab/{ID}", f"index/{ID}", f"snapshots/{ID}"]
                for key in [*keys, SIDECAR]:
                    admin.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=b"{}")
        # From here on every request is authenticated and authorised.
        saved = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        try:
            yield {name: _role(name, key) for name, key in users.items()}
        finally:
            moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = saved


def _role(name: str, key: dict[str, str]) -> Role:
    client = boto3.client(
        "s3", region_name=REGION, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )
    storage = S3Storage(
        endpoint_url=None,
        region=REGION,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
        timeout_seconds=5,
    )
    return Role(name, client, storage)


def data_version(roles: dict[str, Role]) -> str:
    versions = roles["admin"].client.list_object_versions(Bucket=BUCKET, Prefix=f"{PREFIX}/data/")["Versions"]
    return str(versions[0]["VersionId"])


def test_the_admin_can_do_what_the_roles_cannot(roles: dict[str, Role]) -> None:
    # GIVEN moto in IAM mode THEN a user allowed everything passes the calls the roles are denied (so a denial
    # below is the policy's, not moto refusing the call)
    admin = roles["admin"]
    assert admin.attempt("delete", f"keys/{ID}", prefix=OTHER_PREFIX) == "allowed"
    assert admin.attempt("put", "config", bucket=OFFSITE, prefix=OTHER_PREFIX) == "allowed"
    assert not denied(lambda: admin.client.get_bucket_versioning(Bucket=BUCKET))
    assert not denied(lambda: admin.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/data/ab/{ID}", Body=b"{}"))


def test_the_writer_backs_up_into_its_prefix_and_cannot_delete_data_or_administer_the_bucket(
    roles: dict[str, Role],
) -> None:
    writer = roles["writer"]
    # WHEN the writer makes restic's calls of init, backup, snapshots and unlock THEN all pass
    for command in ("init", "backup", "snapshots --no-lock", "unlock (stale locks)"):
        assert writer.denied_calls(command) == [], command
    # and replica's own: the probe, the fingerprint sidecar, the bucket's Object Lock state
    writer.storage.probe_bucket(BUCKET)
    writer.storage.put_json(BUCKET, f"{PREFIX}/{SIDECAR}", {"format": 1})
    assert writer.storage.get_json(BUCKET, f"{PREFIX}/{SIDECAR}") == {"format": 1}
    assert writer.storage.object_lock(BUCKET)["enabled"] is False

    # WHEN it tries what ransomware holding its keys would THEN restic's forget and prune are denied their deletes
    assert writer.denied_calls("forget ID") == [("delete", f"snapshots/{ID}")]
    assert writer.denied_calls("forget --prune ID") == [
        ("delete", f"data/ab/{ID}"),
        ("delete", f"index/{ID}"),
        ("delete", f"snapshots/{ID}"),
    ]
    assert writer.attempt("delete", f"keys/{ID}") == "denied"
    assert writer.attempt("delete", "config") == "denied"
    # and another job's prefix, the other bucket and every bucket administration are out of reach
    assert writer.attempt("get", "config", prefix=OTHER_PREFIX) == "denied"
    assert writer.attempt("put", f"data/ab/{ID}", prefix=OTHER_PREFIX) == "denied"
    assert writer.attempt("put", f"data/ab/{ID}", bucket=OFFSITE) == "denied"
    administration = bucket_administration(writer.client, data_version(roles))
    assert [name for name, call in administration.items() if not denied(call)] == []
    # and replica's layer reports a denial as such (exit code 5), naming the bucket; a lock state it may not read
    # is "unknown", never an error that would fail a backup
    with pytest.raises(StorageAccessDenied, match=OFFSITE):
        writer.storage.put_json(OFFSITE, f"{PREFIX}/{SIDECAR}", {"format": 1})
    unknown = writer.storage.object_lock(OFFSITE)
    assert (unknown["enabled"], unknown["detail"]) == (None, "Object Lock state not readable (AccessDenied)")


def test_the_pruner_prunes_and_still_cannot_administer_the_bucket(roles: dict[str, Role]) -> None:
    pruner = roles["pruner"]
    # WHEN the pruner makes restic's calls of forget --prune (and replica's probe) THEN all pass
    assert pruner.denied_calls("forget --prune ID") == []
    assert pruner.denied_calls("forget ID") == []
    pruner.storage.probe_bucket(BUCKET)
    # and it may not rewrite the repository's keys or config, touch another prefix, or remove object versions
    assert pruner.attempt("put", f"keys/{ID}") == "denied"
    assert pruner.attempt("put", "config") == "denied"
    assert pruner.attempt("delete", f"data/ab/{ID}", prefix=OTHER_PREFIX) == "denied"
    administration = bucket_administration(pruner.client, data_version(roles))
    assert [name for name, call in administration.items() if not denied(call)] == []


def test_the_verifier_reads_everything_verify_needs_and_writes_nothing(roles: dict[str, Role]) -> None:
    verifier = roles["verifier"]
    # WHEN the verifier makes restic's calls of check, restore, dump and snapshots, all with --no-lock THEN all pass
    for command in ("check --no-lock --read-data-subset", "restore --no-lock", "dump --no-lock", "snapshots --no-lock"):
        assert verifier.denied_calls(command) == [], command
    verifier.storage.probe_bucket(BUCKET)
    assert verifier.storage.get_json(BUCKET, f"{PREFIX}/{SIDECAR}") is not None

    # WHEN it tries to write anything THEN it is denied: no lock (so without --no-lock restic could not even
    # start), no data, no sidecar, no delete
    assert verifier.denied_calls("backup") == [
        ("put", f"locks/{ID}"),
        ("delete", f"locks/{ID}"),
        ("put", f"data/ab/{ID}"),
        ("put", f"index/{ID}"),
        ("put", f"snapshots/{ID}"),
    ]
    assert verifier.attempt("delete", f"snapshots/{ID}") == "denied"
    with pytest.raises(StorageAccessDenied):
        verifier.storage.put_json(BUCKET, f"{PREFIX}/{SIDECAR}", {"format": 1})
    assert verifier.attempt("get", "config", prefix=OTHER_PREFIX) == "denied"


def test_the_copier_reads_the_source_and_writes_only_the_destination(roles: dict[str, Role]) -> None:
    copier = roles["copier"]
    # WHEN the copier makes restic copy's calls in both repositories, and replica's probe and sidecar THEN all pass
    assert copier.denied_calls("copy (source)") == []
    assert copier.denied_calls("copy (destination)", bucket=OFFSITE) == []
    copier.storage.probe_bucket(OFFSITE)
    copier.storage.put_json(OFFSITE, f"{PREFIX}/{SIDECAR}", {"format": 1})

    # WHEN it tries to change the source, or delete in the destination THEN it is denied (only locks come and go)
    assert copier.attempt("put", f"data/ab/{ID}") == "denied"
    assert copier.attempt("put", f"snapshots/{ID}") == "denied"
    assert copier.attempt("delete", f"snapshots/{ID}") == "denied"
    assert copier.attempt("delete", f"data/ab/{ID}", bucket=OFFSITE) == "denied"
    assert copier.attempt("put", "config", bucket=OFFSITE) == "denied"


def string_like(pattern: str, value: str) -> bool:
    """Return whether IAM's StringLike matches: `*` any run of characters, `?` one, everything else literal."""
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, value, re.DOTALL) is not None


@pytest.mark.parametrize("role", sorted(PLACEHOLDERS))
def test_the_listing_conditions_admit_restics_prefixes_and_no_other(role: str) -> None:
    # GIVEN a role's listing statements (moto does not evaluate their s3:prefix conditions)
    document = policy_document(role)
    patterns: dict[str, list[str]] = {}
    for statement in document["Statement"]:
        condition = statement.get("Condition", {})
        if statement["Action"] == "s3:ListBucket" and "StringLike" in condition:
            bucket = statement["Resource"].removeprefix("arn:aws:s3:::")
            value = condition["StringLike"]["s3:prefix"]
            patterns.setdefault(bucket, []).extend(value if isinstance(value, list) else [value])
        elif statement["Action"] == "s3:ListBucket":
            # THEN the only other listing grant is the probe's: HeadBucket, which carries no prefix
            assert condition == {"Null": {"s3:prefix": "true"}}
    assert patterns

    # THEN every prefix restic lists in the role's repositories matches, and no other job's prefix does
    listed = {f"{PREFIX}/{key}" for calls in RESTIC_CALLS.values() for op, key in calls if op.startswith("list")}
    for bucket, allowed in patterns.items():
        for prefix in listed:
            assert any(string_like(pattern, prefix) for pattern in allowed), (bucket, prefix)
        for foreign in (f"{OTHER_PREFIX}/keys/", "restic/", "", f"{PREFIX}-old/keys/"):
            assert not any(string_like(pattern, foreign) for pattern in allowed), (bucket, foreign)


def test_verify_reads_the_repository_without_a_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN restic's commands as a verification builds them (check; restore and dump without the shared lock)
    import replica.restic.check
    import replica.restic.restore

    commands: list[tuple[str, ...]] = []

    class Finished:
        succeeded, exit_code, stdout, stderr_tail = True, 0, "", ""

    def record(command: Any, **_: Any) -> Finished:
        commands.append(tuple(command.argv))
        return Finished()

    monkeypatch.setattr(replica.restic.check, "run", record)
    monkeypatch.setattr(replica.restic.restore, "run", record)
    restic = Restic(binary="restic", timeout_seconds=60, metadata_timeout_seconds=60)
    repository = Repository("primary", f"s3:https://s3.amazonaws.com/{BUCKET}/{PREFIX}", SecretStr("x"))

    # WHEN they are built THEN each carries --no-lock: a verifier with read-only credentials suffices
    check_repository(restic, repository, read_data_subset="10%")
    restore_tree(restic, repository, "4e06424e", tmp_path, shared_lock=False)
    commands.append(tuple(dump_command(restic, repository, "4e06424e", "db.sqlite3", shared_lock=False).argv))
    assert len(commands) == 3
    assert all("--no-lock" in argv for argv in commands), commands
    # and a restore by hand (shared lock, to keep a prune out) does not: it needs the writer's lock permissions
    assert "--no-lock" not in dump_command(restic, repository, "4e06424e", "db.sqlite3", shared_lock=True).argv
