"""`replica audit`: reading the verification log, proving it untouched, and checking an exported evidence pack.

The evidence pack itself is built in `actions/evidence.py`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from replica.actions.context import Context
from replica.audit.chain import EVENT_FIELDS, ChainProblem, ChainSummary, canonical_figures, check_chain
from replica.audit.keys import Verifier, key_id_of, load_public_key
from replica.catalog.events import EventLog
from replica.errors import LogTampered, UsageError


@dataclass(frozen=True)
class Anchor:
    """A chain head written down earlier (from an export or `audit verify`): event `seq` had hash `hash`."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """Return the anchor written as `SEQ:HASH`. Raises UsageError for anything else."""
        seq, _, digest = text.partition(":")
        if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UsageError(f"--anchor '{text}' is not SEQ:HASH (a number, a colon, 64 hex digits)")
        return cls(int(seq), digest)


def trusted_verifier(context: Context | None, public_keys: Sequence[Path]) -> Verifier | None:
    """Return the verifier of the given public key files, else of the configured signing key, else None."""
    keys = [load_public_key(path) for path in public_keys]
    if keys:
        return Verifier({key_id_of(key): key for key in keys})
    if context is not None and context.settings.audit_signing_key_file is not None:
        signer = context.catalog.events.signer
        return signer.verifier if signer else None
    return None


def verify_log(context: Context, public_keys: Sequence[Path] = (), anchors: Sequence[Anchor] = ()) -> ChainSummary:
    """Check the whole verification log: chain, signatures (when a key is known) and anchors; return the summary.

    Raises LogTampered naming the first bad event.
    """
    log = context.catalog.events
    verifier = trusted_verifier(context, public_keys)
    summary = log.check(check_signature=verifier)
    _raise_on(summary.problem)
    for anchor in anchors:
        _check_anchor(log, anchor)
    return summary


def _check_anchor(log: EventLog, anchor: Anchor) -> None:
    event = log.event(anchor.seq)
    if event is None:
        _raise_on(ChainProblem(anchor.seq, "anchored event is gone (the log was truncated or rewritten)"))
    elif event.hash != anchor.hash:
        _raise_on(ChainProblem(anchor.seq, "hash differs from the anchored one (the log was rewritten)"))


def _raise_on(problem: ChainProblem | None) -> None:
    if problem is not None:
        raise LogTampered(f"verification log tampered: {problem}")


def verify_export(path: Path, public_keys: Sequence[Path] = ()) -> tuple[ChainSummary, dict[str, Any], bool]:
    """Check the events of a JSON evidence pack away from the host; return the summary, the pack's chain block
    and whether signatures were checked against keys given here (False: against the key the pack names).

    Raises UsageError for a file that is not a JSON evidence pack, LogTampered naming the first bad event.
    """
    try:
        pack = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: not a readable JSON evidence pack ({error})") from None
    if not isinstance(pack, dict) or pack.get("kind") != "replica-evidence":
        raise UsageError(f"{path}: not a replica evidence pack (kind is not 'replica-evidence')")
    chain = pack.get("chain", {})
    verifier = trusted_verifier(None, public_keys)
    own_key = verifier is not None
    if verifier is None and chain.get("public_key"):
        from replica.audit.keys import parse_public_key

        key = parse_public_key(str(chain["public_key"]), what=f"{path}: chain.public_key")
        verifier = Verifier({key_id_of(key): key})
    events = pack.get("events", [])
    rows = [_row(event) for event in events]
    first_seq = chain.get("first_seq") or 1
    summary = check_chain(
        rows,
        previous_hash=chain.get("previous_hash") or "0" * 64,
        first_seq=first_seq,
        check_signature=verifier,
    )
    _raise_on(summary.problem)
    if events and (summary.head_hash != chain.get("head_hash") or summary.head_seq != chain.get("head_seq")):
        _raise_on(ChainProblem(summary.head_seq or 0, "the pack's chain head does not match its last event"))
    return summary, chain, own_key


def _row(event: dict[str, Any]) -> tuple[Any, ...]:
    """Return a pack's event as a stored row; `figures_text` is the exact hashed text (else re-encoded)."""
    figures = event.get("figures_text")
    if figures is None:
        figures = canonical_figures(event.get("figures") or {})
    return tuple(figures if name == "figures" else event.get(name) for name in EVENT_FIELDS)


def read_log(
    context: Context,
    *,
    job: str | None,
    kinds: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    newest: int | None,
) -> list[dict[str, Any]]:
    """Return matching events oldest first as JSON-ready documents (figures parsed; `replica audit log --json` and
    the API's events; the hashed figures text only evidence packs carry)."""
    events = context.catalog.events.events(job=job, kinds=kinds, since=since, until=until, newest=newest)
    documents = [event_document(event) for event in events]
    for document in documents:
        del document["figures_text"]
    return documents


def event_document(event: Any) -> dict[str, Any]:
    """Return an event as a JSON-ready document: every stored field, figures parsed, the hashed text kept."""
    document = dict(event.__dict__)
    document["figures_text"] = event.figures
    document["figures"] = json.loads(event.figures)
    return document
