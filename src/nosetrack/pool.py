"""A fixed set of model instances shared by a worker's threads: one request per instance at a time."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .models import Model


class Overloaded(RuntimeError):
    """No model instance came free within the wait the server allows."""


class _Turn:
    """A request waiting for a model: its lock opens when a returning model is handed to it."""

    __slots__ = ("handed", "model")

    def __init__(self) -> None:
        self.handed = threading.Lock()
        self.handed.acquire()
        self.model: Model | None = None


class ModelPool:
    """Instances that never see two requests at once, so answers cannot mix (the seed's lock, without
    serializing the whole worker).

    Waiting requests are served first come, first served: a returning model goes straight to the oldest
    waiter. (`queue.Queue` lets a newcomer take a model that was meant for a woken waiter, which then waits
    again at the back; under load that starved a few requests for seconds.)
    """

    def __init__(self, make_model: Callable[[], Model], size: int) -> None:
        self._free: deque[Model] = deque(make_model() for _ in range(size))
        self._waiting: deque[_Turn] = deque()
        self._lock = threading.Lock()
        self.size = size
        self.info = self._free[0].info

    @contextmanager
    def lease(self, timeout: float) -> Iterator[Model]:
        """Borrow an instance for one request; raise `Overloaded` after `timeout` seconds."""
        model = self._take(timeout)
        try:
            yield model
        finally:
            self._give_back(model)

    def _take(self, timeout: float) -> Model:
        with self._lock:
            if self._free and not self._waiting:
                return self._free.popleft()
            turn = _Turn()
            self._waiting.append(turn)
        if not turn.handed.acquire(timeout=max(timeout, 0.0)):
            with self._lock:
                if turn.model is None:  # not handed a model while the wait ran out
                    self._waiting.remove(turn)
                    raise Overloaded(f"No model was free within {timeout:g} s.")
        assert turn.model is not None
        return turn.model

    def _give_back(self, model: Model) -> None:
        with self._lock:
            if self._waiting:
                turn = self._waiting.popleft()
                turn.model = model
                turn.handed.release()
            else:
                self._free.append(model)
