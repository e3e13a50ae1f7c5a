"""Who is asking: the token of a request (an `Authorization: Bearer` header, or the console's session cookie),
resolved to its holder and role. Every route but `/healthz` and the login page depends on `auditor` or
`operator` below; the token itself is never logged, recorded or shown again."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from replica.catalog.tokens import TokenHolder
from replica.web.state import web_state

SESSION_COOKIE = "replica_token"
BEARER = "bearer "
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotAuthenticated(HTTPException):
    """No token, or one the catalog does not know (or revoked): 401."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


class NotAllowed(HTTPException):
    """A valid token whose role may not do this: 403."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=403, detail=detail)


def _from_elsewhere(request: Request) -> bool:
    """Return True when a browser says the request was made by a page of another origin than ours (Fetch metadata
    first, then Origin); a client that sends neither is no browser, and cannot be led to send the cookie."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"


def _bearer_token(request: Request) -> str | None:
    """Return the token of an `Authorization: Bearer` header, or None (another scheme, such as a proxy's Basic
    credentials, is not ours: a browser adds it to another page's form as it adds the cookie)."""
    header = request.headers.get("authorization", "")
    if header[: len(BEARER)].lower() == BEARER:
        return header[len(BEARER) :].strip() or None
    return None


def presented_token(request: Request) -> str | None:
    """Return the token a request carries (a Bearer header first, then the session cookie), or None."""
    return _bearer_token(request) or request.cookies.get(SESSION_COOKIE) or None


# Declares the Bearer scheme in the OpenAPI document; the token itself is read by
# `presented_token`, which also takes the console's cookie.
BEARER_SCHEME = HTTPBearer(auto_error=False, description="an API token (`replica token create`)")


def token_holder(
    request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)]
) -> TokenHolder:
    """Return the holder of the request's token. Raises NotAuthenticated when there is none or it is unknown."""
    token = presented_token(request)
    if token is None:
        raise NotAuthenticated("a token is needed: send 'Authorization: Bearer TOKEN' (replica token create)")
    if request.method not in SAFE_METHODS and not _bearer_token(request) and _from_elsewhere(request):
        # The browser sends the console's cookie with a form another page submits to us; SameSite=Strict stops
        # other sites, not another page of the same site (another port of this host, a sibling subdomain).
        raise NotAllowed("refused: the request came from another page than the console's own (send a Bearer token)")
    holder = web_state(request).context().catalog.tokens.holder(token)
    if holder is None:
        raise NotAuthenticated("the token is unknown or revoked")
    return holder


def operator_holder(holder: Annotated[TokenHolder, Depends(token_holder)]) -> TokenHolder:
    """Return the holder when it may trigger actions. Raises NotAllowed for an auditor."""
    if not holder.may_operate:
        raise NotAllowed(f"token '{holder.name}' has role '{holder.role}'; this action needs role 'operator'")
    return holder


# Every reading route takes `Auditor` (any valid token); every action takes `Operator`.
Auditor = Annotated[TokenHolder, Depends(token_holder)]
Operator = Annotated[TokenHolder, Depends(operator_holder)]
