"""Model work off the event loop, one job at a time, behind a bounded queue.

Each job runs on a thread of its own that ends with the job. Why: torch's CPU build uses GNU
OpenMP, and every thread that has run a parallel region keeps its own OpenMP team for as long as
it lives; with such a thread idling beside it, the continuous batcher's decoding thread ran at
about half speed on this 2-core machine (28 -> 13-15 tokens/s, measured). A thread that has
ended leaves nothing behind, and starting one costs well under a millisecond.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from core.errors import Busy

T = TypeVar("T")
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, Callable[[Any, BaseException | None], None]]


class ModelWorker:
    """Runs blocking callables one at a time, in order, each on a short-lived thread.

    The queue is bounded: when it is full, `run` raises `Busy` at once rather than letting
    requests pile up without limit.
    """

    def __init__(self, max_queue: int = 64, name: str = "tonebot-model") -> None:
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            runner = threading.Thread(target=_run, args=job, name=f"{self._thread.name}-job", daemon=True)
            runner.start()
            runner.join()

    def _submit(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            self._jobs.put_nowait((fn, asyncio.get_running_loop(), done))
        except queue.Full:
            raise Busy() from None

    async def run(self, fn: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def done(result: Any, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        self._submit(fn, done)
        return await future

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


def _run(
    fn: Callable[[], Any], loop: asyncio.AbstractEventLoop, done: Callable[[Any, BaseException | None], None]
) -> None:
    try:
        result, error = fn(), None
    except BaseException as exc:  # handed to the awaiting coroutine
        result, error = None, exc
    if not loop.is_closed():
        loop.call_soon_threadsafe(done, result, error)


async def in_own_thread(fn: Callable[[], T]) -> T:
    """`asyncio.to_thread` for model work, on a thread that ends with it (see the module doc)."""
    worker = ModelWorker(max_queue=1, name="tonebot-load")
    try:
        return await worker.run(fn)
    finally:
        worker.close()
