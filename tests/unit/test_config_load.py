"""Loading the jobs and policies folders: every problem at once, with file and path; broken jobs stand alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from replica.config.load import Configuration, JobOutline, load_configuration
from replica.config.yaml_files import YamlDocument
from replica.errors import ConfigError, UsageError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

POLICY = """\
name: standard
rpo: 1h
rto: 15m
retention:
  keep_last: 7
"""

JOB = """\
name: {name}
description: Billing database
store:
  kind: postgresql
  database: billing
  password_env: BILLING_PGPASSWORD
destinations:
  - name: primary
    bucket: acme-backups-eu
    prefix: restic/billing
  - name: offsite
    bucket: acme-backups-us
policy: {policy}
owners: [dba@acme.example]
clients: [ACME Retail]
"""


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    jobs, policies = tmp_path / "jobs", tmp_path / "policies"
    jobs.mkdir()
    policies.mkdir()
    (policies / "standard.yaml").write_text(POLICY, encoding="utf-8")
    return jobs, policies


def write_job(jobs: Path, name: str, text: str | None = None, policy: str = "standard") -> Path:
    path = jobs / f"{name}.yaml"
    path.write_text(text if text is not None else JOB.format(name=name, policy=policy), encoding="utf-8")
    return path


def load(folders: tuple[Path, Path]) -> Configuration:
    return load_configuration(*folders)


def test_valid_job_and_policy_load_without_problems(folders: tuple[Path, Path]) -> None:
    write_job(folders[0], "billing")

    configuration = load(folders)

    assert configuration.problems == []
    job = configuration.job("billing")
    assert [d.name for d in job.destinations] == ["primary", "offsite"]
    assert job.primary.prefix == "restic/billing"
    assert configuration.policy_of(job).rpo.total_seconds() == 3600


def test_unknown_key_is_reported_with_file_and_path(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace("bucket: acme-backups-us", "buckets: acme-backups-us")
    path = write_job(folders[0], "billing", text)

    problems = load(folders).problems

    assert f"{path}:12: at 'destinations[1].buckets': Extra inputs are not permitted" in problems


def test_invalid_value_is_reported_with_file_and_indexed_path(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace("acme-backups-us", "Acme_Backups")
    path = write_job(folders[0], "billing", text)

    problems = load(folders).problems

    assert any(problem.startswith(f"{path}:12: at 'destinations[1].bucket': ") for problem in problems)


def test_an_invalid_destination_is_not_also_reported_as_too_few_destinations(folders: tuple[Path, Path]) -> None:
    # Two destinations were written; telling the user "at least 2 items" about them sends them the wrong way.
    text = JOB.format(name="billing", policy="standard").replace("acme-backups-us", "Acme_Backups")
    write_job(folders[0], "billing", text)

    problems = load(folders).problems

    assert [problem for problem in problems if "at least 2" in problem] == []


def test_unknown_store_kind_lists_the_valid_kinds(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace("kind: postgresql", "kind: mysql")
    path = write_job(folders[0], "billing", text)

    (problem,) = load(folders).problems

    assert problem.startswith(f"{path}:3: at 'store': ")
    assert "'mysql'" in problem
    for kind in ("directory", "sqlite", "postgresql"):
        assert f"'{kind}'" in problem


def test_store_errors_do_not_show_the_kind_as_a_path_element(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace(
        "database: billing", "database: billing\n  port: 70000"
    )
    path = write_job(folders[0], "billing", text)

    (problem,) = load(folders).problems

    assert problem.startswith(f"{path}:6: at 'store.port': ")


def test_every_problem_of_one_file_is_reported_at_once(folders: tuple[Path, Path]) -> None:
    text = (
        JOB.format(name="billing", policy="standard")
        .replace("acme-backups-us", "Bad_Bucket")
        .replace("description:", "colour: blue\ndescription:")
        .replace("policy: standard\n", "")
    )
    path = write_job(folders[0], "billing", text)

    problems = load(folders).problems

    locations = {problem.removeprefix(f"{path}:").split(": at ")[1].split(":")[0] for problem in problems}
    assert {"'colour'", "'destinations[1].bucket'", "'policy'"} <= locations
    assert f"{path}:2: at 'colour': Extra inputs are not permitted" in problems
    assert f"{path}:1: at 'policy': Field required" in problems  # a missing field: the line of its mapping


def test_problems_of_several_files_are_all_reported(folders: tuple[Path, Path]) -> None:
    jobs, policies = folders
    first = write_job(jobs, "billing", JOB.format(name="billing", policy="standard") + "x: 1\n")
    second = write_job(jobs, "crm", JOB.format(name="crm", policy="standard") + "colour: blue\n")
    (policies / "strict.yaml").write_text("name: strict\nrpo: 90\nrto: 15m\n", encoding="utf-8")

    problems = load(folders).problems

    assert {problem.split(": at ")[0].rpartition(":")[0] for problem in problems} == {
        str(first),
        str(second),
        str(policies / "strict.yaml"),
    }


def test_broken_job_disables_only_itself(folders: tuple[Path, Path]) -> None:
    jobs, _ = folders
    write_job(jobs, "billing")
    write_job(jobs, "crm", JOB.format(name="crm", policy="standard") + "colour: blue\n")

    configuration = load(folders)

    assert configuration.job("billing").name == "billing"
    assert list(configuration.jobs) == ["billing"]
    with pytest.raises(ConfigError, match="colour"):
        configuration.job("crm")


def test_unknown_job_is_a_usage_error_listing_known_jobs(folders: tuple[Path, Path]) -> None:
    write_job(folders[0], "billing")

    with pytest.raises(UsageError, match=r"no job named 'payroll' \(known jobs: billing\)"):
        load(folders).job("payroll")


def test_job_name_must_equal_the_file_name(folders: tuple[Path, Path]) -> None:
    path = write_job(folders[0], "billing", JOB.format(name="invoices", policy="standard"))

    configuration = load(folders)

    assert configuration.problems == [f"{path}:1: at 'name': must equal the file name 'billing', got 'invoices'"]
    with pytest.raises(ConfigError):
        configuration.job("billing")


def test_job_naming_a_missing_policy_is_broken(folders: tuple[Path, Path]) -> None:
    path = write_job(folders[0], "billing", policy="gold")

    configuration = load(folders)

    assert "billing" in configuration.broken_jobs
    assert configuration.problems[0].startswith(f"{path}:13: at 'policy': no valid policy named 'gold'")


def test_job_whose_policy_file_is_broken_is_broken_too(folders: tuple[Path, Path]) -> None:
    jobs, policies = folders
    (policies / "standard.yaml").write_text(POLICY + "  keep_last: 0\n", encoding="utf-8")
    write_job(jobs, "billing")

    configuration = load(folders)

    assert any("duplicate key 'keep_last'" in p and "standard.yaml" in p for p in configuration.problems)
    with pytest.raises(ConfigError, match="no valid policy named 'standard'"):
        configuration.job("billing")


def test_fewer_than_two_destinations_is_an_error(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace("  - name: offsite\n    bucket: acme-backups-us\n", "")
    path = write_job(folders[0], "billing", text)

    (problem,) = load(folders).problems

    assert problem.startswith(f"{path}:7: at 'destinations': ")
    assert "at least two are needed" in problem


def test_duplicate_destination_names_are_an_error(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace("name: offsite", "name: primary")
    write_job(folders[0], "billing", text)

    (problem,) = load(folders).problems

    assert "destination names must be unique; repeated: primary" in problem


def test_password_in_a_store_is_rejected_without_echoing_it(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace(
        "password_env: BILLING_PGPASSWORD", "password: hunter2-secret"
    )
    path = write_job(folders[0], "billing", text)

    problems = load(folders).problems

    assert problems == [f"{path}:6: at 'store.password': Extra inputs are not permitted"]
    assert "hunter2-secret" not in " ".join(problems)


# The five unsafe configurations, each rejected with its file and line -----------------------------------------------


def test_a_duplicate_key_is_rejected_with_both_lines(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace("clients:", "policy: gold\nclients:")
    path = write_job(folders[0], "billing", text)

    assert load(folders).problems == [f"{path}:15: duplicate key 'policy' (first on line 13)"]


def test_an_unknown_key_deep_in_a_list_is_rejected_with_its_line(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace(
        "    prefix: restic/billing\n", "    prefix: restic/billing\n    storage_class: GLACIER\n"
    )
    path = write_job(folders[0], "billing", text)

    assert load(folders).problems == [f"{path}:11: at 'destinations[0].storage_class': Extra inputs are not permitted"]


def test_keep_last_zero_is_rejected_with_its_line_and_breaks_the_jobs_of_the_policy(
    folders: tuple[Path, Path],
) -> None:
    jobs, policies = folders
    (policies / "standard.yaml").write_text(POLICY.replace("keep_last: 7", "keep_last: 0"), encoding="utf-8")
    write_job(jobs, "billing")

    configuration = load(folders)

    assert configuration.problems[0] == (
        f"{policies / 'standard.yaml'}:5: at 'retention.keep_last': must be at least 1: keep_last: 0 would let "
        "prune forget every snapshot"
    )
    assert "billing" in configuration.broken_jobs


JOB_WITH_SCHEDULE = JOB + "schedule:\n  verify: every 1h\n  backup: {backup}\n"


@pytest.mark.parametrize(
    ("backup", "gap"),
    [("every 2h", "2h"), ('"0 */6 * * *"', "6h"), ('"@daily"', "1d"), ('"0 3 * * 1-5"', "3d"), ('"0 0 30 2 *"', None)],
)
def test_a_job_schedule_slower_than_the_rpo_is_rejected_at_the_schedule_line(
    folders: tuple[Path, Path], backup: str, gap: str | None
) -> None:
    jobs, policies = folders
    path = write_job(jobs, "billing", JOB_WITH_SCHEDULE.format(name="billing", policy="standard", backup=backup))

    configuration = load(folders)

    apart = f"can be {gap} apart" if gap else "happen less than twice in four years (or never)"
    assert configuration.problems == [
        f"{path}:18: at 'schedule.backup': backups on '{backup.strip(chr(34))}' {apart}, longer than the rpo 1h of "
        f"policy 'standard' ({policies / 'standard.yaml'}:2)"
    ]
    assert list(configuration.broken_jobs) == ["billing"]


@pytest.mark.parametrize("backup", ["every 1h", "every 20m", '"0 * * * *"', '"*/15 * * * *"', "'off'"])
def test_a_job_schedule_within_the_rpo_loads(folders: tuple[Path, Path], backup: str) -> None:
    write_job(folders[0], "billing", JOB_WITH_SCHEDULE.format(name="billing", policy="standard", backup=backup))

    assert load(folders).problems == []


def test_a_policy_whose_own_schedule_is_slower_than_its_rpo_is_rejected_at_the_rpo_line(
    folders: tuple[Path, Path],
) -> None:
    jobs, policies = folders
    (policies / "standard.yaml").write_text(POLICY + "schedule:\n  backup: '@daily'\n", encoding="utf-8")
    write_job(jobs, "billing")

    configuration = load(folders)

    assert configuration.problems[0] == (
        f"{policies / 'standard.yaml'}:2: at 'rpo': the rpo 1h is shorter than the schedule of this policy allows: "
        "backups on '@daily' can be 1d apart (schedule.backup, line 7)"
    )
    assert "billing" in configuration.broken_jobs


@pytest.mark.usefixtures("settled")
def test_a_cached_job_is_rejected_when_its_policy_rpo_shrinks_below_its_schedule(
    folders: tuple[Path, Path], cache_file: Path, reads: list[Path]
) -> None:
    # GIVEN a job backed up every 45 minutes under a 1h RPO, vouched for by the cache
    jobs, policies = folders
    path = write_job(jobs, "billing", JOB_WITH_SCHEDULE.format(name="billing", policy="standard", backup="every 45m"))
    assert load_configuration(jobs, policies, cache_file).problems == []
    # WHEN only the policy changes: its RPO becomes 30 minutes
    (policies / "standard.yaml").write_text(POLICY.replace("rpo: 1h", "rpo: 30m"), encoding="utf-8")
    reads.clear()

    configuration = load_configuration(jobs, policies, cache_file)

    # THEN the unchanged job file is not read again, and still rejected at the line of its schedule
    assert reads == [policies / "standard.yaml"]
    assert configuration.problems == [
        f"{path}:18: at 'schedule.backup': backups on 'every 45m' can be 45m apart, longer than the rpo 30m of "
        f"policy 'standard' ({policies / 'standard.yaml'}:2)"
    ]


@pytest.mark.parametrize("host", ["s3.example.com", "10.1.2.3", "[2001:db8::1]", "127.0.0.1.nip.io"])
def test_a_plain_http_endpoint_to_another_host_is_rejected_with_its_line(folders: tuple[Path, Path], host: str) -> None:
    text = JOB.format(name="billing", policy="standard").replace(
        "bucket: acme-backups-us\n", f"bucket: acme-backups-us\n    endpoint_url: http://{host}:9000\n"
    )
    path = write_job(folders[0], "billing", text)

    assert load(folders).problems == [
        f"{path}:13: at 'destinations[1].endpoint_url': plain http:// to '{host.strip('[]')}' would cross the "
        "network unencrypted; use https:// (plain http:// is allowed only to localhost, 127.0.0.0/8 and ::1)"
    ]


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8333",
        "http://127.1.2.3:9000",
        "http://localhost:9000",
        "http://[::1]:9000",
        "https://s3.example.com",
    ],
)
def test_https_and_loopback_endpoints_load(folders: tuple[Path, Path], endpoint: str) -> None:
    text = JOB.format(name="billing", policy="standard").replace(
        "bucket: acme-backups-us\n", f"bucket: acme-backups-us\n    endpoint_url: {endpoint}\n"
    )
    write_job(folders[0], "billing", text)

    assert load(folders).problems == []


def test_credentials_in_an_endpoint_are_rejected_without_repeating_them(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace(
        "bucket: acme-backups-us\n", "bucket: acme-backups-us\n    endpoint_url: https://AKIA:s3cr3t-key@s3.example\n"
    )
    path = write_job(folders[0], "billing", text)

    (problem,) = load(folders).problems

    assert problem.startswith(f"{path}:13: at 'destinations[1].endpoint_url': must not carry credentials")
    assert "s3cr3t" not in problem and "AKIA" not in problem


def test_a_connection_string_as_database_is_rejected_without_repeating_it(folders: tuple[Path, Path]) -> None:
    text = JOB.format(name="billing", policy="standard").replace(
        "database: billing", "database: postgresql://backup:pg-s3cr3t@db1/billing"
    )
    path = write_job(folders[0], "billing", text)

    (problem,) = load(folders).problems

    assert problem.startswith(f"{path}:5: at 'store.database': must be a database name, not a connection string")
    assert "s3cr3t" not in problem


def test_shipped_example_files_load_without_problems() -> None:
    jobs, policies = PROJECT_ROOT / "jobs", PROJECT_ROOT / "policies"
    job_files = sorted(p.stem for p in [*jobs.glob("*.yaml"), *jobs.glob("*.yml")])
    policy_files = sorted(p.stem for p in [*policies.glob("*.yaml"), *policies.glob("*.yml")])
    assert job_files, f"no example job files in {jobs}"
    assert policy_files, f"no example policy files in {policies}"

    configuration = load_configuration(jobs, policies)

    assert configuration.problems == []
    assert sorted(configuration.jobs) == job_files
    assert sorted(configuration.policies) == policy_files


# The cache of job file outcomes ------------------------------------------------------------------------------------


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "configuration-cache.json"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every job or policy file read (parsed) from now on."""
    import replica.config.load

    seen: list[Path] = []
    real = replica.config.load.read_yaml_document

    def counting(path: Path) -> YamlDocument:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(replica.config.load, "read_yaml_document", counting)
    return seen


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (they were all just written, so none would be cached otherwise)."""
    import replica.config.load

    monkeypatch.setattr(replica.config.load, "RACY_SECONDS", -1.0)


def summary(configuration: Configuration) -> tuple[object, ...]:
    return (
        sorted(configuration.jobs),
        configuration.outlines,
        configuration.problems,
        configuration.broken_jobs,
        {name: configuration.job(name) for name in configuration.jobs},
    )


@pytest.mark.usefixtures("settled")
def test_a_cached_load_reads_no_unchanged_job_file_and_finds_the_same(
    folders: tuple[Path, Path], cache_file: Path, reads: list[Path]
) -> None:
    jobs, policies = folders
    write_job(jobs, "billing")
    write_job(jobs, "crm", JOB.format(name="crm", policy="standard") + "colour: blue\n")
    write_job(jobs, "payroll", policy="gold")
    fresh = load_configuration(jobs, policies)
    load_configuration(jobs, policies, cache_file)
    reads.clear()

    cached = load_configuration(jobs, policies, cache_file)

    assert reads == [policies / "standard.yaml"], "only policies are read: the cache vouches for every job file"
    assert cached.outlines["billing"] == JobOutline("billing", "postgresql", "standard", ("primary", "offsite"))
    assert summary(cached) == summary(fresh)  # looking a job up reads its file then


@pytest.mark.usefixtures("settled")
def test_a_job_file_that_could_not_be_read_once_is_not_remembered_as_broken(
    folders: tuple[Path, Path], cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a valid job file that one load could not read (no descriptors left, an I/O error, another user's rights)
    import replica.config.yaml_files

    jobs, policies = folders
    write_job(jobs, "billing")
    real_read_bytes = Path.read_bytes

    def failing(path: Path) -> bytes:
        if path.name == "billing.yaml":
            raise OSError(24, "Too many open files")
        return real_read_bytes(path)

    with monkeypatch.context() as patch:
        patch.setattr(replica.config.yaml_files.Path, "read_bytes", failing)
        unreadable = load_configuration(jobs, policies, cache_file)

    # WHEN the next load runs with the file readable again
    later = load_configuration(jobs, policies, cache_file)

    # THEN the failure was reported that once, and the job is back: the cache keeps only verdicts on content
    assert "billing" in unreadable.broken_jobs and "Too many open files" in unreadable.problems[0]
    assert list(later.jobs) == ["billing"] and later.problems == []


@pytest.mark.usefixtures("settled")
def test_a_job_file_changed_since_it_was_cached_is_read_again_even_with_its_old_times(
    folders: tuple[Path, Path], cache_file: Path
) -> None:
    jobs, policies = folders
    path = write_job(jobs, "billing")
    load_configuration(jobs, policies, cache_file)
    before = path.stat()
    broken = JOB.format(name="billing", policy="standard").replace("prefix: restic/billing", "prefix: restic/b!lling")
    assert len(broken) == before.st_size
    path.write_text(broken, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same modification time

    configuration = load_configuration(jobs, policies, cache_file)

    assert list(configuration.broken_jobs) == ["billing"]
    assert "destinations[0].prefix" in configuration.problems[0]


def test_a_job_file_changed_moments_before_it_was_read_is_not_cached(
    folders: tuple[Path, Path], cache_file: Path, reads: list[Path]
) -> None:
    # GIVEN a file just written (a second write in the same tick of the clock would keep its times)
    jobs, policies = folders
    write_job(jobs, "billing")
    load_configuration(jobs, policies, cache_file)
    reads.clear()

    load_configuration(jobs, policies, cache_file)

    assert jobs / "billing.yaml" in reads


@pytest.mark.usefixtures("settled")
def test_a_job_file_turned_broken_after_a_cached_load_fails_when_looked_up(
    folders: tuple[Path, Path], cache_file: Path
) -> None:
    jobs, policies = folders
    path = write_job(jobs, "billing")
    load_configuration(jobs, policies, cache_file)
    configuration = load_configuration(jobs, policies, cache_file)
    path.write_text(JOB.format(name="billing", policy="standard") + "colour: blue\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="colour"):
        configuration.job("billing")


@pytest.mark.usefixtures("settled")
def test_a_cached_job_whose_policy_is_gone_is_broken(folders: tuple[Path, Path], cache_file: Path) -> None:
    jobs, policies = folders
    path = write_job(jobs, "billing")
    load_configuration(jobs, policies, cache_file)
    (policies / "standard.yaml").unlink()

    configuration = load_configuration(jobs, policies, cache_file)

    assert configuration.broken_jobs["billing"] == [
        f"{path}:13: at 'policy': no valid policy named 'standard' in {policies}"
    ]


@pytest.mark.usefixtures("settled")
def test_the_cache_holds_no_job_file_content_and_is_dropped_by_other_code(
    folders: tuple[Path, Path], cache_file: Path, reads: list[Path]
) -> None:
    jobs, policies = folders
    text = JOB.format(name="billing", policy="standard") + "ping_url: https://hc-ping.example/s3cr3t-token\n"
    write_job(jobs, "billing", text)
    load_configuration(jobs, policies, cache_file)
    document = json.loads(cache_file.read_text())
    assert "s3cr3t" not in cache_file.read_text() and "acme-backups" not in cache_file.read_text()
    cache_file.write_text(json.dumps({**document, "code": "written by another release"}))
    reads.clear()

    load_configuration(jobs, policies, cache_file)

    assert jobs / "billing.yaml" in reads


@pytest.mark.usefixtures("settled")
def test_a_job_file_broken_after_its_cached_load_leaves_only_that_job_unscheduled(
    tmp_path: Path, folders: tuple[Path, Path]
) -> None:
    # GIVEN two jobs the cache vouches for, one of them edited into a broken file after the folder was read
    from datetime import UTC, datetime

    from replica.actions.context import Context
    from replica.actions.due import scheduled_work
    from replica.settings import Settings

    jobs, policies = folders
    (policies / "standard.yaml").write_text(POLICY + "schedule:\n  backup: every 1h\n", encoding="utf-8")
    write_job(jobs, "billing")
    write_job(jobs, "crm")
    settings = Settings(state_dir=tmp_path / "state", jobs_dir=jobs, policies_dir=policies)
    assert sorted(Context(settings).configuration.jobs) == ["billing", "crm"]  # fills the cache
    context = Context(settings)
    assert sorted(context.configuration.jobs) == ["billing", "crm"]  # from the cache: no model read yet
    write_job(jobs, "crm", "name: crm\nstore: {kind: nowhere}\n")

    # WHEN the daemon (or run-due) asks what is scheduled
    work = scheduled_work(context, datetime.now(UTC))

    # THEN the broken job is left out and the other keeps its work; naming the broken job raises
    assert {(item.job, item.kind) for item in work} == {("billing", "backup")}
    with pytest.raises(ConfigError):
        scheduled_work(context, datetime.now(UTC), ["crm"])
