"""A destination's probe, run beside the restic command that needs the destination instead of before it.

In a one-shot command the probe (`Context.probe`: boto3's import and client, then a HEAD of the bucket) costs
~0.3 s, which restic's own start (key derivation, ~0.5 s) can hide. The probe still decides the outcome as if it
had run first: when it fails, the command beside it is stopped (SIGINT, as on a deadline) and the run fails with
the probe's error, in phase `probe`, whatever the command said meanwhile.

A run that writes to a destination (backup, copy, prune) also records the bucket's Object Lock state in its
details (`object_lock`, see `S3Storage.object_lock`), read in the same thread right after the probe passed: one
more round trip that the command beside it hides. `replica status` shows it without calling S3.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

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

    def __init__(
        self, context: Context, destination: DestinationConfig, run: RunRecorder, *, object_lock: bool = False
    ) -> None:
        self.cancellation = Cancellation()
        self._run = run
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._object_lock: dict[str, Any] | None = None
        self._thread = threading.Thread(
            target=self._probe,
            args=(context, destination, object_lock),
            name=f"probe-{destination.name}",
            daemon=True,
        )
        self._thread.start()

    def _probe(self, context: Context, destination: DestinationConfig, object_lock: bool) -> None:
        try:
            context.probe(destination)
            if object_lock:
                with contextlib.suppress(Exception):  # the state is only shown: it never fails the run
                    self._object_lock = context.object_lock(destination)
        except BaseException as error:  # handed to the run's thread by settle()
            self._error = error
            self.cancellation.cancel(f"destination '{destination.name}' did not pass its probe")
        finally:
            self._done.set()

    def settle(self) -> None:
        """Wait for the probe (it has its own deadline); record the bucket's Object Lock state in the run's details
        when it was asked for; raise the probe's error, with the run back in phase `probe`."""
        self._done.wait()
        if self._object_lock is not None:
            # Copied here, in the run's thread: the probe's thread never touches the run's details.
            self._run.details["object_lock"] = self._object_lock
        if self._error is not None:
            self._run.phase("probe")
            raise self._error


@contextlib.contextmanager
def probing_beside(
    context: Context, destination: DestinationConfig, run: RunRecorder, *, object_lock: bool = False
) -> Iterator[ProbeBeside]:
    """Probe `destination` while the body runs; yield the probe, whose `cancellation` the body's commands take.
    With `object_lock`, the probe also records the bucket's Object Lock state in the run's details.

    On leaving, the probe is settled: its error replaces the body's (the cause comes first: an unreachable
    bucket also fails restic, less clearly), and is raised when the body succeeded. A body that must undo its
    work when the probe failed (forget a snapshot) settles the probe itself before leaving. Interrupted (the
    daemon is stopping) and Ctrl-C are raised as they are, without waiting for the probe.
    """
    probe = ProbeBeside(context, destination, run, object_lock=object_lock)
    try:
        yield probe
    except Interrupted:
        raise
    except Exception:
        probe.settle()
        raise
    probe.settle()


class ObjectLockBeside:
    """The bucket's Object Lock state, read in a thread while a run's command works (a copy, a prune): the
    command's time hides the round trip. `record` puts it into the run's details once the command succeeded (status
    reads the state from succeeded runs only; a failed or interrupted run does not wait for it)."""

    def __init__(self, context: Context, destination: DestinationConfig) -> None:
        self._state: dict[str, Any] | None = None
        self._thread = threading.Thread(
            target=self._read, args=(context, destination), name=f"object-lock-{destination.name}", daemon=True
        )
        self._thread.start()

    def _read(self, context: Context, destination: DestinationConfig) -> None:
        with contextlib.suppress(Exception):  # S3Storage.object_lock never raises; building a client might
            self._state = context.object_lock(destination)

    def record(self, run: RunRecorder) -> None:
        """Wait for the state (bounded by the S3 client's deadline) and record it in the run's details."""
        self._thread.join()
        if self._state is not None:
            run.details["object_lock"] = self._state
