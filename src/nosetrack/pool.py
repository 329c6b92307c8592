"""A fixed set of model instances shared by a worker's threads: one request per instance at a time."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .models import Model


class Overloaded(RuntimeError):
    """No model instance came free within the wait the server allows."""


class ModelPool:
    """Instances that never see two requests at once, so answers cannot mix (the seed's lock, without
    serializing the whole worker)."""

    def __init__(self, make_model: Callable[[], Model], size: int) -> None:
        self._free: queue.Queue[Model] = queue.Queue()
        for _ in range(size):
            self._free.put(make_model())
        self.size = size
        self.info = self._free.queue[0].info

    @contextmanager
    def lease(self, timeout: float) -> Iterator[Model]:
        """Borrow an instance for one request; raise `Overloaded` after `timeout` seconds."""
        try:
            model = self._free.get(timeout=timeout)
        except queue.Empty:
            raise Overloaded(f"No model was free within {timeout:g} s.") from None
        try:
            yield model
        finally:
            self._free.put(model)
