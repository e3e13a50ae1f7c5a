"""stores/postgresql_fingerprint.py against the real PostgreSQL on 127.0.0.1:5432: what each digest method sees,
and that fingerprints of earlier replica versions still verify."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg import sql

from replica.config.models import VerificationConfig
from replica.stores.base import Target
from replica.stores.postgresql_fingerprint import COLUMN_HASHES, fingerprint_connection
from tests.integration.test_stores_postgresql import connect, created_source_database, live_fingerprint, store_for


@pytest.fixture
def source_database() -> Iterator[str]:
    """A uniquely named database holding a few tables of awkward types, dropped afterwards."""
    with created_source_database() as name:
        yield name


# The md5 digest as the replica before "digest" existed wrote it: kept here verbatim, so that a change to the
# store's own copy cannot make old snapshots fail without a test noticing.
RELEASED_MD5_QUERY = (
    "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text FROM {} AS t"
)
RELEASED_TEXT_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
)
EXACT = VerificationConfig()


def released_md5_fingerprint(database: str) -> dict[str, Any]:
    """Return the fingerprint of `database` in the old format: no digest field, md5 per table."""
    tables: dict[str, dict[str, Any]] = {}
    with connect(database) as connection:
        for statement in RELEASED_TEXT_SETTINGS:
            connection.execute(statement)
        names = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in names:
            row = connection.execute(sql.SQL(RELEASED_MD5_QUERY).format(sql.Identifier(schema, table))).fetchone()
            assert row is not None
            tables[f"{schema}.{table}"] = {"rows": int(row[0]), "digest": str(row[1])}
    return {"tables": tables}


# The digests as the replica of 2026-11-27 wrote them (digest hash_extended/1, a table's "hash" record or text), kept
# verbatim for the same reason.
RELEASED_ROW_QUERIES = {
    "record": "SELECT count(*), coalesce(sum(hashtextextended(hash_record_extended(t.*, 0)::text, 0)), 0)::text "
    "FROM {} AS t",
    "text": "SELECT count(*), coalesce(sum(hashtextextended(t.*::text, 0)), 0)::text FROM {} AS t",
}


def released_record_fingerprint(database: str) -> dict[str, Any]:
    """Return the fingerprint of `database` (the SCHEMA's tables) as written before the `columns` method."""
    methods = {("public", "customers"): "record", ("audit", "events"): "record", ("public", "orders"): "text"}
    tables: dict[str, dict[str, Any]] = {}
    with connect(database) as connection:
        for statement in RELEASED_TEXT_SETTINGS:
            connection.execute(statement)
        for (schema, table), method in methods.items():
            query = sql.SQL(RELEASED_ROW_QUERIES[method]).format(sql.Identifier(schema, table))
            row = connection.execute(query).fetchone()
            assert row is not None
            tables[f"{schema}.{table}"] = {"rows": int(row[0]), "digest": str(row[1]), "hash": method}
    return {"digest": "hash_extended/1", "tables": tables}


def fingerprint_check(database: str, expected: dict[str, Any]) -> Any:
    checks = store_for(database).check_restored(Target(description="db", database=database), expected, EXACT)
    assert checks[0].name == "integrity" and checks[0].passed, checks[0].detail
    return checks[1]


def test_fingerprint_names_its_digest_and_hashes_by_columns_only_where_every_type_allows(
    source_database: str,
) -> None:
    fingerprint = live_fingerprint(source_database)

    assert fingerprint["digest"] == "hash_extended/3"
    # customers and audit.events hold integers, text and timestamps; orders has a numeric, hashed as text.
    hashes = {name: table["hash"] for name, table in fingerprint["tables"].items()}
    assert hashes == {"public.customers": "columns", "audit.events": "columns", "public.orders": "text"}


@pytest.mark.parametrize(
    ("released", "digest"), [(released_md5_fingerprint, None), (released_record_fingerprint, "hash_extended/1")]
)
def test_a_fingerprint_of_an_earlier_version_still_verifies_and_still_finds_changes(
    source_database: str, released: Callable[[str], dict[str, Any]], digest: str | None
) -> None:
    old = released(source_database)
    assert old.get("digest") == digest

    passed = fingerprint_check(source_database, old)
    with connect(source_database) as connection:
        connection.execute("UPDATE customers SET name = 'Zoe' WHERE id = 1")
    changed = fingerprint_check(source_database, old)

    assert passed.passed, passed.detail
    assert passed.detail == "3 tables, 44 rows: counts and content digests match"
    assert not changed.passed
    assert changed.detail.startswith("content of public.customers: digest expected")


def test_the_hash_digest_ignores_row_order_and_sees_values_moved_between_rows(source_database: str) -> None:
    expected = live_fingerprint(source_database)
    with connect(source_database) as connection:
        # A no-op update writes new row versions at the end of the table: the scan order changes, the data not.
        connection.execute("UPDATE customers SET name = name WHERE id = 1")
        same = fingerprint_check(source_database, expected)
        # Two rows swap their names: every column still holds the same values, only the pairing changed.
        connection.execute(
            "UPDATE customers SET name = CASE id WHEN 1 THEN (SELECT name FROM customers WHERE id = 2) "
            "ELSE (SELECT name FROM customers WHERE id = 1) END WHERE id IN (1, 2)"
        )
    swapped = fingerprint_check(source_database, expected)

    assert same.passed, same.detail
    assert not swapped.passed
    assert swapped.detail.startswith("content of public.customers: digest expected")


# Per type of COLUMN_HASHES: two distinct values, where the type's own hash would give both the same hash (it folds
# 64-bit values to 32 bits: 1 and 2^32, 1 µs and 2^32 µs, and the timestamps a reviewer found).
TYPED_VALUES = {
    "boolean": ("true", "false"),
    "bytea": ("'\\x01'", "'\\x0100'"),
    "character": ("'ab'::char(3)", "'abc'::char(3)"),
    "name": ("'a'", "'b'"),
    "smallint": ("1", "2"),
    "integer": ("1", "2"),
    "bigint": ("1", "4294967296"),
    "oid": ("1", "2"),
    "text": ("'a'", "'a '"),
    "character varying": ("'a'", "'b'"),
    "date": ("'2026-01-01'", "'infinity'"),
    "time without time zone": ("'00:00:00.000001'", "'01:11:34.967296'"),
    "timestamp without time zone": ("'2026-11-27 00:00:00'", "'2026-11-26 22:48:25.032705'"),
    "timestamp with time zone": ("'2026-11-27 00:00:00+00'", "'2026-11-26 22:48:25.032705+00'"),
    "uuid": ("'00000000-0000-0000-0000-000000000001'", "'00000000-0000-0000-0000-000000000002'"),
}


def unseen_changes(database: str, expected: dict[str, Any], tables: list[str]) -> list[str]:
    """Return the tables among `tables` whose digest in `database` is still the one `expected` holds."""
    with connect(database, autocommit=False) as connection:
        found = fingerprint_connection(connection, expected)
    return [name for name in tables if found["tables"][name]["digest"] == expected["tables"][name]["digest"]]


def test_every_column_type_is_digested_exactly_and_sees_one_value_changed_swapped_or_nulled(
    source_database: str,
) -> None:
    # GIVEN a table per type with two columns of that type: rows (value, changed), (value, value), (NULL, value)
    assert set(TYPED_VALUES) == set(COLUMN_HASHES)
    tables = [f"public.typed_{number}" for number in range(len(TYPED_VALUES))]
    with connect(source_database) as connection:
        for number, (type_name, (value, changed)) in enumerate(TYPED_VALUES.items()):
            declared = "char(3)" if type_name == "character" else type_name
            connection.execute(f"CREATE TABLE typed_{number} (id int, x {declared}, y {declared})")
            connection.execute(
                f"INSERT INTO typed_{number} VALUES (1, {value}, {changed}), (2, {value}, {value}), (3, NULL, {value})"
            )
    expected = live_fingerprint(source_database)
    assert {expected["tables"][name]["hash"] for name in tables} == {"columns"}
    assert fingerprint_check(source_database, expected).passed

    # WHEN one value changes alone (into the value its type's own hash cannot tell apart), THEN it is seen
    with connect(source_database) as connection:
        for number, (_, changed) in enumerate(TYPED_VALUES.values()):
            connection.execute(f"UPDATE typed_{number} SET x = {changed} WHERE id = 2")
    assert unseen_changes(source_database, expected, tables) == []
    # WHEN a row's two values swap columns, THEN it is seen
    expected = live_fingerprint(source_database)
    with connect(source_database) as connection:
        for number in range(len(TYPED_VALUES)):
            connection.execute(f"UPDATE typed_{number} SET x = y, y = x WHERE id = 1")
    assert unseen_changes(source_database, expected, tables) == []
    # WHEN a value and a NULL swap columns, THEN it is seen
    expected = live_fingerprint(source_database)
    with connect(source_database) as connection:
        for number in range(len(TYPED_VALUES)):
            connection.execute(f"UPDATE typed_{number} SET x = y, y = x WHERE id = 3")
    assert unseen_changes(source_database, expected, tables) == []


def test_bigint_values_whose_folded_hash_and_upper_half_meet_are_told_apart(source_database: str) -> None:
    # GIVEN values whose 32-bit fold equals their upper half (0, -1, 2^32, 2^33, -2^32 - 1) or whose upper halves
    # swap roles (hi=1, lo=5 and hi=4, lo=5): a bigint hashed twice under one seed gives them one digest
    values = [0, -1, 1 << 32, 1 << 33, -(1 << 32) - 1, (1 << 32) + 5, (4 << 32) + 5]
    with connect(source_database) as connection:
        connection.execute("CREATE TABLE bigs (v bigint)")
        connection.execute("INSERT INTO bigs VALUES (0)")
    digests = []
    # WHEN the one value takes each of them in turn
    for value in values:
        with connect(source_database) as connection:
            connection.execute("UPDATE bigs SET v = %s", (value,))
        digests.append(live_fingerprint(source_database)["tables"]["public.bigs"]["digest"])

    # THEN every value has a digest of its own
    assert len(set(digests)) == len(values), dict(zip(values, digests, strict=True))


def test_a_function_of_the_same_name_in_a_schema_on_the_search_path_does_not_stand_in(source_database: str) -> None:
    # GIVEN functions that would be better matches for the digest's calls than PostgreSQL's own, were they unqualified
    expected = live_fingerprint(source_database)
    with connect(source_database) as connection:
        for function, argument in (("hashint4extended", "integer"), ("hashtextextended", "text")):
            connection.execute(
                f"CREATE FUNCTION public.{function}({argument}, integer) RETURNS bigint LANGUAGE sql AS 'SELECT 42'"
            )
            connection.execute(
                f"CREATE FUNCTION public.{function}({argument}, bigint) RETURNS bigint LANGUAGE sql AS 'SELECT 42'"
            )
    # WHEN the data is unchanged, then when a value changes
    same = fingerprint_check(source_database, expected)
    with connect(source_database) as connection:
        connection.execute("UPDATE customers SET name = 'Zoe' WHERE id = 1")
    changed = fingerprint_check(source_database, expected)

    # THEN the digests are PostgreSQL's: the same, then different
    assert same.passed, same.detail
    assert not changed.passed
    assert changed.detail.startswith("content of public.customers: digest expected")


def test_a_table_the_restore_cannot_digest_the_backups_way_is_reported_not_compared(source_database: str) -> None:
    # GIVEN a fingerprint whose customers were digested by columns, and a method this version does not know
    expected = live_fingerprint(source_database)
    expected["tables"]["audit.events"]["hash"] = "sha3_per_row/7"
    # WHEN the restore's customers has a column of a type without an exact hash
    with connect(source_database) as connection:
        connection.execute("ALTER TABLE customers ALTER COLUMN id TYPE numeric")
    outcome = fingerprint_check(source_database, expected)

    # THEN neither table is reported as changed content: both are not compared, naming the two methods
    assert not outcome.passed
    assert "content of audit.events: not compared: the backup digested it by 'sha3_per_row/7', the restore by " in (
        outcome.detail
    )
    assert (
        "content of public.customers: not compared: the backup digested it by 'columns', the restore by 'text'"
        in outcome.detail
    )


@pytest.mark.parametrize(
    ("column", "value", "changed"),
    [
        ("doc json", """'{"a": 1}'""", """'{"a":1}'"""),  # no hash at all
        ("spot point", "'(1,2)'", "'(1,3)'"),  # no hash at all
        ("body xml", "'<a>1</a>'", "'<a>2</a>'"),  # no hash at all
        ("price numeric", "1.0", "1.00"),  # equal values, one hash: only the text tells them apart
        ("span interval", "'1 day'", "'24 hours'"),  # likewise
        ("code bpchar", "'a'", "'a  '"),  # unbounded bpchar: trailing spaces do not count in its hash
        ("label text COLLATE ci", "'Abc'", "'abc'"),  # a case-insensitive collation hashes both alike
    ],
)
def test_types_whose_hash_is_missing_or_blind_are_digested_as_text(
    source_database: str, column: str, value: str, changed: str
) -> None:
    with connect(source_database) as connection:
        connection.execute("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
        connection.execute(f"CREATE TABLE odd (id int, {column})")
        connection.execute(f"INSERT INTO odd VALUES (1, {value}), (2, NULL)")
    expected = live_fingerprint(source_database)
    same = fingerprint_check(source_database, expected)
    with connect(source_database) as connection:
        connection.execute(f"UPDATE odd SET {column.split(maxsplit=1)[0]} = {changed} WHERE id = 1")
    after = fingerprint_check(source_database, expected)

    assert expected["tables"]["public.odd"]["hash"] == "text"
    assert same.passed, same.detail
    assert not after.passed
    assert after.detail.startswith("content of public.odd: digest expected")


@pytest.mark.parametrize(("columns", "method"), [("id int, t timestamptz", "columns"), ("id int, t float8", "text")])
def test_a_column_named_like_the_row_alias_does_not_hide_the_other_columns(
    source_database: str, columns: str, method: str
) -> None:
    # GIVEN a table with a column named `t`, the alias the digest queries give the row
    with connect(source_database) as connection:
        connection.execute(f"CREATE TABLE alias_clash ({columns})")
        connection.execute("INSERT INTO alias_clash VALUES (1, NULL), (2, NULL)")
    expected = live_fingerprint(source_database)
    # WHEN only the other column changes
    with connect(source_database) as connection:
        connection.execute("UPDATE alias_clash SET id = 99 WHERE id = 1")
    after = fingerprint_check(source_database, expected)

    # THEN the whole row was digested, so the change is seen
    assert expected["tables"]["public.alias_clash"]["hash"] == method
    assert not after.passed
    assert after.detail.startswith("content of public.alias_clash: digest expected")


def test_a_digest_unknown_to_this_version_is_not_compared(source_database: str) -> None:
    expected = {**live_fingerprint(source_database), "digest": "sha3_per_row/7"}

    outcome = fingerprint_check(source_database, expected)

    assert not outcome.passed
    assert outcome.detail.startswith("not compared: the backup's digest 'sha3_per_row/7' is not the restore's")
