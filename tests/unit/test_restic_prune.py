"""argv of `restic forget --prune`: exactly the ids replica decided on, nothing restic could read as a policy."""

from __future__ import annotations

import pytest

from replica.restic.prune import prune_arguments


def test_forget_names_each_snapshot_and_prunes() -> None:
    assert prune_arguments(["0123abcd", "f2b2c578c15297de"]) == ["forget", "--prune", "0123abcd", "f2b2c578c15297de"]


@pytest.mark.parametrize("snapshot_ids", [[], ["--keep-last"], ["0123abcd", "latest"], ["0123"], ["0123ABCD"]])
def test_anything_but_snapshot_ids_is_refused(snapshot_ids: list[str]) -> None:
    with pytest.raises(ValueError):
        prune_arguments(snapshot_ids)
