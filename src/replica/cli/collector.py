"""Pausing Python's cyclic garbage collector where the command line builds many objects that form no cycles.

The collector runs a pass every 700 net allocations, and a full pass, over every object alive, whenever the
survivors grew by a quarter. Start-up (modules, classes) and `replica status` over thousands of jobs (their facts,
documents and table rows) allocate hundreds of thousands of objects that live until they are printed: the passes
over them find nothing and cost about a third of the command's time. Reference counting still frees everything that
is not in a cycle while the collector is paused.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector paused; it runs again afterwards if it ran before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def start_up_done() -> None:
    """Exclude every object alive now (modules, classes, parsed settings) from future collector passes: they live
    as long as the process, and scanning them again finds nothing. Garbage in cycles is collected first, so that
    nothing unreachable is frozen with them (main() may run inside a longer process, a test's)."""
    gc.collect()
    gc.freeze()
