"""Reading secrets from where configuration points: an environment variable or a file. Never logged."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from replica.config.models import SecretReference
from replica.errors import ConfigError


def read_secret(*, env_name: str | None, file_path: Path | None, what: str) -> SecretStr | None:
    """Return the secret named by `env_name` or stored in `file_path`, or None when neither is given.

    Raises ConfigError naming the variable or file (never the value) when it is named but missing or empty.
    """
    if env_name:
        value = os.environ.get(env_name, "")
        if not value:
            raise ConfigError([f"{what}: environment variable {env_name} is not set or empty"])
        return SecretStr(value)
    if file_path:
        try:
            value = file_path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ConfigError([f"{what}: cannot read password file {file_path}: {error.strerror}"]) from None
        if not value:
            raise ConfigError([f"{what}: password file {file_path} is empty"])
        return SecretStr(value)
    return None


def store_password(reference: SecretReference, what: str) -> str | None:
    """Return the password a store configuration points at (env or file), or None when it names none.

    Raises ConfigError naming the variable or file when it is named but missing or empty.
    """
    secret = read_secret(env_name=reference.password_env, file_path=reference.password_file, what=f"store {what}")
    return secret.get_secret_value() if secret else None
