"""The console's pages: server-rendered HTML (Jinja2), a little JavaScript at most.

Signing in puts the token in an HttpOnly, SameSite=Strict cookie, so the pages' forms (POST only) cannot be
submitted from another site; the API accepts the same cookie or a Bearer header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from replica.web.auth import SESSION_COOKIE

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)


def mount_static(app: FastAPI) -> None:
    """Serve the console's stylesheet and script under /static."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None) -> Response:
    """Return the page for an error: the sign-in page for a missing or unknown token, else the message."""
    if status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "holder": None}, status_code=status
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": _local(next), "error": None, "holder": None})


@router.post("/login")
def login(
    request: Request, token: Annotated[str, Form(max_length=256)], next: Annotated[str, Form()] = "/"
) -> Response:
    holder = request.app.state.web.context().catalog.tokens.holder(token.strip())
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
