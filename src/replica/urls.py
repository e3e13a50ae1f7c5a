"""URLs as replica accepts and shows them: credentials redacted wherever a URL or DSN is shown, and plain HTTP only
to this host.

One helper for every message, log line, status, report and event: `redact_url` for a URL that replica shows on
purpose (a catalog DSN, an S3 endpoint, a webhook's host), `redact_text` for free text that may quote one (a child
process's stderr, an exception from a library). Credentials in a URL's user info are replaced by `***`; a DSN's
`password=` is too.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
LOOPBACK_NAMES = frozenset({"localhost"})
# `scheme://user:password@` or `scheme://token@` anywhere in a text: the user info up to the last `@` before the host
# (greedy: a password may hold a raw `@`, as `p@ss` in `postgresql://app:p@ss@db/x`).
_USER_INFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s]+)@")
# libpq and ODBC style `password=...` (also `pwd=`), quoted or not.
_PASSWORD_KEYWORD = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd)\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s;&)]+)", re.I
)


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """Return `url` (or a DSN such as `postgresql+psycopg://user:pw@db/name`) safe to show: the password replaced
    by `***` (a user alone, which may be a token, too), the query and fragment dropped (tokens live there).

    With `keep_path=False` only `scheme://host[:port]` is kept (for URLs whose path is the secret: a dead-man
    check, a Slack webhook). A URL that cannot be parsed gives `(invalid URL)`, never the text itself.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a port that is not a number, an unbalanced bracket
        return "(invalid URL)"
    if not parts.scheme or not (host or parts.path):
        return "(invalid URL)"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc = f"{netloc}:{port}"
    if parts.password is not None:
        netloc = f"{parts.username}:{REDACTED}@{netloc}"
    elif parts.username is not None:
        netloc = f"{REDACTED}@{netloc}"
    if not keep_path:
        return f"{parts.scheme}://{netloc}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def redact_text(text: str) -> str:
    """Return `text` with the user info of every URL in it and every `password=` value replaced by `***`."""
    if "@" not in text and "=" not in text:
        return text  # the common case, without a regular expression
    text = _USER_INFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)
    return _PASSWORD_KEYWORD.sub(lambda match: f"{match['key']}{REDACTED}", text)


def has_user_info(url: str) -> bool:
    """Return True when `url` carries credentials (`user:password@` or `token@`) before its host."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "@" in url
    return parts.username is not None or parts.password is not None


def without_user_info(url: str) -> tuple[str, str | None]:
    """Return `url` without its user info, and the `Authorization: Basic` value that carries it (or None).

    urllib does not send a URL's user info as credentials: it takes `user:password@host` for the host name and
    asks DNS for it, sending the password to the resolver. HTTP clients send this header instead.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    shown_host = f"[{host}]" if ":" in host else host
    netloc = f"{shown_host}:{parts.port}" if parts.port else shown_host
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return urlunsplit(parts._replace(netloc=netloc)), "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def is_loopback_host(host: str) -> bool:
    """Return True for `localhost`, 127.0.0.0/8 and ::1: traffic that never leaves this machine."""
    import ipaddress

    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def endpoint_problem(url: str) -> str | None:
    """Return why `url` may not be an S3 endpoint, or None when it may. The reason never repeats credentials.

    An endpoint is `http(s)://host[:port]`, with no credentials in it (S3 keys come from the settings) and plain
    `http://` only to a loopback host: anything else would send the requests, signed but readable, across a network.
    """
    if not re.fullmatch(r"https?://[^/\s]+/?", url):
        return "must look like http(s)://host[:port]"
    if has_user_info(url):
        return (
            "must not carry credentials (user:password@); give the S3 keys as AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        return "must look like http(s)://host[:port]"
    if parts.scheme == "http" and not is_loopback_host(host):
        return (
            f"plain http:// to '{host}' would cross the network unencrypted; use https:// (plain http:// is "
            "allowed only to localhost, 127.0.0.0/8 and ::1)"
        )
    return None
