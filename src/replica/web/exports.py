"""The evidence pack as a download, for the API and the audit page alike: the pack `replica audit export` writes,
generated under the requester's name (the pack's `generated_by`), CSV's two files zipped into one."""

from __future__ import annotations

import io
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

from fastapi.responses import Response

from replica.actions.context import Context
from replica.actions.evidence import build_evidence_pack, write_evidence_pack
from replica.catalog.actor import acting_as
from replica.catalog.tokens import TokenHolder
from replica.errors import UsageError

EXPORT_MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8", "csv": "application/zip"}


def evidence_download(
    context: Context, holder: TokenHolder, export_format: str, since: datetime | None, until: datetime | None
) -> Response:
    """Return the evidence pack of a period as an attachment. Raises UsageError for a period that ends before it
    starts or an unknown format."""
    if since is not None and until is not None and since > until:
        raise UsageError("since is after until")
    with acting_as(holder.actor):
        pack = build_evidence_pack(context, since, until)
    name = f"replica-evidence-{pack['generated_at'][:19].replace(':', '')}"
    with tempfile.TemporaryDirectory(prefix="replica-export-") as folder:
        written = write_evidence_pack(pack, export_format, Path(folder) / f"{name}.{export_format}")
        if export_format == "csv":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in written:
                    archive.write(path, path.name)
            body, filename = buffer.getvalue(), f"{name}.zip"
        else:
            body, filename = written[0].read_bytes(), written[0].name
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=EXPORT_MEDIA_TYPES[export_format], headers=headers)
