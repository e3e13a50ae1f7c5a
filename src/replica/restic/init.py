"""`restic init`: create a repository, optionally with the chunker parameters of another (for cheap copies)."""

from __future__ import annotations

import re

from replica.execute import run
from replica.restic.command import Repository, Restic, raise_for_restic

ALREADY_INITIALIZED = re.compile(r"already initialized|config file already exists", re.I)


def init_repository(restic: Restic, repository: Repository, chunker_source: Repository | None = None) -> bool:
    """Create the repository and return True, or return False when it already exists.

    With `chunker_source`, the new repository takes that repository's chunker parameters, so `restic copy`
    between them deduplicates. Raises a classified ResticError (or StorageError) on any other failure.
    """
    arguments = ["init"]
    extra_environment: dict[str, str] = {}
    if chunker_source is not None:
        arguments.append("--copy-chunker-params")
        extra_environment = from_repository_environment(chunker_source)
    completed = run(restic.command(repository, arguments, extra_environment=extra_environment))
    if completed.exit_code == 1 and ALREADY_INITIALIZED.search(completed.stderr_tail):
        return False
    raise_for_restic(completed, repository.name)
    return True


def from_repository_environment(source: Repository) -> dict[str, str]:
    """Return the variables naming `source` as restic's `--from-repo` (URL and password by environment only)."""
    return {
        "RESTIC_FROM_REPOSITORY": source.url,
        "RESTIC_FROM_PASSWORD": source.password.get_secret_value(),
    }
