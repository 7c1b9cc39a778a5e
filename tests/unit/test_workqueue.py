"""The workqueue's promises: a key waits once, one worker holds it at a time, failures back off."""
import asyncio

import pytest

from controllers.workqueue import WorkQueue


async def test_a_key_added_twice_waits_once():
    q = WorkQueue()
    q.add("a"); q.add("b"); q.add("a")
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_a_key_added_while_processed_comes_back_after_done_not_before():
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed again while a worker has it
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)  # no second worker gets it meanwhile
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_retries_back_off_exponentially_up_to_the_cap_and_forget_resets():
    q = WorkQueue(base_delay=0.01, max_delay=0.05)
    assert [q.retry("a") for _ in range(5)] == [0.01, 0.02, 0.04, 0.05, 0.05]
    q.forget("a")
    assert q.retry("a") == 0.01


async def test_add_after_delays_and_the_earlier_of_two_wins():
    q = WorkQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("a", 5.0)
    q.add_after("a", 0.05)
    assert await asyncio.wait_for(q.get(), 2) == "a"
    assert loop.time() - start < 1.0
