"""The web application: the JSON API under `/api`, the console's pages, `/healthz`; errors as one clear message.

Every error answers with a 4xx and a message a person can act on: an unknown job 404, a refused or conflicting
action 409 (a live restore target, a job already running), a malformed or oversized request 422/413. A 5xx means
a bug, or (502) a destination that failed while the request waited on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from replica import __version__, errors, execute
from replica.settings import Settings
from replica.urls import redact_text
from replica.web.state import WebState

logger = logging.getLogger(__name__)

# Every request body the API takes is a few hundred bytes of JSON or form fields.
MAX_BODY_BYTES = 64 * 1024
# How long running actions get to stop (SIGINT, then SIGKILL) when the server stops.
STOP_GRACE_SECONDS = 10.0

# The HTTP status of each error an action may raise before its work starts, most specific first.
ERROR_STATUS: tuple[tuple[type[errors.ReplicaError], int], ...] = (
    (errors.NotFound, 404),
    (errors.NotPermitted, 403),
    (errors.TargetNotEmpty, 409),
    (errors.JobBusy, 409),
    (errors.RepositoryLocked, 409),
    (errors.ConfigError, 409),
    (errors.UsageError, 400),
    (errors.Interrupted, 503),
    (errors.StorageError, 502),
    (errors.ResticError, 502),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def status_for(error: errors.ReplicaError) -> int:
    """Return the HTTP status of an error raised while answering a request."""
    for error_class, status in ERROR_STATUS:
        if isinstance(error, error_class):
            return status
    return 500


def wants_json(request: Request) -> bool:
    """Return True when the answer should be JSON: API paths, and clients that do not ask for HTML."""
    path = request.url.path
    return path.startswith("/api") or path == "/healthz" or "text/html" not in request.headers.get("accept", "")


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "request"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(settings: Settings) -> FastAPI:
    """Return the application for `settings` (its task runner starts and stops with the app's lifespan)."""
    from replica.web import api, api_history, api_reads, pages

    state = WebState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if state.tasks.running_count():
            logger.warning("stopping: interrupting %d running task(s)", state.tasks.running_count())
            execute.stop_processes(STOP_GRACE_SECONDS)
        state.tasks.shutdown()
        execute.allow_processes()
        state.context().catalog.interrupt_running(
            host=socket.gethostname(), pid=os.getpid(), reason="interrupted: the web server stopped"
        )

    app = FastAPI(
        title="replica",
        version=__version__,
        description="Backup replication and restore verification: status, evidence and operator actions.",
        lifespan=lifespan,
        # No Swagger UI or ReDoc: they load their scripts from a CDN into the console's origin, where a script can
        # act with the signed-in operator's cookie. /openapi.json (no secret in it) is the description.
        docs_url=None,
        redoc_url=None,
    )
    app.state.web = state

    async def error_answer(request: Request, status: int, message: str, headers: dict[str, str] | None) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        return pages.error_page(request, status, message, headers)

    @app.exception_handler(errors.ReplicaError)
    async def replica_error(request: Request, error: errors.ReplicaError) -> Response:
        return await error_answer(request, status_for(error), redact_text(str(error)), None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        return await error_answer(request, 422, _validation_message(error), None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return await error_answer(request, error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.get("/healthz", tags=["health"], summary="Liveness: answers without a token, says nothing else")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(api.router)
    app.include_router(api_reads.router)
    app.include_router(api_history.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    return app


def limit_body(app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> ASGIApp:
    """Wrap an ASGI app so that a request body over `max_bytes` gets 413 before the app sees any of it."""

    async def reject(send: Send, status: int, message: str) -> None:
        body = json.dumps({"detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await reject(send, 413, f"request body over {max_bytes} bytes")
            return
        # Read the whole (small) body first: a chunked body over the limit is refused before the app starts.
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > max_bytes:
                await reject(send, 413, f"request body over {max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return limited


def create_server_app(settings: Settings) -> ASGIApp:
    """Return the application as served: `create_app` behind the request-body limit."""
    return limit_body(create_app(settings))
