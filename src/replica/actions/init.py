"""`replica init JOB`: create the restic repositories of a job's destinations (the only command that does)."""

from __future__ import annotations

from dataclasses import dataclass

from replica.actions.context import Context
from replica.actions.runs import recorded_run
from replica.restic.init import init_repository


@dataclass(frozen=True)
class InitOutcome:
    """One destination: whether its repository was created now or existed already."""

    destination: str
    created: bool


def run_init(context: Context, job_name: str) -> list[InitOutcome]:
    """Create every destination's repository; secondaries take the primary's chunker parameters.

    restic creates a missing bucket here, which is why no other command may call init: a misspelt bucket in a
    job file must fail a backup, not silently create a new empty repository.
    Raises a classified ResticError or StorageError on the first destination that fails.
    """
    job, _ = context.job(job_name)
    primary_repository = context.repository(job, job.primary)
    outcomes = []
    for index, destination in enumerate(job.destinations):
        repository = context.repository(job, destination)
        with recorded_run(context.catalog, job.name, "init", destination=destination.name, phase="init") as run:
            context.storage(destination).probe_endpoint()
            created = init_repository(context.restic, repository, primary_repository if index else None)
            run.details.update(created=created)
        context.progress(f"destination '{destination.name}': repository {'created' if created else 'already exists'}")
        outcomes.append(InitOutcome(destination.name, created))
    return outcomes
