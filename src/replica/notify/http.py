"""One JSON POST with urllib, for every HTTP notifier: a timeout, no redirects, errors sorted by whether a retry helps.

Webhook URLs often carry their token in the path (Slack's `/services/T.../B.../SECRET`), so an error names only
the scheme and host of the URL, and never quotes urllib's own message, which may contain the whole URL.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.error
import urllib.request
from typing import Any

from pydantic import SecretStr

from replica.config.notify import UrlNotifierBase, is_http_url
from replica.errors import ConfigError
from replica.notify.base import NotifyError
from replica.notify.ping import USER_AGENT, redact_url
from replica.secrets import read_secret
from replica.urls import without_user_info

# Enough to read a short answer ("ok", PagerDuty's status JSON) without trusting an endless one.
ANSWER_LIMIT_BYTES = 64 * 1024
ERROR_CODE_LIMIT_BYTES = 64
_ERROR_CODE = re.compile(r"[a-z][a-z_]{1,63}")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body and report the GET's 200: a notification
    # lost while counted as sent. A webhook that redirects is misconfigured; say so instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects())


def read_url(config: UrlNotifierBase, kind: str) -> SecretStr:
    """Return the notifier's URL: inline, from its environment variable or from its file.

    Raises ConfigError naming the notifier and the variable or file (never the value) when it is missing, empty or
    not an http(s) URL.
    """
    what = f"notifier '{config.name}' ({kind}) URL"
    if config.url is not None:
        return SecretStr(config.url)
    secret = read_secret(env_name=config.url_env, file_path=config.url_file, what=what)
    source = f"environment variable {config.url_env}" if config.url_env else f"file {config.url_file}"
    if secret is None:  # the config model requires one source: only a bug gets here
        raise ConfigError([f"{what}: no URL configured"])
    if not is_http_url(secret.get_secret_value().strip()):
        raise ConfigError([f"{what}: the value of {source} is not an http(s) URL"])
    return SecretStr(secret.get_secret_value().strip())


def post_json(url: str, payload: dict[str, Any], timeout_seconds: float) -> tuple[int, bytes]:
    """POST `payload` as JSON to `url`; return the 2xx status and the start of the answer's body.

    Raises NotifyError naming only the URL's host: retryable for 5xx, 429 and network trouble (refused, reset,
    timed out), not for other answers (4xx, a redirect) or an invalid URL.
    """
    target = redact_url(url)
    # default=str: a datetime left in a report document must not cost the notification.
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    try:
        # Credentials in the URL (`https://user:password@host/...`) travel as a Basic header: urllib would take
        # them for part of the host name and ask DNS for it.
        plain_url, authorization = without_user_info(url)
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json, text/plain, */*",
        }
        if authorization:
            headers["Authorization"] = authorization
        request = urllib.request.Request(plain_url, data=body, method="POST", headers=headers)
        with _OPENER.open(request, timeout=timeout_seconds) as response:
            answer = response.read(ANSWER_LIMIT_BYTES)
            status = int(response.status)
    except urllib.error.HTTPError as error:
        code = _error_code(error)
        raise NotifyError(
            f"{target} answered {_describe_status(error.code)}{code}", retryable=_retryable_status(error.code)
        ) from None
    except urllib.error.URLError as error:
        # An untrusted certificate will be untrusted the next time too.
        retryable = not isinstance(error.reason, ssl.SSLError)
        raise NotifyError(
            f"cannot reach {target}: {_describe_reason(error.reason, timeout_seconds)}", retryable=retryable
        ) from None
    except (TimeoutError, OSError) as error:
        raise NotifyError(
            f"no answer from {target}: {_describe_reason(error, timeout_seconds)}", retryable=True
        ) from None
    except http.client.HTTPException as error:  # a malformed or cut answer: the server may be restarting
        raise NotifyError(f"bad answer from {target}: {type(error).__name__}", retryable=True) from None
    except ValueError:  # "unknown url type" and friends, whose message quotes the URL
        raise NotifyError(f"invalid URL ({target})", retryable=False) from None
    if not 200 <= status < 300:  # a 1xx or 3xx that urllib let through
        raise NotifyError(f"{target} answered {_describe_status(status)}", retryable=False)
    return status, answer


def _error_code(error: urllib.error.HTTPError) -> str:
    # Slack answers errors with a bare code ("no_service", "invalid_payload") that tells what to fix. Only a
    # body of that shape is repeated: any other body could echo the request, token included.
    try:
        answer = error.read(ERROR_CODE_LIMIT_BYTES + 1).decode("ascii").strip()
    except (OSError, UnicodeDecodeError, http.client.HTTPException):
        answer = ""
    finally:
        error.close()
    return f" ({answer})" if _ERROR_CODE.fullmatch(answer) else ""


def _retryable_status(status: int) -> bool:
    # Server errors and rate limits may pass; any other client error will be answered the same way every time.
    return status >= 500 or status == 429


def _describe_status(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status} (a redirect, not followed: fix the URL)"
    return f"HTTP {status}"


def _describe_reason(reason: object, timeout_seconds: float) -> str:
    # Never str() an unknown object: only OS errors' own short texts, which name no URL.
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {reason.verify_message}"
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout_seconds:g} s"
    if isinstance(reason, OSError):
        return f"{type(reason).__name__}: {reason.strerror or 'network error'}"
    return "network error"
