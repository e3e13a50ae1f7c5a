"""The hash chain of the verification log: how an event is encoded, hashed, signed and checked.

Each event's hash is SHA-256 over a canonical JSON array of all its fields, the previous event's hash and the
previous event's signature. So editing any column of any event, deleting one, or inserting one changes a hash
that a later event (or the chain head an auditor anchored) commits to. With a signing key, each event's hash is
also signed (Ed25519); since every hash commits to every earlier event *and* its signature, checking the chain plus
the newest signature authenticates the whole log, and an attacker without the key cannot append a forged event
that verifies.

The encoding is deliberately simple so that an auditor can re-implement it from the evidence pack alone:
`sha256(json.dumps([1, seq, recorded_at, kind, job, destination, snapshot, run_id, actor, outcome, figures,
detail, previous_hash, previous_signature, key_id], separators=(",", ":"), ensure_ascii=False).encode())`,
where `figures` is the canonical JSON text of the figures (sorted keys, the same separators).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

CHAIN_FORMAT = 1
HASH_ALGORITHM = "sha256"
# The `previous_hash` of the first event of a log.
GENESIS_HASH = "0" * 64
# Signed bytes: a fixed context prefix, so that a replica signature can never be replayed as something else.
SIGNATURE_CONTEXT = b"replica verification log event v1:"
try:
    # `audit verify` encodes one array per event (millions). json.dumps builds a new C encoder on every call,
    # which costs more than the encoding; this is that same C encoder made once, with the same arguments
    # json.dumps(separators=(",", ":"), ensure_ascii=False) passes: byte for byte the same text (a unit test holds
    # it to that). CPython has shipped it since 2.6; another interpreter falls back to json.dumps.
    from _json import make_encoder

    _ARRAY_ENCODER = make_encoder(None, None, encode_basestring, None, ":", ",", False, False, True)  # type: ignore[arg-type]

    def _encode_array(values: list[Any]) -> str:
        return "".join(_ARRAY_ENCODER(values, 0))

except ImportError:  # pragma: no cover - not CPython

    def _encode_array(values: list[Any]) -> str:
        return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


# default=str: a figure of an unexpected type (a datetime in a list) is written as text rather than failing the
# transaction that records a run's outcome, which would leave the run `running`.
_FIGURES_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str)


def canonical_figures(figures: dict[str, Any]) -> str:
    """Return the canonical JSON text of an event's figures (sorted keys, no spaces): what is stored and hashed."""
    return _FIGURES_ENCODER.encode(figures)


@dataclass(frozen=True)
class ChainedEvent:
    """An event as stored: every hashed field, its hash, and its signature when the log is signed."""

    seq: int
    recorded_at: str
    kind: str
    job: str | None
    destination: str | None
    snapshot: str | None
    run_id: int | None
    actor: str
    outcome: str
    figures: str  # canonical JSON text
    detail: str
    previous_hash: str
    hash: str
    key_id: str | None = None
    signature: str | None = None


# The stored columns of an event, in the order rows are read and hashed (the `events` table uses these names).
EVENT_FIELDS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(ChainedEvent))


def event_hash(
    event: ChainedEvent | Sequence[Any], previous_signature: str | None, *, previous_hash: str | None = None
) -> str:
    """Return the hex SHA-256 of an event's canonical encoding.

    `event` is a ChainedEvent, or a row in the column order of ChainedEvent (its `hash` and `signature` entries
    are ignored). `previous_hash` overrides the event's own (used while building a new event).
    """
    if isinstance(event, ChainedEvent):
        row: Sequence[Any] = dataclasses.astuple(event)
    else:
        row = event
    return hashlib.sha256(canonical_text(row, previous_signature, previous_hash).encode("utf-8")).hexdigest()


def canonical_text(row: Sequence[Any], previous_signature: str | None, previous_hash: str | None = None) -> str:
    """Return the canonical JSON array an event's hash covers (see the module docstring)."""
    linked = row[11] if previous_hash is None else previous_hash
    return _encode_array([CHAIN_FORMAT, *row[:11], linked, previous_signature, row[13]])


def signed_bytes(hash_hex: str) -> bytes:
    """Return the bytes an event's signature covers."""
    return SIGNATURE_CONTEXT + hash_hex.encode("ascii")


