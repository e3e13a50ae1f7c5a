"""The hash chain and signatures of the verification log, without a catalog."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from replica.audit.chain import GENESIS_HASH, ChainedEvent, canonical_figures, check_chain, event_hash
from replica.audit.keys import Signer, Verifier


def _chain(count: int, signer: Signer | None = None) -> list[ChainedEvent]:
    events: list[ChainedEvent] = []
    previous_hash, previous_signature = GENESIS_HASH, None
    for seq in range(1, count + 1):
        draft = ChainedEvent(
            seq=seq,
            recorded_at=f"2026-11-27T04:00:{seq:02d}.000000Z",
            kind="verify",
            job="billing",
            destination="primary",
            snapshot=f"snap{seq}",
            run_id=seq,
            actor="daemon@host",
            outcome="succeeded",
            figures=canonical_figures({"rto_seconds": 1.5 * seq}),
            detail="",
            previous_hash=previous_hash,
            hash="",
            key_id=signer.key_id if signer else None,
        )
        digest = event_hash(draft, previous_signature)
        signature = signer.sign(digest) if signer else None
        event = dataclasses.replace(draft, hash=digest, signature=signature)
        events.append(event)
        previous_hash, previous_signature = digest, signature
    return events


def _rows(events: list[ChainedEvent]) -> list[tuple[object, ...]]:
    return [dataclasses.astuple(event) for event in events]


def test_the_hash_is_sha256_of_the_documented_canonical_array() -> None:
    """GIVEN an event WHEN hashed THEN it equals the encoding the evidence pack documents (auditors re-implement it)."""
    event = _chain(1)[0]
    fields = [1, *dataclasses.astuple(event)[:12], None, event.key_id]
    expected = hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    assert event.hash == expected


def test_an_untouched_chain_is_intact() -> None:
    summary = check_chain(_rows(_chain(5)))
    assert summary.intact and summary.events == 5 and summary.head_seq == 5


@pytest.mark.parametrize("column", [2, 7, 8, 9, 10])
def test_editing_any_hashed_column_names_that_event(column: int) -> None:
    rows = _rows(_chain(5))
    edited = list(rows[2])
    edited[column] = "tampered"
    rows[2] = tuple(edited)
    summary = check_chain(rows)
    assert summary.problem is not None and summary.problem.seq == 3
    assert "does not match its hash" in summary.problem.reason


def test_deleting_an_event_names_the_gap() -> None:
    rows = _rows(_chain(5))
    del rows[1]
    summary = check_chain(rows)
    assert summary.problem is not None and summary.problem.seq == 2
    assert summary.problem.reason == "is missing (deleted?)"


def test_an_inserted_event_with_a_recomputed_tail_breaks_the_signature() -> None:
    """GIVEN a signed log WHEN an attacker inserts an event and recomputes every later hash (without the key)
    THEN the newest signature no longer verifies."""
    signer = Signer(Ed25519PrivateKey.generate())
    forger = Signer(Ed25519PrivateKey.generate())
    events = _chain(4, signer)
    # A whole new chain claiming our key id: what recomputing everything without our key gives.
    impostor = SimpleNamespace(key_id=signer.key_id, sign=forger.sign)
    forged = _chain(5, impostor)  # type: ignore[arg-type]
    summary = check_chain(_rows(forged), check_signature=signer.verifier)
    assert summary.problem is not None and "signature does not verify" in summary.problem.reason
    assert check_chain(_rows(events), check_signature=signer.verifier).intact


def test_an_unsigned_event_after_signed_ones_is_named() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    events = _chain(3, signer)
    tail = _chain(4)[3]
    appended = dataclasses.replace(tail, previous_hash=events[-1].hash)
    appended = dataclasses.replace(appended, hash=event_hash(appended, events[-1].signature))
    summary = check_chain(_rows([*events, appended]), check_signature=signer.verifier)
    assert summary.problem is not None and summary.problem.seq == 4
    assert "not signed (the log is signed since #1)" in summary.problem.reason


def test_an_edited_signature_in_the_middle_names_its_event() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    rows = _rows(_chain(4, signer))
    edited = list(rows[1])
    edited[14] = "00" * 64
    rows[1] = tuple(edited)
    summary = check_chain(rows, check_signature=signer.verifier)
    assert summary.problem is not None and summary.problem.seq == 2
    assert "signature does not verify" in summary.problem.reason


def test_an_unknown_key_does_not_verify() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    other = Signer(Ed25519PrivateKey.generate())
    summary = check_chain(_rows(_chain(2, signer)), check_signature=Verifier(other.verifier.public_keys))
    assert summary.problem is not None and summary.problem.seq == 2


@pytest.mark.parametrize("text", ["plain", "naïve café ✓", 'quote " backslash \\ tab \t nul \x00 line\n', ""])
def test_the_fast_encoding_equals_json_dumps_for_any_text(text: str) -> None:
    event = dataclasses.replace(
        _chain(1)[0], detail=text, job=None, run_id=None, figures=canonical_figures({"t": text})
    )
    fields = [1, *dataclasses.astuple(event)[:12], "sig" + text, event.key_id]
    expected = hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    assert event_hash(event, "sig" + text) == expected


def test_figures_of_an_unexpected_type_are_written_as_text_not_refused() -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 27, tzinfo=UTC)
    assert canonical_figures({"b": [moment], "a": 1}) == '{"a":1,"b":["2026-11-27 00:00:00+00:00"]}'
