"""When Ray Serve stops a replica (scale-down, `serve.delete`, an update), its streams close with 1001.

Ray Serve 2.60 gives a replica no public hook before it drains. It marks itself shutting down, then waits
for its ongoing requests to end (an open stream is one, for its whole life) and only then calls the
deployment's `__del__`; after `graceful_shutdown_timeout_s` (20 s by default) the controller kills it. So
`__del__` alone comes too late: open streams would hold the replica until the kill, and their clients would
see the connection drop (1006), not a close. Measured, and the numbers: docs/scale-out.md.

`watch_for_drain` therefore looks at the replica's own shutting-down mark (`Replica._shutting_down`, not a
public API of Ray: if a later Ray moves it, the watch logs that once and `__del__` is the only signal left)
and sets the worker's `stopping` event as soon as it is set. The streams see it within their poll
(`SHUTDOWN_POLL_SECONDS`) and close with 1001; the drain then ends with them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..logs import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

POLL_SECONDS = 0.2


def replica_draining_mark() -> Callable[[], bool] | None:
    """A function that says whether this process's Serve replica has begun to shut down, or None when
    Ray's internals are not where Ray 2.60 keeps them."""
    try:
        from ray._private.worker import global_worker

        actor = global_worker.actors.get(global_worker.actor_id)
        replica = getattr(actor, "_replica_impl", None)
    except Exception:  # not in a replica, or Ray changed: the caller falls back to `__del__`
        return None
    if replica is None or not hasattr(replica, "_shutting_down"):
        return None
    return lambda: bool(replica._shutting_down)


def watch_for_drain(stopping: threading.Event, poll_seconds: float = POLL_SECONDS) -> threading.Thread:
    """Set `stopping` once this replica begins to drain; a daemon thread that ends when it is set."""

    def watch() -> None:
        draining = None
        told = False
        while not stopping.wait(poll_seconds):
            draining = draining or replica_draining_mark()
            if draining is None:
                if not told:
                    logger.warning("No drain mark in this Ray: streams close only from __del__.")
                    told = True
                continue
            if draining():
                logger.info("Ray is stopping this replica: its streams close (1001).")
                stopping.set()

    thread = threading.Thread(target=watch, name="nosetrack-drain-watch", daemon=True)
    thread.start()
    return thread
