"""A destination's probe, run beside the restic command that needs the destination instead of before it.

In a one-shot command the probe (`Context.probe`: boto3's import and client, then a HEAD of the bucket) costs
~0.3 s, which restic's own start (key derivation, ~0.5 s) can hide. The probe still decides the outcome as if it
had run first: when it fails, the command beside it is stopped (SIGINT, as on a deadline) and the run fails with
the probe's error, in phase `probe`, whatever the command said meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator

from replica.actions.context import Context
from replica.actions.runs import RunRecorder
from replica.config.models import DestinationConfig
from replica.errors import Interrupted
from replica.execute import Cancellation


class ProbeBeside:
    """A probe running in a thread; `cancellation` stops the commands given it once the probe fails."""

    def __init__(self, future: concurrent.futures.Future[None], cancellation: Cancellation, run: RunRecorder) -> None:
        self._future = future
        self.cancellation = cancellation
        self._run = run

    def settle(self) -> None:
        """Wait for the probe (it has its own deadline); raise its error, with the run back in phase `probe`."""
        error = self._future.exception()
        if error is not None:
            self._run.phase("probe")
            raise error


@contextlib.contextmanager
def probing_beside(context: Context, destination: DestinationConfig, run: RunRecorder) -> Iterator[ProbeBeside]:
    """Probe `destination` while the body runs; yield the probe, whose `cancellation` the body's commands take.

    On leaving, the probe is settled: its error replaces the body's (the cause comes first: an unreachable
    bucket also fails restic, less clearly), and is raised when the body succeeded. A body that must undo its
    work when the probe failed (forget a snapshot) settles the probe itself before leaving. Interrupted (the
    daemon is stopping) is raised as it is.
    """
    cancellation = Cancellation()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe") as pool:
        probe = ProbeBeside(pool.submit(_probe_or_cancel, context, destination, cancellation), cancellation, run)
        try:
            yield probe
        except Interrupted:
            raise
        except Exception:
            probe.settle()
            raise
        probe.settle()


def _probe_or_cancel(context: Context, destination: DestinationConfig, cancellation: Cancellation) -> None:
    try:
        context.probe(destination)
    except BaseException:
        cancellation.cancel(f"destination '{destination.name}' did not pass its probe")
        raise