@dataclass(frozen=True)
class ChainProblem:
    """The first event where the log stops being what was written, and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"event #{self.seq}: {self.reason}"


@dataclass
class ChainSummary:
    """What a chain check saw: how many events, the range, the head, which of them are signed."""

    events: int = 0
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    first_signed_seq: int | None = None
    key_ids: set[str] | None = None
    problem: ChainProblem | None = None
    # (seq, key_id, hash, signature) of the newest signed event: its signature authenticates all before it.
    last_signed: tuple[int, str, str, str] | None = None

    @property
    def intact(self) -> bool:
        """Return True when no problem was found."""
        return self.problem is None


SignatureCheck = Callable[[str, str, str], bool]  # (key_id, hash, signature) -> valid


def check_chain(
    rows: Iterable[tuple[Any, ...]],
    *,
    previous_hash: str = GENESIS_HASH,
    previous_signature: str | None = None,
    previous_key_id: str | None = None,
    first_seq: int = 1,
    check_signature: SignatureCheck | None = None,
    require_signatures: bool = False,
) -> ChainSummary:
    """Check a run of events, oldest first, each a tuple in ChainedEvent's field order; return what was seen and
    the first problem (the scan stops there).

    Checks: sequence numbers are contiguous from `first_seq`; each event links to the previous hash; each hash
    matches the recomputed one; once one event is signed, every later one is; and, with `check_signature`, the
    newest signed event's signature is valid (which, through the chain, authenticates every earlier event and
    signature). `require_signatures` makes an unsigned event a problem from the first one. A run that starts
    mid-log (a range of a parallel check, an evidence pack of a period) starts from the hash, signature and key of
    the event before it; a signed event before it means every event of the run must be signed.
    """
    summary = ChainSummary(key_ids=set())
    expected_seq = first_seq
    signed_before = previous_signature is not None
    last_signed: tuple[int, str, str, str] | None = None
    # The loop runs once per event of the whole log: locals only, no calls but the encoder and the hash.
    encode, sha256, version = _encode_array, hashlib.sha256, CHAIN_FORMAT
    for row in rows:
        seq, row_hash, key_id, signature = row[0], row[12], row[13], row[14]
        if seq != expected_seq:
            summary.problem = (
                ChainProblem(expected_seq, "is missing (deleted?)")
                if seq > expected_seq
                else ChainProblem(seq, f"comes after #{expected_seq - 1} (inserted?)")
            )
            break
        if row[11] != previous_hash:
            summary.problem = ChainProblem(
                seq, "does not link to the event before it (an event was deleted or inserted before it)"
            )
            break
        text = encode([version, *row[:12], previous_signature, key_id])
        if sha256(text.encode("utf-8")).hexdigest() != row_hash:
            summary.problem = hash_problem(seq, previous_key_id, previous_hash, previous_signature, check_signature)
            break
        if signature is not None and key_id is not None:
            if summary.first_signed_seq is None:
                summary.first_signed_seq = seq
                summary.key_ids.add(key_id)  # type: ignore[union-attr]
            elif key_id != previous_key_id:
                summary.key_ids.add(key_id)  # type: ignore[union-attr]
            last_signed = (seq, key_id, row_hash, signature)
        elif require_signatures or signed_before or summary.first_signed_seq is not None:
            since = f"#{summary.first_signed_seq}" if summary.first_signed_seq else "an earlier event"
            summary.problem = ChainProblem(seq, f"is not signed (the log is signed since {since})")
            break
        previous_hash, previous_signature, previous_key_id = row_hash, signature, key_id
        expected_seq += 1
    summary.events = expected_seq - first_seq
    if summary.events:
        summary.first_seq, summary.head_seq, summary.head_hash = first_seq, expected_seq - 1, previous_hash
    summary.last_signed = last_signed
    if check_signature is not None:
        check_newest_signature(summary, check_signature)
    return summary


def check_newest_signature(summary: ChainSummary, check_signature: SignatureCheck) -> None:
    """Record a problem in `summary` when its newest signed event's signature does not verify."""
    if summary.problem is None and summary.last_signed is not None:
        seq, key_id, row_hash, signature = summary.last_signed
        if not check_signature(key_id, row_hash, signature):
            summary.problem = ChainProblem(seq, f"signature does not verify with key {key_id}")


def hash_problem(
    seq: int,
    previous_key_id: str | None,
    previous_hash: str,
    previous_signature: str | None,
    check_signature: SignatureCheck | None,
) -> ChainProblem:
    """Return the problem of event `seq` whose hash does not match: its content was edited, or, when the previous
    event's signature (which the hash covers) does not verify, that signature was."""
    if (
        check_signature is not None
        and previous_signature is not None
        and previous_key_id is not None
        and not check_signature(previous_key_id, previous_hash, previous_signature)
    ):
        return ChainProblem(seq - 1, f"signature does not verify with key {previous_key_id} (edited?)")
    return ChainProblem(seq, "content does not match its hash (edited?)")
