"""The worker pool: CPU work in processes that are killed at a deadline and replaced; the deadline and slot protocol.

Every slow call here is the test's own: it blocks on a gate file (or a threading.Event) until the test
releases it, so no assertion depends on how fast this machine is.
"""

from __future__ import annotations

import functools
import operator
import os
import signal
import threading
from pathlib import Path

import anyio
import numpy as np
import pytest

from pixlearn._core.errors import ImageNotFoundError
from pixlearn.serve.errors import ApiError
from pixlearn.serve.limits import ConcurrencyLimitMiddleware, Deadline, TimeoutMiddleware, current_deadline
from pixlearn.serve.workers import WorkerCrashedError, WorkerPool, current_pool, run_cpu
from tests.serve.blocking import Gate, block, pid_alive


def _raise_api_error() -> None:
    raise ApiError("too big, send less", status=413, extra={"limit": 3})


def _raise_two_bases() -> None:  # ImageNotFoundError is a ValueError and a FileNotFoundError
    raise ImageNotFoundError("x.png: no such file")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_call_returns_its_result_and_errors_keep_their_type_and_status() -> None:
    async def main() -> None:
        async with WorkerPool(1) as pool:
            assert await pool.run(operator.add, 2, 3) == 5
            img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
            assert np.array_equal(await pool.run(np.flipud, img), np.flipud(img))
            scale = 3
            assert await pool.run(lambda x: x * scale, 2) == 6  # closures travel (cloudpickle)
            with pytest.raises(ApiError) as info:
                await pool.run(_raise_api_error)
            assert info.value.status == 413 and info.value.extra == {"limit": 3} and "send less" in str(info.value)
            with pytest.raises(ImageNotFoundError, match="no such file"):
                await pool.run(_raise_two_bases)
            pids = pool.pids
            with pytest.raises(TypeError, match="cannot be sent to a worker process.*run_blocking"):
                await pool.run(operator.add, threading.Lock(), 1)  # a lock does not pickle
            assert pool.pids == pids and pool.killed == 0  # nothing reached the worker: it was kept

    anyio.run(main)


def test_a_worker_that_dies_answers_a_typed_error_and_is_replaced() -> None:
    async def main() -> None:
        async with WorkerPool(1) as pool:
            before = pool.pids
            with pytest.raises(WorkerCrashedError, match="SIGKILL"):
                await pool.run(_die)
            assert len(pool.pids) == 1 and pool.pids != before and not pid_alive(before[0])
            assert await pool.run(operator.mul, 6, 7) == 42

    anyio.run(main)


def test_a_cancelled_call_kills_its_worker_and_a_fresh_one_takes_its_place(tmp_path: Path) -> None:
    gate = Gate(tmp_path / "gate")

    async def main() -> None:
        async with WorkerPool(2) as pool:
            before = set(pool.pids)
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(pool.run, block, None, gate=str(gate.folder)))
                await anyio.to_thread.run_sync(gate.wait_started, 1)
                tg.cancel_scope.cancel()
            (pid,) = gate.started()
            assert pid in before and not pid_alive(pid)  # killed and reaped: the work is over
            assert pool.killed == 1 and len(pool.pids) == 2 and pid not in pool.pids
            assert pool.busy == 0
            assert await pool.run(operator.add, 1, 1) == 2

    anyio.run(main)


def test_an_expired_deadline_kills_the_worker_before_expire_returns(tmp_path: Path) -> None:
    gate = Gate(tmp_path / "gate")

    async def main() -> None:
        async with WorkerPool(1) as pool:
            deadline = Deadline()
            outcome: list[BaseException] = []

            async def call() -> None:
                current_deadline.set(deadline)
                try:
                    await pool.run(block, None, gate=str(gate.folder))
                except BaseException as exc:  # noqa: BLE001 - what the call ends with is the point
                    outcome.append(exc)
                    raise

            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    (pid,) = await anyio.to_thread.run_sync(gate.wait_started, 1)
                    assert deadline.expire()
                    assert not pid_alive(pid)  # synchronous: gone before the 504 could be sent
                    scope.cancel()
            assert pool.killed == 1 and pool.pids and pid not in pool.pids

    anyio.run(main)


def test_a_committed_deadline_no_longer_expires_and_an_expired_one_cannot_commit() -> None:
    d = Deadline()
    stopped: list[int] = []
    forget = d.on_expire(lambda: stopped.append(1))
    assert d.commit() and not d.expire() and d.passed and stopped == [] and d.state == "committed"
    forget()
    d = Deadline()
    d.on_expire(lambda: stopped.append(2))
    assert d.expire() and not d.commit() and stopped == [2]
    d.on_expire(lambda: stopped.append(3))  # registered after the deadline: runs at once
    assert stopped == [2, 3]


def test_without_a_pool_run_cpu_runs_in_a_thread() -> None:
    async def main() -> int:
        assert current_pool.get() is None
        return await run_cpu(threading.get_ident)

    assert anyio.run(main) != threading.get_ident()


def test_shutdown_stops_every_worker() -> None:
    async def main() -> list[int]:
        async with WorkerPool(2) as pool:
            return pool.pids

    pids = anyio.run(main)
    assert len(pids) == 2 and not any(pid_alive(p) for p in pids)


# ---------------------------------------------------------------- the middleware around work in a thread
def _stack(app, *, timeout_s: float, limit: int = 1):
    inner = TimeoutMiddleware(app, timeout_s=timeout_s)
    return ConcurrencyLimitMiddleware(inner, limit=limit), inner


def _scope(path: str = "/v1/work") -> dict:
    return {"type": "http", "path": path, "method": "POST", "headers": []}


