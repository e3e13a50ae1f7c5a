"""API tokens in the catalog: created (the token shown once), looked up by its SHA-256, revoked, never deleted.

A token is 256 random bits, so one SHA-256 is enough to store it: there is nothing to guess that a slow password
hash would protect. Creating and revoking a token are events of the verification log (its name and role, never
the token).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft, EventLog
from replica.catalog.models import ApiToken
from replica.errors import NotFound, UsageError

ROLES = ("auditor", "operator")
TOKEN_PREFIX = "rpl_"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
TOKEN_EVENT_KIND = "token"


@dataclass(frozen=True)
class TokenHolder:
    """Who a presented token belongs to."""

    name: str
    role: str

    @property
    def actor(self) -> str:
        """Return the actor recorded for this holder's actions: `token:NAME`."""
        return f"token:{self.name}"

    @property
    def may_operate(self) -> bool:
        """Return True when the holder may trigger backups, verifications and restores."""
        return self.role == "operator"


def token_digest(token: str) -> str:
    """Return the SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Writing and reading the `api_tokens` table."""

    def __init__(self, sessions: sessionmaker[Session], events: EventLog) -> None:
        self._sessions = sessions
        self._events = events

    def create(self, name: str, role: str) -> str:
        """Create a token and return it (the only time it is seen). Raises UsageError for a bad name or role, or a
        name already taken (revoked names stay taken: the log names them)."""
        if role not in ROLES:
            raise UsageError(f"role '{role}' is not one of {', '.join(ROLES)}")
        if not NAME_PATTERN.match(name):
            raise UsageError(f"token name '{name}' must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        actor = current_actor()
        row = ApiToken(
            name=name, role=role, token_sha256=token_digest(token), created_at=datetime.now(UTC), created_by=actor
        )
        draft = EventDraft(TOKEN_EVENT_KIND, "created", actor, figures={"token": name, "role": role})
        try:
            with self._sessions.begin() as session:
                session.add(row)
                session.flush()
                self._events.append_in(session, [draft])
        except IntegrityError:
            raise UsageError(f"a token named '{name}' exists already") from None
        return token

    def holder(self, token: str) -> TokenHolder | None:
        """Return who holds a presented token, or None when it is unknown or revoked."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self._sessions() as session:
            row = session.scalars(
                select(ApiToken).where(ApiToken.token_sha256 == token_digest(token), ApiToken.revoked_at.is_(None))
            ).one_or_none()
            return None if row is None else TokenHolder(row.name, row.role)

    def revoke(self, name: str) -> None:
        """Revoke a token by name. Raises UsageError when no live token has that name."""
        actor = current_actor()
        with self._sessions.begin() as session:
            revoked = session.execute(
                update(ApiToken)
                .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if getattr(revoked, "rowcount", 0) != 1:
                raise NotFound(f"no live token named '{name}'")
            role = session.scalars(select(ApiToken.role).where(ApiToken.name == name)).one()
            draft = EventDraft(TOKEN_EVENT_KIND, "revoked", actor, figures={"token": name, "role": role})
            self._events.append_in(session, [draft])

    def all(self) -> list[ApiToken]:
        """Return every token (revoked ones too), oldest first."""
        with self._sessions() as session:
            return list(session.scalars(select(ApiToken).order_by(ApiToken.id)).all())
