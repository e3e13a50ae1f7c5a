"""Dead-man pings in the Healthchecks.io style: an outside service notices when replica itself stops running.

Conventions of Healthchecks.io (and of the compatible services): `URL/start` when a run starts, `URL` when it
succeeds, `URL/fail` when it fails, each a POST whose body (the first 10 KB) is kept as the event's log.

A ping fails soft: it retries a few times with a short backoff, then logs one warning and gives up. It never
raises, because a monitoring service being down must not fail (or hide the outcome of) the backup it watches.
The URL carries the check's secret UUID, so only its scheme and host are ever logged.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from replica import __version__, urls

logger = logging.getLogger(__name__)

# The suffix each event appends to the check's URL.
EVENT_SUFFIXES = {"start": "/start", "success": "", "failure": "/fail"}
# Healthchecks.io stores the first 10,000 bytes of a ping's body (PING_BODY_LIMIT); the rest would be dropped.
MESSAGE_LIMIT_BYTES = 10_000
# Doubling from here: 0.25 s then 0.5 s with the default three attempts, so a run waits at most a second or so
# (plus the timeouts) on a monitoring service that is down.
BACKOFF_SECONDS = 0.25
USER_AGENT = f"replica/{__version__}"


def event_url(url: str, event: str) -> str:
    """Return the URL to ping for `event` ("start", "success" or "failure"); a query string is kept at the end.

    Raises KeyError for an unknown event.
    """
    suffix = EVENT_SUFFIXES[event]
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def redact_url(url: str) -> str:
    """Return only the scheme and host (with port) of `url`: safe to log, unlike its path (the check's secret)."""
    return urls.redact_url(url, keep_path=False)


def _body(message: str) -> bytes:
    # Cut at a character boundary: half a UTF-8 sequence at the end would make the stored log undecodable.
    return message.encode("utf-8")[:MESSAGE_LIMIT_BYTES].decode("utf-8", "ignore").encode("utf-8")


def _is_worth_retrying(error: Exception) -> bool:
    # Server errors, rate limits and network trouble may pass; any other client error (an unknown check: 404)
    # will answer the same way every time.
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code == 429
    return isinstance(error, OSError)  # URLError, timeouts, refused connections


def _describe(error: Exception) -> str:
    # Never str(error) as such: some errors (an invalid URL) quote the whole URL, secret included.
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error.reason).__name__}: {error.reason}" if isinstance(error.reason, OSError) else "URL error"
    if isinstance(error, OSError):
        return f"{type(error).__name__}: {error.strerror or str(error) or 'network error'}"
    return type(error).__name__


def _post(url: str, body: bytes, timeout_seconds: float) -> int:
    plain_url, authorization = urls.without_user_info(url)
    headers = {"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(plain_url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
        response.read()  # drain it so the connection closes cleanly
        return int(response.status)


def send_ping(
    url: str,
    event: str,
    *,
    timeout_seconds: float = 10.0,
    attempts: int = 3,
    message: str = "",
) -> bool:
    """Ping the dead-man check at `url` for `event` ("start", "success" or "failure") with `message` as body.

    Returns True once the service accepted the ping (a 2xx answer), False when every attempt failed, the service
    refused it, or the URL or event is invalid. Never raises: it logs one warning (naming the host only) instead.
    """
    target = redact_url(url)
    if event not in EVENT_SUFFIXES:
        logger.warning("dead-man ping to %s not sent: unknown event %r", target, event)
        return False
    ping_url = event_url(url, event)
    body = _body(message)
    problem = "no attempt made"
    for attempt in range(1, max(attempts, 1) + 1):
        try:
            status = _post(ping_url, body, timeout_seconds)
        except Exception as error:  # fail soft whatever urllib raises: the run's own outcome matters more
            problem = _describe(error)
            logger.debug("dead-man ping '%s' to %s, attempt %d: %s", event, target, attempt, problem)
            if not _is_worth_retrying(error):
                break
        else:
            if 200 <= status < 300:
                return True
            problem = f"HTTP {status}"  # urllib raises for 4xx/5xx; anything else unexpected is not retried
            break
        if attempt < attempts:
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    logger.warning("dead-man ping '%s' to %s failed: %s", event, target, problem)
    return False
