"""Helpers shared by the database stores (PostgreSQL, MariaDB): scratch database names and lifetimes."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Callable, Iterator

from replica.errors import StoreError
from replica.stores.base import Target

logger = logging.getLogger(__name__)


def database_name(prefix: str, label: str, limit: int) -> str:
    """Return `prefix_label_xxxxxx`, cut to the server's name length `limit`, unique thanks to a random tail."""
    tail = secrets.token_hex(3)
    clean_label = re.sub(r"[^a-z0-9_]", "_", label.lower())
    head = f"{prefix}_{clean_label}"[: limit - len(tail) - 1]
    return f"{head}_{tail}"


@contextlib.contextmanager
def temporary_database(target: Target, create: Callable[[], None], drop: Callable[[], None]) -> Iterator[Target]:
    """Create a database, yield its target, and drop it on exit whatever happened.

    A failed drop never replaces the outcome of the work itself: it is logged loudly, naming what is left behind.
    Raises StoreError when the database cannot be created.
    """
    create()
    try:
        yield target
    finally:
        try:
            drop()
        except StoreError as error:
            logger.warning("scratch database '%s' was NOT dropped: %s", target.database, error)
