"""Migration files follow the naming convention the catalog relies on to know revisions without Alembic."""

from __future__ import annotations

import ast

from replica.catalog.database import MIGRATIONS_PATH, known_revisions


def _assigned(path_text: str, name: str) -> object:
    for node in ast.parse(path_text).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not assigned")


def test_every_migration_file_is_named_after_its_revision_and_chains_to_the_previous() -> None:
    revisions = known_revisions()
    assert revisions, "no migrations found"
    previous = None
    for revision in revisions:
        (path,) = (MIGRATIONS_PATH / "versions").glob(f"{revision}_*.py")
        source = path.read_text()
        assert _assigned(source, "revision") == revision
        assert _assigned(source, "down_revision") == previous
        previous = revision
