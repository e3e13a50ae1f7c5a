"""A destination's probe, run beside the restic command that needs the destination instead of before it.

In a one-shot command the probe (`Context.probe`: boto3's import and client, then a HEAD of the bucket) costs
~0.3 s, which restic's own start (key derivation, ~0.5 s) can hide. The probe still decides the outcome as if it
had run first: when it fails, the command beside it is stopped (SIGINT, as on a deadline) and the run fails with
the probe's error, in phase `probe`, whatever the command said meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from replica.actions.context import Context
from replica.actions.runs import RunRecorder
from replica.config.models import DestinationConfig
from replica.errors import Interrupted
from replica.execute import Cancellation


class ProbeBeside:
    """A probe running in a thread; `cancellation` stops the commands given it once the probe fails.

    The thread is a daemon: a command stopped by Ctrl-C or the daemon's shutdown neither waits for a probe hanging
    on a silent endpoint (up to its deadline) nor keeps the process alive for it.
    """

    def __init__(self, context: Context, destination: DestinationConfig, run: RunRecorder) -> None:
        self.cancellation = Cancellation()
        self._run = run
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._probe, args=(context, destination), name=f"probe-{destination.name}", daemon=True
        )
        self._thread.start()

    def _probe(self, context: Context, destination: DestinationConfig) -> None:
        try:
            context.probe(destination)
        except BaseException as error:  # handed to the run's thread by settle()
            self._error = error
            self.cancellation.cancel(f"destination '{destination.name}' did not pass its probe")
        finally:
            self._done.set()

    def settle(self) -> None:
        """Wait for the probe (it has its own deadline); raise its error, with the run back in phase `probe`."""
        self._done.wait()
        if self._error is not None:
            self._run.phase("probe")
            raise self._error


@contextlib.contextmanager
def probing_beside(context: Context, destination: DestinationConfig, run: RunRecorder) -> Iterator[ProbeBeside]:
    """Probe `destination` while the body runs; yield the probe, whose `cancellation` the body's commands take.

    On leaving, the probe is settled: its error replaces the body's (the cause comes first: an unreachable
    bucket also fails restic, less clearly), and is raised when the body succeeded. A body that must undo its
    work when the probe failed (forget a snapshot) settles the probe itself before leaving. Interrupted (the
    daemon is stopping) and Ctrl-C are raised as they are, without waiting for the probe.
    """
    probe = ProbeBeside(context, destination, run)
    try:
        yield probe
    except Interrupted:
        raise
    except Exception:
        probe.settle()
        raise
    probe.settle()
