"""Sending due work to the workers: one task per slot, to the job's queue (or the default queue)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from replica.distributed.app import TASK_NAME, describe_broker, make_app
from replica.errors import ReplicaError
from replica.settings import Settings
from replica.urls import redact_text

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

# A publish that failed is tried again this often, until it succeeds or the daemon stops.
RETRY_SECONDS = 2.0


class BrokerUnavailable(ReplicaError):
    """The broker refused or did not answer a publish."""


class Dispatcher:
    """Publishes tasks on the configured broker; safe to share between threads (kombu pools its connections)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: Celery = make_app(settings)

    def send(self, job: str, kind: str, slot: datetime, queue: str | None) -> str:
        """Publish the task of `slot` of `job`'s `kind` to `queue` (None: the default queue); return the queue used.

        Raises BrokerUnavailable, naming the broker without its password, when the publish fails.
        """
        target = queue or self._settings.default_queue
        try:
            self._app.send_task(
                TASK_NAME,
                args=[job, kind, slot.isoformat()],
                queue=target,
                retry=True,
                # A publish that cannot reach the broker must not hang the scheduler thread: a few quick tries (each
                # connection attempt bounded by the app's broker_connection_timeout), then send_until_taken's own
                # retry takes over.
                retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1.0},
            )
        except Exception as error:  # kombu raises a zoo of socket, AMQP and Redis errors: all mean "not sent"
            reason = redact_text(str(error).splitlines()[0] if str(error) else type(error).__name__)
            raise BrokerUnavailable(f"broker {describe_broker(self._settings)}: {reason}") from None
        return target

    def send_until_taken(
        self,
        job: str,
        kind: str,
        queue: str | None,
        latest_slot: Callable[[], datetime | None],
        stopping: threading.Event,
        observe: Callable[[str], None],
    ) -> None:
        """Send the task of the work's current slot (`latest_slot()`: the newest fire time at or before now, if any,
        else now); while the broker refuses it, try again every RETRY_SECONDS until it takes it or `stopping` is
        set, sending the newest slot once a later one fell due (it covers the earlier). `observe` hears "sent" or
        "failed" of each try. Returns when sent or stopped."""
        slot = latest_slot() or datetime.now(UTC)
        while not stopping.is_set():
            try:
                sent_to = self.send(job, kind, slot, queue)
            except BrokerUnavailable as error:
                observe("failed")
                logger.error("%s of '%s' (slot %s) not sent yet: %s", kind, job, slot.isoformat(), error)
                latest = latest_slot() or slot
                if latest > slot:
                    # The next slot's own fire was coalesced with this still-running send: it is sent instead.
                    logger.error(
                        "%s of '%s': slot %s superseded by %s", kind, job, slot.isoformat(), latest.isoformat()
                    )
                    slot = latest
                stopping.wait(RETRY_SECONDS)
                continue
            observe("sent")
            logger.info("%s of '%s' (slot %s) sent to queue '%s'", kind, job, slot.isoformat(), sent_to)
            return
