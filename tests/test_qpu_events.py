"""JobEvents, the wake-ups behind ``?wait``: several requests waiting on one job all hear of
every change, including one that comes while another waiter is still being woken."""
from __future__ import annotations

import asyncio

from qmio_lab.qpu.service import JobEvents


def test_a_waiter_that_waits_again_is_not_dropped_by_another_waiters_cleanup():
    async def scenario():
        events = JobEvents()
        events.loop = asyncio.get_running_loop()
        queued = {"id": "j", "state": "queued"}

        async def until_done():  # what a long-poll does: wait, and wait again until the end
            first = await events.wait(queued, 2)
            return first, await events.wait(first, 2)

        poll = asyncio.create_task(until_done())
        other = asyncio.create_task(events.wait(queued, 2))
        await asyncio.sleep(0)  # both are waiting
        events.notify({**queued, "state": "running"})
        await asyncio.sleep(0.05)  # both woke; the long-poll waits again, the other has left
        events.notify({**queued, "state": "done"})
        return await poll, await other

    (first, second), other = asyncio.run(scenario())
    assert first["state"] == "running" and other["state"] == "running"
    assert second is not None and second["state"] == "done"  # not a 2 s timeout


def test_a_change_that_came_before_the_wait_is_answered_at_once():
    async def scenario():
        events = JobEvents()
        events.loop = asyncio.get_running_loop()
        events.notify({"id": "j", "state": "done"})
        return await asyncio.wait_for(events.wait({"id": "j", "state": "running"}, 5), 1)

    assert asyncio.run(scenario())["state"] == "done"
