"""PagerDuty Events API v2: failures and breaches trigger an alert, a recovery resolves it (same dedup key).

The routing key is the integration's secret: it is read from an environment variable or a file, sent only in the
request body, and never logged. PagerDuty answers 202 when it accepted the event.
"""

from __future__ import annotations

from typing import Any

from replica.config.notify import PagerdutyNotifierConfig
from replica.errors import ConfigError
from replica.notify.base import Notification
from replica.notify.http import post_json
from replica.secrets import read_secret

# The Events API refuses a longer summary.
SUMMARY_LIMIT_CHARS = 1024
# The Events API refuses a longer dedup key.
DEDUP_KEY_LIMIT_CHARS = 255


def dedup_key_of(notification: Notification) -> str:
    """Return the notification's dedup key, or `replica/JOB` so that a job's recovery resolves its own trigger."""
    return (notification.dedup_key or f"replica/{notification.job}")[:DEDUP_KEY_LIMIT_CHARS]


def pagerduty_event(notification: Notification, routing_key: str) -> dict[str, Any]:
    """Return the Events API v2 body: a `resolve` for a recovery, a `trigger` with its payload otherwise."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if notification.event == "recovery" else "trigger",
        "dedup_key": dedup_key_of(notification),
    }
    if event["event_action"] == "trigger":  # the API requires a payload only to trigger
        event["payload"] = {
            "summary": notification.one_line_title[:SUMMARY_LIMIT_CHARS],
            "source": "replica",
            # Our severities are a subset of PagerDuty's (critical, error, warning, info).
            "severity": notification.severity,
            "component": notification.job,
            "class": notification.event,
            "custom_details": dict(notification.fields),
        }
    return event


class PagerdutyNotifier:
    """Sends events to the Events API v2 endpoint with a routing key read from env or file."""

    kind = "pagerduty"

    def __init__(self, config: PagerdutyNotifierConfig) -> None:
        """Read the routing key now; raises ConfigError naming the variable or file when it is missing."""
        self.name = config.name
        self._url = config.url
        key = read_secret(
            env_name=config.routing_key_env,
            file_path=config.routing_key_file,
            what=f"notifier '{config.name}' (pagerduty) routing key",
        )
        if key is None:  # the config model requires one source: only a bug gets here
            raise ConfigError([f"notifier '{config.name}' (pagerduty): no routing key configured"])
        self._routing_key = key

    def send(self, notification: Notification, timeout_seconds: float) -> None:
        """Send the event once; raises NotifyError (host only) when PagerDuty does not accept it."""
        post_json(self._url, pagerduty_event(notification, self._routing_key.get_secret_value()), timeout_seconds)
