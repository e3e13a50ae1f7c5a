"""Tokens of the web console through the real CLI and `replica serve`: only /healthz answers without one, roles
decide who may act, a revoked token is refused, and creating and revoking land in the verification log."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Deployment, assert_ok
from tests.e2e.web import create_token, running_server

pytestmark = pytest.mark.e2e


def test_only_healthz_answers_without_a_token_and_roles_decide_who_may_act(deployment: Deployment) -> None:
    # GIVEN an auditor's and an operator's token, and a running server
    auditor = create_token(deployment, "audit-firm", "auditor")
    operator = create_token(deployment, "oncall", "operator")
    with running_server(deployment) as server:
        anonymous, as_auditor, as_operator = server.client(), server.client(auditor), server.client(operator)

        # WHEN each asks
        health = anonymous.get("/healthz")
        unauthenticated = anonymous.get("/api/whoami")
        forged = server.client("rpl_not-a-token").get("/api/whoami")
        auditor_acts = as_auditor.post("/api/jobs/no-such-job/verify")
        operator_unknown_job = as_operator.post("/api/jobs/no-such-job/verify")

        # THEN only /healthz answers without a token; the auditor may read but not act (403 naming the role);
        # the operator gets past the role check to a 404 naming the job
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert unauthenticated.status_code == 401 and "token" in unauthenticated.json()["detail"]
        assert forged.status_code == 401
        assert as_auditor.get("/api/whoami").json() == {"name": "audit-firm", "role": "auditor"}
        assert auditor_acts.status_code == 403 and "operator" in auditor_acts.json()["detail"]
        assert operator_unknown_job.status_code == 404 and "no-such-job" in operator_unknown_job.json()["detail"]

        # WHEN the operator's token is revoked
        assert_ok(deployment.replica("token", "revoke", "oncall"))

        # THEN it is refused at once
        assert as_operator.get("/api/whoami").status_code == 401

    # AND the log holds the token events by name and role, never a token
    events = deployment.replica_json("audit", "log", "--kind", "token")
    assert [(e["outcome"], e["figures"]["token"], e["figures"]["role"]) for e in events] == [
        ("created", "audit-firm", "auditor"),
        ("created", "oncall", "operator"),
        ("revoked", "oncall", "operator"),
    ]


def test_a_token_name_is_taken_once_and_roles_are_checked(deployment: Deployment) -> None:
    # GIVEN a token named 'twice'
    create_token(deployment, "twice", "auditor")

    # WHEN the name is reused, a role is made up, or a name has a space
    again = deployment.replica("token", "create", "--name", "twice", "--role", "auditor")
    bad_role = deployment.replica("token", "create", "--name", "other", "--role", "admin")
    bad_name = deployment.replica("token", "create", "--name", "two words", "--role", "auditor")

    # THEN each is refused with one line and exit 2, and nothing is created
    assert again.returncode == 2 and "exists already" in again.stderr
    assert bad_role.returncode == 2 and "admin" in bad_role.stderr
    assert bad_name.returncode == 2 and "two words" in bad_name.stderr
    listing = deployment.replica("token", "list")
    assert "other" not in listing.stdout and "two words" not in listing.stdout
