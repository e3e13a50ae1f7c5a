"""distributed/dispatch.py: sending a slot's task to the real RabbitMQ on 127.0.0.1, and retrying while it refuses."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kombu import Connection

from replica.distributed import dispatch
from replica.distributed.dispatch import BrokerUnavailable, Dispatcher
from replica.settings import Settings

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
SLOT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this test's own, deleted afterwards."""
    name = f"replica-test-{uuid.uuid4().hex[:8]}"
    yield name
    with Connection(RABBITMQ) as connection:
        connection.default_channel.queue_delete(name)


def test_a_sent_task_names_job_kind_and_slot_in_the_jobs_queue(queue: str) -> None:
    dispatcher = Dispatcher(Settings(broker_url=RABBITMQ))
    outcomes: list[str] = []
    stopping = threading.Event()

    def observe(outcome: str) -> None:
        outcomes.append(outcome)
        if outcome == "failed":
            stopping.set()  # RabbitMQ on 127.0.0.1 is down: fail on the assertion below rather than retry forever

    dispatcher.send_until_taken("billing", "backup", queue, lambda: SLOT, stopping, observe)

    with Connection(RABBITMQ) as connection:
        message = connection.SimpleQueue(queue).get(timeout=5)
        message.ack()
    assert outcomes == ["sent"]
    assert message.headers["task"] == "replica.run_slot"
    assert message.decode()[0] == ["billing", "backup", SLOT.isoformat()]


def test_a_refused_send_is_one_error_naming_the_broker_without_its_password() -> None:
    dispatcher = Dispatcher(Settings(broker_url="amqp://guest:wrong-secret@127.0.0.1:1//"))

    with pytest.raises(BrokerUnavailable) as info:
        dispatcher.send("billing", "backup", SLOT, None)

    assert "127.0.0.1:1" in str(info.value)
    assert "wrong-secret" not in str(info.value)
    assert "\n" not in str(info.value)


class RefusingDispatcher(Dispatcher):
    """Refuses the first `refusals` sends (as the broker's outage would), then takes them; records every try."""

    def __init__(self, refusals: int) -> None:
        super().__init__(Settings(broker_url=RABBITMQ))
        self.refusals = refusals
        self.tried: list[datetime] = []

    def send(self, job: str, kind: str, slot: datetime, queue: str | None) -> str:
        self.tried.append(slot)
        if len(self.tried) <= self.refusals:
            raise BrokerUnavailable("broker amqp://127.0.0.1: connection refused")
        return queue or "replica"


def test_a_refused_send_is_tried_again_and_sends_the_newest_slot_once_a_later_one_fell_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a broker that refuses two sends, and a next slot that falls due after the first refusal
    monkeypatch.setattr(dispatch, "RETRY_SECONDS", 0.01)
    dispatcher = RefusingDispatcher(refusals=2)
    later = SLOT + timedelta(minutes=5)
    outcomes: list[str] = []

    # WHEN the daemon sends the work
    dispatcher.send_until_taken(
        "billing", "backup", None, lambda: SLOT if not dispatcher.tried else later, threading.Event(), outcomes.append
    )

    # THEN it tried until the broker took it, the later slot instead of the superseded one
    assert outcomes == ["failed", "failed", "sent"]
    assert dispatcher.tried == [SLOT, later, later]


def test_a_daemon_stopping_stops_trying() -> None:
    dispatcher = RefusingDispatcher(refusals=1_000)
    stopping = threading.Event()
    outcomes: list[str] = []

    def observe(outcome: str) -> None:
        outcomes.append(outcome)
        stopping.set()  # the daemon is told to stop while the broker is away

    dispatcher.send_until_taken("billing", "backup", None, lambda: SLOT, stopping, observe)

    assert outcomes == ["failed"]
    assert dispatcher.tried == [SLOT]
