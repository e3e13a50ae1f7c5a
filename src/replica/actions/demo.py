"""`replica demo`: the sample job end to end on embedded defaults.

Starts SeaweedFS on loopback (data kept under the state directory between runs), grows a sample SQLite store,
then runs init, backup (with a copy to a second bucket), verify of both destinations, and prints the status.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from secrets import token_urlsafe
from typing import TextIO

from pydantic import SecretStr

from replica.actions.backup import run_backup
from replica.actions.configuration import record_configuration_changes
from replica.actions.context import Context
from replica.actions.init import run_init
from replica.actions.status import collect_status
from replica.actions.verify import run_verify
from replica.cli.render import status_table
from replica.config.durations import format_duration
from replica.storage.seaweedfs import load_or_create_credentials, start_seaweedfs

JOB_NAME = "sample"
POLICY_NAME = "demo"


def _grow_sample_store(path: Path, rows: int) -> int:
    """Add `rows` orders (and their customers) to the sample shop database; return its order count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.executescript(
            "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);"
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL"
            " REFERENCES customers(id), amount_cents INTEGER NOT NULL, placed_at TEXT NOT NULL);"
        )
        generator = random.Random()
        start = connection.execute("SELECT coalesce(max(id), 0) FROM customers").fetchone()[0]
        customers = [
            (start + index + 1, f"customer {start + index + 1}", generator.choice(["DE", "FR", "NL", "US"]))
            for index in range(max(rows // 10, 1))
        ]
        connection.executemany("INSERT INTO customers VALUES (?, ?, ?)", customers)
        connection.executemany(
            "INSERT INTO orders (customer_id, amount_cents, placed_at) VALUES (?, ?, datetime('now'))",
            [(generator.choice(customers)[0], generator.randint(100, 100_000)) for _ in range(rows)],
        )
        connection.commit()
        return int(connection.execute("SELECT count(*) FROM orders").fetchone()[0])
    finally:
        connection.close()


def _write_configuration(folder: Path, store_path: Path) -> None:
    (folder / "jobs").mkdir(parents=True, exist_ok=True)
    (folder / "policies").mkdir(parents=True, exist_ok=True)
    (folder / "jobs" / f"{JOB_NAME}.yaml").write_text(
        f"""# Written by `replica demo`: the sample shop database, replicated to two buckets.
name: {JOB_NAME}
description: Sample shop database (customers and orders)
store:
  kind: sqlite
  path: {store_path}
destinations:
  - name: primary
    bucket: replica-demo-primary
    prefix: sample
  - name: offsite
    bucket: replica-demo-offsite
    prefix: sample
policy: {POLICY_NAME}
canary: true
owners: [ops@example.com]
clients: [Example Retail Ltd]
"""
    )
    (folder / "policies" / f"{POLICY_NAME}.yaml").write_text(
        f"""name: {POLICY_NAME}
description: Demo objectives
rpo: 1h
rto: 5m
verification:
  read_data_subset: 100%
"""
    )


def run_demo(context: Context, *, rows: int, output: TextIO) -> bool:
    """Run the sample job end to end, print the status table to `output`; return True when all passed."""
    state = context.settings.state_dir / "demo"
    store_path = state / "sample-store" / "shop.sqlite3"
    orders = _grow_sample_store(store_path, rows)
    _write_configuration(state, store_path)
    credentials = load_or_create_credentials(state / "s3-credentials.json")
    password_file = state / "restic-password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(token_urlsafe(32))
    context.progress("starting SeaweedFS on 127.0.0.1 ...")
    server = start_seaweedfs(state / "seaweedfs", credentials)
    try:
        settings = context.settings.model_copy(
            update={
                "jobs_dir": state / "jobs",
                "policies_dir": state / "policies",
                "s3_endpoint_url": server.endpoint_url,
                "s3_access_key_id": SecretStr(credentials.access_key_id),
                "s3_secret_access_key": SecretStr(credentials.secret_access_key),
                "restic_password": None,
                "restic_password_file": password_file,
            }
        )
        demo_context = Context(settings, progress=context.progress)
        context.progress(f"S3 endpoint {server.endpoint_url}; sample store {store_path} ({orders} orders)")
        record_configuration_changes(demo_context)
        run_init(demo_context, JOB_NAME)
        backup = run_backup(demo_context, JOB_NAME)
        verified = [
            run_verify(demo_context, JOB_NAME, destination.name)
            for destination in demo_context.job(JOB_NAME)[0].destinations
        ]
        for outcome in verified:
            print(
                f"verify '{outcome.destination}': {'PASSED' if outcome.passed else 'FAILED'}, "
                f"RTO {format_duration(outcome.rto_seconds)}",
                file=output,
            )
        print("", file=output)
        print(status_table(collect_status(demo_context)), file=output)
        log = demo_context.catalog.events.check()
        print(
            f"\nverification log: {log.events} events, {'intact' if log.intact else f'TAMPERED: {log.problem}'}, "
            f"head {log.head_seq}:{log.head_hash} (replica audit log | verify | export)",
            file=output,
        )
        return backup.succeeded and all(outcome.passed for outcome in verified)
    finally:
        server.stop()
