"""Test-only: the `keys/` folder of a restic repository, local or on S3, and the rewrite of its key files with
cheap scrypt parameters (see tests/support/cheap_keys.py for why and how)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from tests.support.cheap_keys import CHEAP_PARAMETERS, KeyNotOpened, cheapen_key_file, key_file_name, parameters_of

DEFAULT_REGION = "us-east-1"


class KeyFolder(Protocol):
    """The key files of one repository, by name."""

    def names(self) -> list[str]:
        """Return the names of the key files."""
        ...

    def read(self, name: str) -> bytes:
        """Return the content of a key file."""
        ...

    def write(self, name: str, content: bytes) -> None:
        """Store a new key file."""
        ...

    def delete(self, name: str) -> None:
        """Remove a key file."""
        ...


@dataclass(frozen=True)
class LocalKeyFolder:
    """`keys/` of a repository in a local folder."""

    folder: Path

    def names(self) -> list[str]:
        return sorted(path.name for path in self.folder.iterdir() if path.is_file())

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def write(self, name: str, content: bytes) -> None:
        path = self.folder / name
        path.write_bytes(content)
        path.chmod(0o400)  # restic's local backend leaves its files read-only too

    def delete(self, name: str) -> None:
        (self.folder / name).unlink()


@dataclass(frozen=True)
class S3KeyFolder:
    """`keys/` of a repository under a bucket and prefix of an S3 endpoint."""

    client: Any
    bucket: str
    prefix: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}keys/{name}"

    def names(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""))
        return sorted(item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", []))

    def read(self, name: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read())

    def write(self, name: str, content: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=content)

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))


def key_folder_of(repository: str, environment: Mapping[str, str]) -> KeyFolder:
    """Return the key folder of a restic repository URL: `s3:http(s)://host[:port]/bucket[/prefix]` (credentials
    and region from AWS_* in `environment`), `local:PATH` or a plain path.

    Raises ValueError for any other kind of repository (sftp:, rest:, s3 without a scheme...).
    """
    if repository.startswith("s3:"):
        return _s3_key_folder(repository.removeprefix("s3:"), environment)
    if ":" in repository.split("/", 1)[0] and not repository.startswith("local:"):
        raise ValueError(f"unsupported kind of repository {repository.split(':', 1)[0]!r}")
    return LocalKeyFolder(Path(repository.removeprefix("local:")) / "keys")


def _s3_key_folder(url: str, environment: Mapping[str, str]) -> S3KeyFolder:
    import boto3  # only S3 repositories pay for the import
    from botocore.config import Config

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("unsupported S3 repository URL: only s3:http(s)://host/bucket[/prefix]")
    bucket, _, prefix = parts.path.strip("/").partition("/")
    client = boto3.client(
        "s3",
        endpoint_url=f"{parts.scheme}://{parts.netloc}",
        region_name=environment.get("AWS_DEFAULT_REGION") or environment.get("AWS_REGION") or DEFAULT_REGION,
        aws_access_key_id=environment.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=environment.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=environment.get("AWS_SESSION_TOKEN"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )
    return S3KeyFolder(client, bucket, f"{prefix}/" if prefix else "")


def cheapen_repository_keys(keys: KeyFolder, password: str) -> int:
    """Rewrite every key file `password` opens with CHEAP_PARAMETERS (new file first, then the old one removed, so
    the repository always has a key that opens); return how many were rewritten (0: all cheap already).

    Raises KeyNotOpened when the repository has key files to rewrite and `password` opens none of them.
    """
    rewritten = expensive = 0
    for name in keys.names():
        content = keys.read(name)
        if parameters_of(content) == CHEAP_PARAMETERS:
            continue
        expensive += 1
        with contextlib.suppress(KeyNotOpened):  # another password's key: left as it is
            cheap = cheapen_key_file(content, password)
            keys.write(key_file_name(cheap), cheap)
            keys.delete(name)
            rewritten += 1
    if expensive and not rewritten:
        raise KeyNotOpened("the password opens no key file of the repository")
    return rewritten
