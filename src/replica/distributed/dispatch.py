"""Sending due work to the workers: one task per slot, to the job's queue (or the default queue)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from replica.distributed.app import TASK_NAME, describe_broker, make_app
from replica.errors import ReplicaError
from replica.settings import Settings
from replica.urls import redact_text

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)


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
                # A publish that cannot reach the broker must not hang the scheduler thread: a few quick tries, then
                # the daemon's own retry (replica.daemon.scheduler) takes over.
                # (each connection attempt is bounded by the app's broker_connection_timeout).
                retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1.0},
            )
        except Exception as error:  # kombu raises a zoo of socket, AMQP and Redis errors: all mean "not sent"
            reason = redact_text(str(error).splitlines()[0] if str(error) else type(error).__name__)
            raise BrokerUnavailable(f"broker {describe_broker(self._settings)}: {reason}") from None
        return target
