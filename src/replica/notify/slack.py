"""Slack incoming webhooks (and the compatible ones of Mattermost, Rocket.Chat, Zulip): Block Kit payloads.

The payload is `{"text": TITLE, "blocks": [header, context, section with the text, sections of fields]}`; `text`
is what Slack shows in notifications and where blocks are not rendered. Slack answers 200 "ok".
"""

from __future__ import annotations

import re
from typing import Any

from replica.config.notify import SlackNotifierConfig
from replica.notify.base import Notification
from replica.notify.http import post_json, read_url

# Slack's documented limits: a header's plain text, a section's text, a field's text, fields per section.
HEADER_LIMIT_CHARS = 150
SECTION_TEXT_LIMIT_CHARS = 3000
FIELD_TEXT_LIMIT_CHARS = 2000
FIELDS_PER_SECTION = 10
# A message holds at most 50 blocks; four sections of facts are more than anyone reads in an alert.
MAX_FIELDS = 40
TRUNCATED = "…"

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")


def escape_mrkdwn(text: str) -> str:
    """Return `text` with &, < and > escaped, as Slack requires (otherwise `<x>` is read as a link or mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_to_mrkdwn(text: str) -> str:
    """Return Markdown `text` in Slack's mrkdwn: escaped, `**bold**` and `# headings` as `*bold*`."""
    text = escape_mrkdwn(text)
    text = _HEADING.sub(r"*\1*", text)
    return _BOLD.sub(r"*\1*", text)


def trim(text: str, limit: int) -> str:
    """Return `text` cut to `limit` characters, ending with an ellipsis (and no half escape) when cut."""
    if len(text) <= limit:
        return text
    return _CUT_ENTITY.sub("", text[: limit - len(TRUNCATED)]) + TRUNCATED


def slack_payload(notification: Notification) -> dict[str, Any]:
    """Return the incoming-webhook JSON for `notification`, within Slack's size limits."""
    title = notification.one_line_title
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": trim(title, HEADER_LIMIT_CHARS), "emoji": True}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": escape_mrkdwn(
                        f"replica · {notification.event} · {notification.severity} · job {notification.job}"
                    ),
                }
            ],
        },
    ]
    if notification.text.strip():
        text = trim(markdown_to_mrkdwn(notification.text), SECTION_TEXT_LIMIT_CHARS)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    facts = [
        {"type": "mrkdwn", "text": trim(f"*{escape_mrkdwn(key)}*\n{escape_mrkdwn(value)}", FIELD_TEXT_LIMIT_CHARS)}
        for key, value in list(notification.fields.items())[:MAX_FIELDS]
    ]
    for start in range(0, len(facts), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": facts[start : start + FIELDS_PER_SECTION]})
    return {"text": escape_mrkdwn(title), "blocks": blocks}


class SlackNotifier:
    """POSTs `slack_payload` to an incoming-webhook URL, whose path is its secret."""

    kind = "slack"

    def __init__(self, config: SlackNotifierConfig) -> None:
        """Read the URL now; raises ConfigError naming the variable or file when it is missing."""
        self.name = config.name
        self._url = read_url(config, self.kind)

    def send(self, notification: Notification, timeout_seconds: float) -> None:
        """POST the message once; raises NotifyError (host only) when Slack does not accept it."""
        post_json(self._url.get_secret_value(), slack_payload(notification), timeout_seconds)
