"""The Celery application both sides share: the leading daemon sends tasks with it, `replica worker` consumes them.

Delivery is at least once: a task is acknowledged only after it ran (`acks_late`), so a worker killed mid-run
loses no work (RabbitMQ hands its unacknowledged task to another consumer as soon as the dead worker's connection
drops; Redis after its `visibility_timeout`). A task may therefore arrive twice; the catalog's slot claims
(replica.actions.dispatched) make sure the work runs once. No result backend: outcomes are in the catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replica.errors import ConfigError
from replica.settings import Settings
from replica.urls import redact_url

if TYPE_CHECKING:
    from celery import Celery

TASK_NAME = "replica.run_slot"
# How long a publish or a connection attempt to the broker may take before it counts as failed.
BROKER_TIMEOUT_SECONDS = 5.0


def broker_url(settings: Settings) -> str:
    """Return the configured broker URL. Raises ConfigError when `REPLICA_BROKER_URL` is not set."""
    if settings.broker_url is None or not settings.broker_url.get_secret_value():
        raise ConfigError(
            [
                "REPLICA_BROKER_URL: the celery executor and workers need a broker "
                "(amqp://USER:PASSWORD@HOST:5672/VHOST or redis://HOST:6379/DB)"
            ]
        )
    return settings.broker_url.get_secret_value()


def describe_broker(settings: Settings) -> str:
    """Return the broker's URL without its passwords, for messages and logs (kombu takes failover URLs joined by
    `;`: each has its own)."""
    return ";".join(redact_url(part) for part in broker_url(settings).split(";"))


def make_app(settings: Settings) -> Celery:
    """Return a Celery application on the configured broker, with replica's delivery rules.

    Raises ConfigError when no broker is configured.
    """
    from celery import Celery  # deferred: ~0.3 s of imports that only the celery executor and workers need

    app = Celery("replica", broker=broker_url(settings), set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        # A prefork child that dies mid-task hands its task back (the thread pool replica's workers use dies whole:
        # the broker requeues what the dead connection held unacknowledged).
        task_reject_on_worker_lost=True,
        # One task at a time per free thread: a long backup must not hold others back in its worker's buffer.
        worker_prefetch_multiplier=1,
        task_default_queue=settings.default_queue,
        task_create_missing_queues=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=BROKER_TIMEOUT_SECONDS,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    return app
