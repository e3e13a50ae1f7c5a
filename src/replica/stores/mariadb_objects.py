"""Moving whole MariaDB databases (tables, views, triggers, routines, events) for restores: MariaDB has no RENAME
DATABASE, and nothing here ever drops data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from replica.stores.mariadb_snapshot import quote


def holds_objects(cursor: Any, database: str) -> bool:
    cursor.execute(
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s)"
        " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)"
        " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s)",
        (database, database, database),
    )
    return int(cursor.fetchone()[0]) > 0


def create_like(cursor: Any, name: str, model: str) -> None:
    """Create database `name` with the default character set and collation of `model`."""
    cursor.execute(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
        "WHERE SCHEMA_NAME = %s",
        (model,),
    )
    row = cursor.fetchone()
    charset, collation = (str(row[0]), str(row[1])) if row else ("utf8mb4", "utf8mb4_general_ci")
    cursor.execute(f"CREATE DATABASE {quote(name)} CHARACTER SET {quote(charset)} COLLATE {quote(collation)}")


@dataclass(frozen=True)
class _Definition:
    """A view, trigger or routine as SHOW CREATE returns it, to recreate it in another database."""

    kind: str
    name: str
    statement: str
    sql_mode: str | None
    collation_connection: str | None


def move_objects(cursor: Any, source: str, destination: str) -> None:
    """Move every table, view, trigger, routine and event of `source` into the empty database `destination`.

    RENAME TABLE moves all tables in one atomic statement but refuses tables with triggers and views across
    databases: those are read with SHOW CREATE (from inside `source`, so references to it come out unqualified),
    recreated in `destination` and dropped from `source`. Objects keep their definers, which needs the SET USER
    privilege for other users' objects. Raises pymysql.Error.
    """
    cursor.execute("SELECT @@SESSION.sql_mode")
    session_mode = str(cursor.fetchone()[0])
    cursor.execute(f"USE {quote(source)}")
    triggers = _definitions(
        cursor,
        "TRIGGER",
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
        "ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
        source,
    )
    views = _definitions(
        cursor, "VIEW", "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", source
    )
    routines = [
        definition
        for kind in ("PROCEDURE", "FUNCTION")
        for definition in _definitions(
            cursor,
            kind,
            "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
            f"AND ROUTINE_TYPE = '{kind}'",
            source,
        )
    ]
    for trigger in triggers:
        cursor.execute(f"DROP TRIGGER {quote(source)}.{quote(trigger.name)}")
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE <> 'VIEW'", (source,)
    )
    tables = [str(row[0]) for row in cursor.fetchall()]
    try:
        if tables:
            cursor.execute(
                "RENAME TABLE "
                + ", ".join(f"{quote(source)}.{quote(t)} TO {quote(destination)}.{quote(t)}" for t in tables)
            )
    except pymysql.Error:
        _recreate(cursor, triggers, session_mode)  # the tables did not move: give them their triggers back
        raise
    cursor.execute(f"USE {quote(destination)}")
    _recreate(cursor, triggers, session_mode)
    _recreate_views(cursor, views, session_mode)
    _recreate(cursor, routines, session_mode)
    for definition in [*views, *routines]:
        cursor.execute(f"DROP {definition.kind} {quote(source)}.{quote(definition.name)}")
    cursor.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (source,))
    for (event,) in cursor.fetchall():
        cursor.execute(f"ALTER EVENT {quote(source)}.{quote(event)} RENAME TO {quote(destination)}.{quote(event)}")


def _definitions(cursor: Any, kind: str, names_query: str, database: str) -> list[_Definition]:
    cursor.execute(names_query, (database,))
    names = [str(row[0]) for row in cursor.fetchall()]
    definitions = []
    for name in names:
        cursor.execute(f"SHOW CREATE {kind} {quote(database)}.{quote(name)}")
        row = cursor.fetchone()
        columns = [str(column[0]) for column in cursor.description]
        values = dict(zip(columns, row, strict=True))
        statement = next(
            str(value) for column, value in values.items() if column.startswith("Create ") or column.startswith("SQL ")
        )
        mode = values.get("sql_mode")
        collation = values.get("collation_connection")
        definitions.append(
            _Definition(kind, name, statement, str(mode) if mode is not None else None, collation and str(collation))
        )
    return definitions


def _recreate(cursor: Any, definitions: list[_Definition], session_mode: str) -> None:
    """Run each definition in the current database under its own sql_mode and connection collation.

    The text travels as utf8mb4 (the client character set of this session), so only the collation is restored.
    """
    for definition in definitions:
        if definition.sql_mode is not None:
            cursor.execute("SET SESSION sql_mode = %s", (definition.sql_mode,))
        if definition.collation_connection:
            cursor.execute("SET SESSION collation_connection = %s", (definition.collation_connection,))
        try:
            cursor.execute(definition.statement)
        finally:
            cursor.execute("SET SESSION sql_mode = %s", (session_mode,))
            cursor.execute("SET NAMES utf8mb4")


def _recreate_views(cursor: Any, views: list[_Definition], session_mode: str) -> None:
    """Create views in dependency order: retry those that read a view not created yet."""
    pending = list(views)
    while pending:
        postponed: list[_Definition] = []
        for view in pending:
            try:
                _recreate(cursor, [view], session_mode)
            except pymysql.err.ProgrammingError as error:
                if error.args and error.args[0] == 1146:  # a view it reads does not exist yet
                    postponed.append(view)
                    continue
                raise
        if len(postponed) == len(pending):
            _recreate(cursor, postponed[:1], session_mode)  # raises the real error
            postponed = postponed[1:]
        pending = postponed
