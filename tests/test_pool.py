"""The model pool: one request per instance, waiting requests served in arrival order, bounded waits."""

from __future__ import annotations

import threading

import pytest
from conftest import WAIT_SECONDS

from nosetrack import pool as pool_module
from nosetrack.pool import ModelPool, Overloaded


class Instance:
    info = "test instance"


def test_each_instance_serves_one_lease_at_a_time():
    pool = ModelPool(Instance, size=2)
    with pool.lease(1) as first, pool.lease(1) as second:
        assert first is not second
        with pytest.raises(Overloaded), pool.lease(0.01):
            pass
    with pool.lease(0) as again:
        assert again in (first, second)


def test_waiting_requests_get_the_model_in_arrival_order(monkeypatch):
    pool = ModelPool(Instance, size=1)
    served: list[int] = []
    queued = threading.Semaphore(0)
    take_a_turn = pool_module._Turn.__init__

    def noted_turn(turn) -> None:  # made under the pool's lock, just before the turn joins its queue
        take_a_turn(turn)
        queued.release()

    monkeypatch.setattr(pool_module._Turn, "__init__", noted_turn)

    def request(number: int) -> None:
        with pool.lease(10):
            served.append(number)

    threads = []
    with pool.lease(1):
        for number in range(8):
            thread = threading.Thread(target=request, args=(number,))
            thread.start()
            threads.append(thread)
            # The next request arrives only once this one waits for the model.
            assert queued.acquire(timeout=WAIT_SECONDS), f"request {number} never waited"
    for thread in threads:
        thread.join(timeout=10)
    assert served == list(range(8))


def test_a_request_that_gives_up_leaves_the_queue_and_the_next_one_is_served():
    pool = ModelPool(Instance, size=1)
    with pool.lease(1), pytest.raises(Overloaded), pool.lease(0.02):
        pass
    # Had the request that gave up stayed in the queue, the returning model would have gone to it.
    with pool.lease(0) as model:
        assert isinstance(model, Instance)
