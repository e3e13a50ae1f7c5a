"""Recording a run around a piece of work: inserted first, finished or failed explicitly, whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from replica.actions.locking import name_run_in_lock
from replica.catalog.records import INTERRUPTED, Catalog
from replica.errors import Interrupted, VerificationFailed, failure_state


@dataclass
class RunRecorder:
    """A run in progress: phases and figures are written as the work advances."""

    catalog: Catalog
    run_id: int
    details: dict[str, Any] = field(default_factory=dict)
    succeeded: bool | None = None
    error: str | None = None
    failure: str | None = None
    snapshot_id: str | None = None

    def phase(self, name: str, **details: Any) -> None:
        """Record that the run entered phase `name`."""
        self.catalog.set_phase(self.run_id, name, **details)

    def fail(self, error: str, failure: str = VerificationFailed.state) -> None:
        """Mark the run to be finished as failed with `error` and the failure state `failure` (the work itself
        did not raise: a check found the data wrong)."""
        self.succeeded, self.error, self.failure = False, error, failure


@contextlib.contextmanager
def recorded_run(catalog: Catalog, job: str, kind: str, **start: Any) -> Iterator[RunRecorder]:
    """Insert a `running` run, yield its recorder, then finish it.

    On an exception the run is marked failed with the phase it was in and the first line of the error (or
    `interrupted` when it was stopped on purpose), and the exception continues. Without one, the run succeeds
    unless the body called `fail`.
    """
    run_id = catalog.start_run(job, kind, phase=start.pop("phase", "start"), **start)
    name_run_in_lock(job, run_id)
    recorder = RunRecorder(catalog, run_id)
    try:
        yield recorder
    except BaseException as error:
        message = str(error) or type(error).__name__
        stopped = isinstance(error, KeyboardInterrupt | Interrupted)
        if isinstance(error, KeyboardInterrupt):
            message = "interrupted"
        catalog.finish_run(
            run_id,
            succeeded=False,
            error=message,
            snapshot_id=recorder.snapshot_id,
            status=INTERRUPTED if stopped else None,
            failure=failure_state(error),
            **recorder.details,
        )
        raise
    succeeded = recorder.succeeded is not False
    catalog.finish_run(
        run_id,
        succeeded=succeeded,
        error=recorder.error,
        snapshot_id=recorder.snapshot_id,
        failure=recorder.failure,
        **recorder.details,
    )
