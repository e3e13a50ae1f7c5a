"""The Celery application's configuration, without a broker: delivery rules and what is shown of the broker."""

from __future__ import annotations

import pytest

from replica.distributed.app import describe_broker, make_app
from replica.errors import ConfigError
from replica.settings import Settings


def test_every_password_of_a_failover_broker_url_is_hidden() -> None:
    settings = Settings(broker_url="amqp://replica:first-secret@mq1/vh;amqp://replica:second-secret@mq2/vh")
    shown = describe_broker(settings)
    assert "first-secret" not in shown and "second-secret" not in shown
    assert "mq1" in shown and "mq2" in shown


def test_tasks_are_acknowledged_after_they_ran_one_at_a_time_per_thread() -> None:
    app = make_app(Settings(broker_url="amqp://replica:secret@mq/vh", default_queue="backups"))
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_default_queue == "backups"


def test_no_broker_is_a_one_line_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="REPLICA_BROKER_URL"):
        make_app(Settings())
