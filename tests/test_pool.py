"""The model pool: one request per instance, waiting requests served in arrival order, bounded waits."""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for

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


def test_waiting_requests_get_the_model_in_arrival_order():
    pool = ModelPool(Instance, size=1)
    served: list[int] = []
    waiting = threading.Semaphore(0)

    def request(number: int) -> None:
        waiting.release()
        with pool.lease(10):
            served.append(number)

    threads = []
    with pool.lease(1):
        for number in range(8):
            thread = threading.Thread(target=request, args=(number,))
            thread.start()
            threads.append(thread)
            # The next request arrives only once this one waits for the model.
            waiting.acquire()
            wait_for(lambda n=number: pool.waiting == n + 1, f"request {number} to wait")
    for thread in threads:
        thread.join(timeout=10)
    assert served == list(range(8))


def test_a_request_that_gives_up_leaves_the_queue_and_the_next_one_is_served():
    pool = ModelPool(Instance, size=1)
    with pool.lease(1):
        with pytest.raises(Overloaded), pool.lease(0.02):
            pass
        assert pool.waiting == 0
    with pool.lease(0) as model:
        assert isinstance(model, Instance)
