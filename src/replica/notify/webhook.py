"""The generic JSON webhook: replica's own documented payload, with the JSON report as `document`.

Payload (format 1, stable; a new key may appear, none will change meaning without a new format number):
`{"format": 1, "source": "replica", "event", "job", "severity", "title", "text", "fields", "document"}`.
Any 2xx answer means accepted.
"""

from __future__ import annotations

from typing import Any

from replica.config.notify import WebhookNotifierConfig
from replica.notify.base import Notification
from replica.notify.http import post_json, read_url

PAYLOAD_FORMAT = 1


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """Return the JSON document POSTed for `notification`."""
    return {
        "format": PAYLOAD_FORMAT,
        "source": "replica",
        "event": notification.event,
        "job": notification.job,
        "severity": notification.severity,
        "title": notification.one_line_title,
        "text": notification.text,
        "fields": dict(notification.fields),
        "document": notification.document,
    }


class WebhookNotifier:
    """POSTs `webhook_payload` to a URL that may carry a token (so it is kept out of logs and errors)."""

    kind = "webhook"

    def __init__(self, config: WebhookNotifierConfig) -> None:
        """Read the URL now; raises ConfigError naming the variable or file when it is missing."""
        self.name = config.name
        self._url = read_url(config, self.kind)

    def send(self, notification: Notification, timeout_seconds: float) -> None:
        """POST the notification once; raises NotifyError (host only) when it is not accepted."""
        post_json(self._url.get_secret_value(), webhook_payload(notification), timeout_seconds)
