"""The API against its own OpenAPI document: schemathesis generates valid and invalid requests for every operation
and the answers must never be a 5xx, must use a documented status and content type, and must match the documented
schema. Malformed, oversized and misdirected requests get a 4xx whose message names the problem.

The application runs in-process (schemathesis's ASGI transport: no sockets, hundreds of requests a second) on a
real deployment: a directory job with a real repository and one backup, so that the restore planner is reached
with real snapshots. Nothing fuzzed can start work: the auditor's token is refused every action (403), the
operator's backups and verifications name jobs that do not exist (404), and the operator's restores are always
dry runs (`dry_run` forced on), which only plan.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python import asgi

from replica.settings import Settings
from replica.web.app import MAX_BODY_BYTES, create_server_app
from tests.e2e.conftest import Deployment, assert_ok
from tests.e2e.sources import DirectorySource
from tests.e2e.web import create_token

pytestmark = pytest.mark.e2e

JOB = "fuzzed"
EXAMPLES_PER_OPERATION = 25
STARTING_WORK = ("/api/jobs/{job}/backup", "/api/jobs/{job}/verify")


@dataclass(frozen=True)
class Fuzzing:
    """The schema of the app under test, a client that reaches it in-process and the two tokens."""

    schema: Any
    client: requests.Session
    auditor: str
    operator: str

    def call(self, method: str, path: str, token: str | None = None, **arguments: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.request(method, path, headers={**headers, **arguments.pop("headers", {})}, **arguments)


@pytest.fixture(scope="module")
def fuzzing(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    """GIVEN a directory job backed up once, an auditor's and an operator's token, and the app in-process."""
    source = DirectorySource(tmp_path_factory.mktemp("fuzz-source"))
    deployment.write_job(JOB, source.store_config(), deployment.two_destinations("fuzz"))
    assert_ok(deployment.replica("init", JOB))
    assert_ok(deployment.replica("backup", JOB))
    auditor = create_token(deployment, "fuzz-auditor", "auditor")
    operator = create_token(deployment, "fuzz-operator", "operator")
    settings = Settings(
        state_dir=deployment.state_dir,
        catalog_url=deployment.catalog.url,
        jobs_dir=deployment.root / "jobs",
        policies_dir=deployment.root / "policies",
        s3_endpoint_url=deployment.s3.endpoint_url,
        restic_password_file=deployment.password_file,
    )
    app = create_server_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    environment = deployment.environment()
    with pytest.MonkeyPatch.context() as patch:
        # The S3 credentials `replica serve` would find in its environment (the restore planner reads S3).
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            patch.setenv(name, environment[name])
        # Entering the client runs the app's lifespan, as uvicorn would; shutting it down runs its shutdown.
        with asgi.ASGIClient(app) as client:
            yield Fuzzing(schema, client, auditor, operator)
        asgi.shutdown_lifespans()


def _force_dry_run(case: Any) -> Any:
    if isinstance(case.body, dict):
        case.body["dry_run"] = True
    return case


def _cases(fuzzing: Fuzzing, operation: Any, token: str, mode: GenerationMode) -> Any:
    """Return the strategy of requests to fuzz `operation` with, as `token`'s holder, made harmless."""
    if token == fuzzing.auditor:
        return operation.as_strategy(generation_mode=mode)  # any job name: every action is refused (403)
    if operation.path in STARTING_WORK:
        # The operator's backups and verifications name jobs that do not exist.
        return operation.as_strategy(generation_mode=mode).filter(
            lambda case: (case.path_parameters or {}).get("job") != JOB
        )
    if "{job}" not in operation.path:
        return operation.as_strategy(generation_mode=mode)
    # The operator's reads and restores name the real job, so that its records and snapshots are reached; its
    # restores only ever plan.
    strategy = operation.as_strategy(generation_mode=mode, path_parameters={"job": JOB})
    return strategy.map(_force_dry_run) if operation.path.endswith("/restore") else strategy


def _checks() -> list[Callable[..., Any]]:
    from schemathesis import checks

    return [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ]


def _fuzz_operation(fuzzing: Fuzzing, operation: Any, token: str, mode: GenerationMode) -> int:
    """Send `operation`'s generated requests as `token`'s holder; return how many were sent. Fails on the first
    answer that breaks a check (schemathesis names the request, as curl, to reproduce it)."""
    sent = 0
    checks = _checks()

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure in CI reproduces on a laptop
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=_cases(fuzzing, operation, token, mode))
    def send(case: Any) -> None:
        nonlocal sent
        response = case.call(session=fuzzing.client, headers={"Authorization": f"Bearer {token}"})
        sent += 1
        case.validate_response(response, checks=checks)

    # An operation without parameters has no invalid request to make.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        send()
    return sent


