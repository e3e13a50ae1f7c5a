"""Sending one notification to every notifier that wants it: build, send, retry, and never raise.

Notifiers fail soft: a chat service or mail server being down must neither fail the job nor hide its own outcome.
Each delivery ends as a `Delivery` for the audit log, and each failed one as one warning; neither holds a secret,
because notifiers only raise NotifyError and ConfigError with secret-free messages, and anything else is reported
by its type alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from replica.config.notify import NotifierConfig
from replica.errors import ConfigError
from replica.notify.base import Delivery, Notification, Notifier, NotifyError
from replica.notify.email import EmailNotifier
from replica.notify.pagerduty import PagerdutyNotifier
from replica.notify.slack import SlackNotifier
from replica.notify.webhook import WebhookNotifier

logger = logging.getLogger(__name__)

# Doubling from here: 0.5 s, 1 s, 2 s... between attempts, so a default notifier (2 retries) waits 1.5 s in all
# on top of its timeouts.
BACKOFF_SECONDS = 0.5

# Each class is built from its kind's config model and reads its secrets in its constructor.
NOTIFIER_KINDS: dict[str, Callable[[Any], Notifier]] = {
    "webhook": WebhookNotifier,
    "slack": SlackNotifier,
    "email": EmailNotifier,
    "pagerduty": PagerdutyNotifier,
}


def build_notifier(config: NotifierConfig) -> Notifier:
    """Return the notifier `config` describes, its secrets read from env or files.

    Raises ConfigError naming the notifier and the missing variable or file (never a value), or listing the valid
    kinds when the kind is unknown.
    """
    factory = NOTIFIER_KINDS.get(config.kind)
    if factory is None:
        valid = ", ".join(sorted(NOTIFIER_KINDS))
        raise ConfigError([f"notifier '{config.name}': unknown kind '{config.kind}' (valid kinds: {valid})"])
    return factory(config)


def deliver(
    notification: Notification,
    configs: Iterable[NotifierConfig],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send `notification` to every notifier in `configs` whose `events` include its event, one after another.

    Returns one Delivery per notifier that wanted the event, in order, sent or not. Never raises.
    """
    deliveries = []
    for config in configs:
        if notification.event in config.events:
            deliveries.append(_deliver_once(notification, config, sleep))
    return deliveries


def _deliver_once(notification: Notification, config: NotifierConfig, sleep: Callable[[float], None]) -> Delivery:
    started = time.monotonic()
    attempts = 0
    problem: str
    try:
        notifier = build_notifier(config)
    except ConfigError as error:  # a missing secret: the message names the variable or file only
        problem = str(error)
    except Exception as error:  # fail soft; the type alone, as any other message might quote a secret
        problem = f"cannot set up the notifier: unexpected {type(error).__name__}"
    else:
        for attempt in range(1, config.retries + 2):
            attempts = attempt
            try:
                notifier.send(notification, config.timeout)
            except NotifyError as error:
                problem = error.message
                retry = error.retryable
            except Exception as error:  # a bug in a notifier will not go away by retrying
                problem = f"unexpected {type(error).__name__}"
                retry = False
            else:
                elapsed = time.monotonic() - started
                logger.debug(
                    "notification '%s' of job %s sent to %s", notification.event, notification.job, config.name
                )
                return Delivery(config.name, config.kind, notification.event, True, attempts, None, elapsed)
            logger.debug("notifier %s, attempt %d of %d: %s", config.name, attempt, config.retries + 1, problem)
            if not retry or attempt > config.retries:
                break
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    logger.warning(
        "notification '%s' of job %s not sent to %s (%s) after %d attempt(s): %s",
        notification.event,
        notification.job,
        config.name,
        config.kind,
        attempts,
        problem,
    )
    return Delivery(config.name, config.kind, notification.event, False, attempts, problem, time.monotonic() - started)
