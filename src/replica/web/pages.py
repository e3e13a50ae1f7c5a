"""The console's pages: server-rendered HTML (Jinja2), a little JavaScript at most.

Signing in puts the token in an HttpOnly, SameSite=Strict cookie, so the pages' forms (POST only) cannot be
submitted from another site; the API accepts the same cookie or a Bearer header. Every page takes `Auditor` (any
valid token), every form that acts takes `Operator`. This module holds sign-in, errors and the overview; the job
pages (charts, actions, restore) are in `pages_jobs`, reports, the audit log and tasks in `pages_records`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from replica.actions.status import collect_status
from replica.web import pages_jobs, pages_records
from replica.web.auth import SESSION_COOKIE, Auditor
from replica.web.rendering import HERE, render, templates
from replica.web.state import web_state

router = APIRouter(include_in_schema=False)
router.include_router(pages_jobs.router)
router.include_router(pages_records.router)


def mount_static(app: FastAPI) -> None:
    """Serve the console's stylesheet and script under /static."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None) -> Response:
    """Return the page for an error: the sign-in page for a missing or unknown token, else the message."""
    if status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return render(request, "error.html", None, status_code=status, status=status, message=message)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, holder: Auditor) -> Response:
    """Every job with its state (coloured), reasons, RPO and RTO against the objectives per destination, and the
    job files that do not load."""
    status = collect_status(web_state(request).context())
    return render(request, "overview.html", holder, status=status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": _local(next), "error": None, "holder": None})


@router.post("/login")
def login(
    request: Request, token: Annotated[str, Form(max_length=256)], next: Annotated[str, Form()] = "/"
) -> Response:
    holder = web_state(request).context().catalog.tokens.holder(token.strip())
    if holder is None:
        context = {"next": _local(next), "error": "unknown or revoked token", "holder": None}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _local(path: str) -> str:
    """Return `path` when it is a path on this site, else `/` (no redirect to another site after sign-in)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"
