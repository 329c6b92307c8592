"""Bounded admission: a worker takes only as many predictions as it can serve soon, and refuses the rest.

gunicorn hands each connection to a thread; a thread that then waits for a busy model only adds latency.
The gate counts the predictions a worker holds (running or waiting for a model) and refuses one more than
`limit` at once, with the pool's `Overloaded`, which the app answers with 503 and Retry-After.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..pool import Overloaded


class AdmissionGate:
    def __init__(self, limit: int, noun: str = "predictions") -> None:
        """`noun` names what is counted, in the refusal's message."""
        self.limit = limit
        self.noun = noun
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place for the block's duration; raise `Overloaded` when every place is taken."""
        with self._lock:
            if self._held >= self.limit:
                raise Overloaded(f"This worker already holds {self._held} {self.noun}.")
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
