"""The benchmark scripts stay runnable: each is listed by `run.py`, imports, and takes `--smoke`.

The benchmarks themselves are run by hand (benchmarks/README.md); this only catches a script broken by a change to
replica's code (an import or a renamed function) before someone needs its figures. `wal_shipping.py` also runs once
on tiny data (--smoke, ~10 s): it drives replica's WAL path end to end (a cluster's archiver, wal-push, the lag).
`distributed.py --smoke` is not run here: it takes ~1 min (a PostgreSQL database, a RabbitMQ virtual host, workers
and a daemon started twice), and tests/e2e/test_distributed.py covers the same processes. `catalog_scale.py --keep`
reuses a kept bench only while its catalog holds what was filled (checked on catalogs of its own, never the bench's
shared database, which someone's benchmark may be using).
"""

from __future__ import annotations

import importlib
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from replica.catalog.database import open_catalog
from tests.support.catalogs import POSTGRESQL_URL_PREFIX

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SUPPORT_MODULES = {"harness", "replica_probe", "run"}


def scenario_names() -> list[str]:
    """Return the scenario scripts in the folder (every script but the shared modules)."""
    return sorted(path.stem for path in BENCHMARKS.glob("*.py") if path.stem not in SUPPORT_MODULES)


def test_run_lists_every_scenario_script() -> None:
    # GIVEN the scripts in benchmarks/ WHEN run.py lists the scenarios THEN each one is there, and nothing else
    listed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py")], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # The listing indents each scenario by two spaces (the usage lines above it by four).
    names = [line.split()[0] for line in listed.splitlines() if line.startswith("  ") and line[2] != " "]
    assert sorted(names) == scenario_names()


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_script_imports_and_offers_a_smoke_run(name: str) -> None:
    # GIVEN a scenario script WHEN asked for its options THEN it imports replica's code and offers --smoke
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--smoke" in completed.stdout


def test_wal_shipping_smoke_run_measures_pushes_and_lag() -> None:
    # GIVEN the WAL shipping benchmark (its own cluster archiving with `replica wal-push` to two SeaweedFS buckets)
    # WHEN it runs once on tiny data (1 MiB segments, a 1 s pgbench load, one push of each side)
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "wal_shipping.py"), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # THEN it prints the load table with a measured lag for each destination, and the per-push comparison
    assert completed.returncode == 0, completed.stderr[-3000:]
    load_rows = [line for line in completed.stdout.splitlines() if line.startswith("| `replica wal-push")]
    assert len(load_rows) == 1, completed.stdout
    cells = [cell.strip() for cell in load_rows[0].strip("|").split("|")]
    pushed, failed, primary_lag, offsite_lag = float(cells[5]), cells[-2], cells[10], cells[11]
    assert pushed > 0 and failed == "0"
    assert primary_lag != "–" and offsite_lag != "–", load_rows[0]
    assert "| one push of a 1 MiB segment to 2 destinations vs raw_put.py" in completed.stdout


@pytest.fixture
def catalog_scale(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/catalog_scale.py as a module (it imports its neighbour `harness` as a script does)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("catalog_scale")


def test_a_kept_catalog_is_reused_only_while_it_holds_what_was_filled(
    catalog_scale: ModuleType, postgresql_catalog_url: str, tmp_path: Path
) -> None:
    # GIVEN a kept bench whose PostgreSQL catalog was filled (here: migrated, empty) and marked with its counts
    open_catalog(postgresql_catalog_url).kw["bind"].dispose()
    shape = {"jobs": 2, "catalog_runs": 0}
    catalog_scale.mark_filled(tmp_path, shape, catalog_scale.catalog_counts(postgresql_catalog_url))
    # WHEN asked whether to reuse it THEN yes, while the database holds those rows and the shape is the same
    assert catalog_scale.kept_bench_is_filled(tmp_path, shape, postgresql_catalog_url)
    assert not catalog_scale.kept_bench_is_filled(tmp_path, {**shape, "jobs": 3}, postgresql_catalog_url)
    # and not once a run without --keep dropped the database (another name here, never the bench's own)
    dropped = f"{POSTGRESQL_URL_PREFIX}replica_bench_{secrets.token_hex(4)}"
    assert not catalog_scale.kept_bench_is_filled(tmp_path, shape, dropped)
    # or filled it with other rows
    catalog_scale.mark_filled(tmp_path, shape, {"runs": 5, "snapshots": 0, "check_results": 0, "unpruned snapshots": 0})
    assert not catalog_scale.kept_bench_is_filled(tmp_path, shape, postgresql_catalog_url)
    # nor when the fill was cut short (no marker)
    (tmp_path / catalog_scale.FILLED_MARKER).unlink()
    assert not catalog_scale.kept_bench_is_filled(tmp_path, shape, postgresql_catalog_url)
