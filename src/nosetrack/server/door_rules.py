"""What uvicorn's protocols (http_protocol.py) need from the app, handed over in the lifespan state.

A module of its own, importing nothing of the server: gunicorn's arbiter imports the protocols before the
metrics' directory is set, so they may not import the state (and with it prometheus_client).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# The key under which the front door puts its `DoorRules` in the lifespan state, for the protocols to read.
DOOR_RULES = "nosetrack.door_rules"


@dataclass(frozen=True)
class DoorRules:
    """What the protocol needs from the app: the request deadline, and whether the worker is stopping."""

    request_seconds: float
    stopping: threading.Event
