"""Keep the garbage collector's full passes short once a process has started.

A started service holds a few hundred thousand long-lived objects (modules, routes, pydantic and protobuf
classes, the app itself). Every full (generation 2) collection walks all of them, which on a loaded
two-core host stalls the event loop for 60-300 ms, every few seconds under load: that was the tail of
the request latencies. Whatever exists at the end of start-up lives as long as the process, so it is moved
out of the collector's sight; only what is allocated afterwards is walked.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect start-up's garbage once, then exempt everything still alive from later collections."""
    gc.collect()
    gc.freeze()