def _fuzz(fuzzing: Fuzzing, token: str) -> dict[str, int]:
    """Fuzz every operation, valid and invalid requests, as `token`'s holder; return the requests sent per
    operation."""
    sent: dict[str, int] = {}
    for result in fuzzing.schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent[label] = sent.get(label, 0) + _fuzz_operation(fuzzing, operation, token, mode)
    return sent


def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(fuzzing: Fuzzing) -> None:
    # GIVEN the app's own OpenAPI document
    # WHEN every operation gets valid and invalid requests from the auditor, then from the operator
    sent_by_auditor = _fuzz(fuzzing, fuzzing.auditor)
    sent_by_operator = _fuzz(fuzzing, fuzzing.operator)

    # THEN no answer was a 5xx or broke the document (the checks raise), every operation was exercised...
    operations = {f"{o.ok().method.upper()} {o.ok().path}" for o in fuzzing.schema.get_all_operations()}
    assert set(sent_by_auditor) == operations and set(sent_by_operator) == operations
    # ... and nothing was started, refused or restored: no request in the log, no restore run
    assert fuzzing.call("GET", "/api/events", fuzzing.auditor, params={"kind": "request"}).json() == []
    assert fuzzing.call("GET", "/api/runs", fuzzing.auditor, params={"kind": "restore"}).json() == []
    assert fuzzing.call("GET", "/api/tasks", fuzzing.auditor).json() == []


def test_malformed_oversized_and_misdirected_requests_get_a_clear_4xx(fuzzing: Fuzzing) -> None:
    operator = fuzzing.operator
    restore = f"/api/jobs/{JOB}/restore"

    # WHEN a body is over the limit, is not JSON, lacks a field or has an unknown one
    oversized = fuzzing.call("POST", restore, operator, data=b"{" + b" " * MAX_BODY_BYTES + b"}")
    not_json = fuzzing.call("POST", restore, operator, data=b'{"to": ', headers={"content-type": "application/json"})
    missing = fuzzing.call("POST", restore, operator, json={"dry_run": True})
    unknown_field = fuzzing.call("POST", restore, operator, json={"to": "/tmp/x", "dry_run": True, "overwrite": 1})

    # THEN each is refused before any work, with a message naming the problem
    assert oversized.status_code == 413 and str(MAX_BODY_BYTES) in oversized.json()["detail"]
    assert not_json.status_code == 422 and "JSON" in not_json.json()["detail"]
    assert missing.status_code == 422 and "to: Field required" in missing.json()["detail"]
    assert unknown_field.status_code == 422 and "overwrite" in unknown_field.json()["detail"]

    # WHEN query values are out of range or not of their kind
    answers = {
        "limit 0": fuzzing.call("GET", "/api/runs", operator, params={"limit": 0}),
        "limit text": fuzzing.call("GET", "/api/runs", operator, params={"limit": "many"}),
        "bad kind": fuzzing.call("GET", "/api/events", operator, params={"kind": "DROP TABLE"}),
        "bad time": fuzzing.call("GET", "/api/events", operator, params={"since": "yesterday"}),
        "bad format": fuzzing.call("GET", "/api/audit/export", operator, params={"format": "xml"}),
        "huge id": fuzzing.call("GET", "/api/runs/99999999999", operator),
        "bad job": fuzzing.call("GET", "/api/jobs/..%2Fetc/snapshots", operator),
    }

    # THEN each is a 422 naming the parameter
    named = {"limit 0": "limit", "limit text": "limit", "bad kind": "kind", "bad time": "since", "bad format": "format"}
    for case, answer in answers.items():
        assert answer.status_code in (404, 422) if case == "bad job" else answer.status_code == 422, (case, answer.text)
        assert named.get(case, "") in answer.json()["detail"], (case, answer.text)

    # WHEN a route is asked with a method it does not take
    wrong_method = fuzzing.call("DELETE", "/api/runs", operator)
    get_an_action = fuzzing.call("GET", f"/api/jobs/{JOB}/backup", operator)

    # THEN 405, with the methods it takes
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
    assert get_an_action.status_code == 405 and get_an_action.headers["allow"] == "POST"
    assert json.loads(wrong_method.text)["detail"] == "Method Not Allowed"


def test_a_restore_target_that_is_no_usable_path_gets_a_4xx(fuzzing: Fuzzing) -> None:
    # GIVEN restore targets that name no usable path: a NUL byte, a name too long (absolute, and relative, which the
    # web takes inside its restore folder)
    targets = ["a\x00b", "/tmp/" + "n" * 300, "n" * 300]

    # WHEN the operator plans restores to them
    answers = [
        fuzzing.call("POST", f"/api/jobs/{JOB}/restore", fuzzing.operator, json={"to": target, "dry_run": True})
        for target in targets
    ]

    # THEN each is a 400 saying the target is no usable path (a 500 before: the planner let OS errors through)
    assert [answer.status_code for answer in answers] == [400, 400, 400], [answer.text for answer in answers]
    assert all("not a usable path" in answer.json()["detail"] for answer in answers)
