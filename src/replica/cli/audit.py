"""`replica audit ...`: the verification log for auditors (read, verify, export) and the operator's signing key."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import OK
from replica.cli.render import table
from replica.errors import UsageError

if TYPE_CHECKING:
    from replica.actions.context import Context

# replica.actions.evidence.EXPORT_FORMATS, spelled out so that building the parser does not import the evidence
# pack's modules (every command builds it); a unit test holds the two equal.
EXPORT_FORMATS = ("json", "csv", "html")

DETAIL_COLUMN_CHARACTERS = 60
FIGURES_SHOWN = ("rto_seconds", "rpo_seconds", "bytes_processed", "bytes_added", "removed", "report_id", "notifier")


def add_audit_parser(sub: Any, timestamp: Any) -> None:
    """Add `audit log|verify|export|keygen` to the command line's subparsers."""
    audit = sub.add_parser("audit", help="the verification log: read, verify, export", description=__doc__)
    actions = audit.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    log = actions.add_parser("log", help="print events of the verification log, oldest first")
    log.set_defaults(handler=audit_log)
    log.add_argument("--job")
    log.add_argument("--kind", action="append", default=[], help="only events of this kind (repeatable)")
    log.add_argument("--since", type=timestamp, help="ISO 8601 time")
    log.add_argument("--until", type=timestamp, help="ISO 8601 time")
    log.add_argument("--limit", type=int, default=200, help="newest N events (default 200; 0 for all)")
    log.add_argument("--json", action="store_true")
    verify = actions.add_parser("verify", help="check the hash chain and signatures; exit 1 on any tampering")
    verify.set_defaults(handler=audit_verify)
    verify.add_argument("--public-key", type=Path, action="append", default=[], help="trusted public key file")
    verify.add_argument("--anchor", action="append", default=[], help="SEQ:HASH of a chain head written down before")
    verify.add_argument("--export", type=Path, help="check this JSON evidence pack instead of the catalog")
    export = actions.add_parser("export", help="write the evidence pack of a period")
    export.set_defaults(handler=audit_export)
    export.add_argument("--format", choices=EXPORT_FORMATS, default="json")
    export.add_argument("--since", type=timestamp, help="ISO 8601 time (default: the beginning)")
    export.add_argument("--until", type=timestamp, help="ISO 8601 time (default: now)")
    export.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    keygen = actions.add_parser("keygen", help="create the Ed25519 key that signs events")
    keygen.set_defaults(handler=audit_keygen)
    keygen.add_argument("-o", "--output", type=Path, required=True, help="private key file to create (0600)")


def audit_log(context: Context, arguments: argparse.Namespace) -> int:
    """Print events, oldest first."""
    from replica.actions.audit import read_log  # imported by its commands: ~25 ms

    events = read_log(
        context,
        job=arguments.job,
        kinds=arguments.kind,
        since=arguments.since,
        until=arguments.until,
        newest=arguments.limit or None,
    )
    if arguments.json:
        print(json.dumps(events, indent=2))
        return OK
    rows = [
        [
            str(event["seq"]),
            event["recorded_at"][:19],
            event["kind"],
            event["job"] or "-",
            event["destination"] or "-",
            event["outcome"],
            event["actor"],
            _figures(event["figures"]),
            (event["detail"] or "")[:DETAIL_COLUMN_CHARACTERS],
        ]
        for event in events
    ]
    headers = ["SEQ", "RECORDED (UTC)", "KIND", "JOB", "DEST", "OUTCOME", "ACTOR", "FIGURES", "DETAIL"]
    print(table(headers, rows) if rows else "no events")
    return OK


def _figures(figures: dict[str, Any]) -> str:
    shown = [f"{key}={_number(figures[key])}" for key in FIGURES_SHOWN if key in figures]
    checks = figures.get("checks")
    if isinstance(checks, list) and checks:
        passed = sum(1 for check in checks if check.get("passed"))
        shown.append(f"checks={passed}/{len(checks)}")
    return " ".join(shown) or "-"


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def audit_verify(context: Context, arguments: argparse.Namespace) -> int:
    """Check the chain (of the catalog, or of an exported pack) and print what was proven."""
    from replica.actions.audit import Anchor, verify_export, verify_log

    if arguments.export is not None:
        if arguments.anchor:
            raise UsageError("--anchor checks the catalog's log; compare an export's chain.head_hash by eye")
        summary, chain, own_key = verify_export(arguments.export, arguments.public_key)
        signed = ""
        if summary.first_signed_seq is not None:
            whose = "the given key" if own_key else f"the key named in the pack ({chain.get('key_id')}; compare it)"
            signed = f"; signatures verified with {whose}"
        print(f"evidence pack intact: {summary.events} events #{summary.first_seq}..#{summary.head_seq}{signed}")
        print(f"head: {summary.head_seq}:{summary.head_hash}")
        return OK
    anchors = [Anchor.parse(text) for text in arguments.anchor]
    summary = verify_log(context, arguments.public_key, anchors)
    if summary.events == 0:
        print("verification log is empty")
        return OK
    if summary.first_signed_seq is None:
        signatures = "not signed (set audit_signing_key_file to sign new events)"
    elif arguments.public_key or context.settings.audit_signing_key_file:
        signatures = f"signed since #{summary.first_signed_seq} by {', '.join(sorted(summary.key_ids or ()))}: valid"
    else:
        signatures = f"signed since #{summary.first_signed_seq}; signatures NOT checked (give --public-key)"
    print(f"verification log intact: {summary.events} events #{summary.first_seq}..#{summary.head_seq}; {signatures}")
    if anchors:
        print(f"anchors found unchanged: {', '.join(str(anchor.seq) for anchor in anchors)}")
    print(f"head: {summary.head_seq}:{summary.head_hash}   (write it down; check later with --anchor)")
    return OK


def audit_export(context: Context, arguments: argparse.Namespace) -> int:
    """Write the evidence pack of a period and say where."""
    from replica.actions.evidence import build_evidence_pack, write_evidence_pack

    pack = build_evidence_pack(context, arguments.since, arguments.until)
    written = write_evidence_pack(pack, arguments.format, arguments.output)
    chain = pack["chain"]
    state = "intact" if chain["verified"] else "TAMPERED: " + "; ".join(chain["problems"])
    print(f"{len(pack['events'])} events, {len(pack['jobs'])} jobs; log {state}", file=sys.stderr)
    for path in written:
        print(path)
    print(f"head: {chain['head_seq']}:{chain['head_hash']}", file=sys.stderr)
    return OK


def audit_keygen(context: Context, arguments: argparse.Namespace) -> int:
    """Create a signing key; print its public key and how to use it."""
    from replica.audit.keys import generate_key, public_hex

    try:
        signer = generate_key(arguments.output)
    except FileExistsError:
        raise UsageError(f"{arguments.output} exists; a signing key is never replaced") from None
    print(f"private key: {arguments.output} (keep it secret; set REPLICA_AUDIT_SIGNING_KEY_FILE to it)")
    print(f"public key:  {arguments.output}.pub  {public_hex(signer.private_key.public_key())}")
    print(f"key id:      {signer.key_id}")
    return OK