def test_a_timed_out_thread_keeps_its_slot_until_it_ends() -> None:
    """Work in a thread cannot be stopped: the client gets its 504 at once, the slot stays taken until it ends."""
    from pixlearn.serve.deps import run_blocking

    release = threading.Event()
    finished = threading.Event()

    def work() -> None:
        release.wait()
        finished.set()

    async def app(scope, receive, send) -> None:
        await run_blocking(work)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    limiter, _ = _stack(app, timeout_s=0.05)

    async def main() -> None:
        first: list[dict] = []
        second: list[dict] = []
        got_504 = anyio.Event()

        async def send_first(message) -> None:
            first.append(message)
            if message["type"] == "http.response.body":
                got_504.set()

        async def send_second(message) -> None:
            second.append(message)

        async def receive():
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            tg.start_soon(limiter, _scope(), receive, send_first)
            await got_504.wait()  # the deadline passed while the thread still blocks
            assert first[0]["status"] == 504 and b"--timeout" in first[1]["body"] and not finished.is_set()
            assert limiter.in_flight == 1  # the slot is still held by the running thread
            await limiter(_scope(), receive, send_second)
            assert second[0]["status"] == 429
            release.set()
        assert finished.is_set() and limiter.in_flight == 0
        assert [m["status"] for m in first if m["type"] == "http.response.start"] == [504]  # "late" was dropped

    anyio.run(main)


def test_a_request_that_committed_is_not_answered_504() -> None:
    """Once a request committed (a stored training job), its deadline passes without a 504."""
    from pixlearn.serve.deps import run_blocking

    seen: dict = {}

    def store() -> None:
        deadline = current_deadline.get()
        assert deadline is not None and deadline.commit()
        seen["deadline"] = deadline

    async def app(scope, receive, send) -> None:
        await run_blocking(store)
        while not seen["deadline"].passed:  # the job is stored; now let the deadline pass
            await anyio.sleep(0.01)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"job"})

    _, inner = _stack(app, timeout_s=0.05)

    async def main() -> list[dict]:
        sent: list[dict] = []

        async def send(message) -> None:
            sent.append(message)

        async def receive():
            await anyio.sleep_forever()

        await inner(_scope(), receive, send)
        return sent

    sent = anyio.run(main)
    assert sent[0]["status"] == 202 and sent[1]["body"] == b"job"


def test_requests_over_the_limit_wait_in_a_bounded_queue_then_get_429() -> None:
    go = None

    async def app(scope, receive, send) -> None:
        await go.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def until(condition) -> None:
        while not condition():
            await anyio.sleep(0)

    async def main() -> None:
        nonlocal go
        go = anyio.Event()
        limiter = ConcurrencyLimitMiddleware(app, limit=1, max_queue=1, queue_timeout_s=600)
        statuses: dict[str, int] = {}

        async def receive():
            await anyio.sleep_forever()

        def request(name: str):
            async def run() -> None:
                async def send(message) -> None:
                    if message["type"] == "http.response.start":
                        statuses[name] = message["status"]
                await limiter(_scope(), receive, send)
            return run

        async with anyio.create_task_group() as tg:
            tg.start_soon(request("a"))
            await until(lambda: limiter.in_flight == 1)
            tg.start_soon(request("b"))
            await until(lambda: limiter.waiting == 1)  # b waits for a's slot
            await request("c")()  # the queue is full: refused at once
            assert statuses == {"c": 429}
            go.set()
        assert statuses == {"c": 429, "a": 200, "b": 200} and limiter.in_flight == 0 and limiter.waiting == 0

        go = anyio.Event()
        limiter = ConcurrencyLimitMiddleware(app, limit=1, max_queue=4, queue_timeout_s=0.05)
        async with anyio.create_task_group() as tg:
            tg.start_soon(request("held"))
            await until(lambda: limiter.in_flight == 1)
            await request("late")()  # no slot comes free while "held" waits for the test: 429 after the wait
            assert statuses["late"] == 429 and limiter.waiting == 0
            go.set()
        assert statuses["held"] == 200

    anyio.run(main)


def test_a_stalled_body_is_408_and_a_finished_one_may_wait_for_a_disconnect() -> None:
    from pixlearn.serve.limits import BodyLimitMiddleware

    async def read_all(scope, receive, send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        assert (await receive())["type"] == "http.disconnect"  # after the body: no pace limit

    async def run(messages: list[dict]) -> list[dict]:
        sent: list[dict] = []
        queue = list(messages)

        async def receive():
            if queue:
                return queue.pop(0)
            await anyio.sleep(0.2)  # the client is silent (longer than the 0.05 s limit)
            return {"type": "http.disconnect"}

        async def send(message) -> None:
            sent.append(message)

        await BodyLimitMiddleware(read_all, max_bytes=1000, timeout_s=0.05)(_scope(), receive, send)
        return sent

    sent = anyio.run(run, [{"type": "http.request", "body": b"12345", "more_body": True}])
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"stalled: no data for 0.05 s after 5 bytes" in sent[1]["body"] and b"--body-timeout" in sent[1]["body"]
    sent = anyio.run(run, [{"type": "http.request", "body": b"12345", "more_body": False}])
    assert sent[0]["status"] == 200


def _allocate(n_bytes: int) -> int:
    return int(np.ones(n_bytes, np.uint8).sum())


def test_a_call_over_the_worker_memory_cap_is_413_and_the_worker_stays() -> None:
    async def main() -> None:
        async with WorkerPool(1, memory_mb=2048) as pool:
            pids = pool.pids
            with pytest.raises(ApiError, match="more memory than the limit of 2,048 MB per worker") as info:
                await pool.run(_allocate, 4 * 2**30)
            assert info.value.status == 413
            assert await pool.run(_allocate, 2**20) == 2**20  # the same worker goes on
            assert pool.pids == pids and pool.killed == 0

    anyio.run(main)
