"""A directory tree that every kind of restic exclude pattern touches, shared by the walk's unit tests and the
integration test that holds the walk against real restic."""

from __future__ import annotations

from pathlib import Path

# One component, several in a row at any depth, a trailing '/', and an absolute path ("/logs": not below the tree).
EXCLUDE_PATTERNS = ("*.tmp", ".cache", "build/*.o", "/logs", "deep/er", "cache/")


def make_exclusion_tree(root: Path) -> list[str]:
    """Write a tree that every pattern of EXCLUDE_PATTERNS touches, plus a file link and a directory link that loops;
    return every regular file's relative path."""
    files = [
        "a.txt",
        "a.tmp",
        "keep/b.txt",
        "keep/b.tmp",
        ".cache/blob",
        "keep/.cache/blob",
        "build/main.o",
        "build/main.c",
        "build/sub/x.o",
        "keep/build/main.o",
        "logs/today.log",
        "keep/logs/today.log",
        "deep/er/file",
        "deep/err/file",
        "keep/deep/er/file",
        "cache",
        "keep/cache/file",
        "Upper.TMP",
    ]
    for relative in files:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)
    (root / "keep" / "link").symlink_to(root / "a.txt")
    (root / "keep" / "dirlink").symlink_to(root / "keep")
    return files
