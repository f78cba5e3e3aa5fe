"""Model work off the event loop: every forward pass runs on one thread, the continuous batcher's.

Why one thread: torch's CPU build uses GNU OpenMP, and every thread that has run a parallel region
keeps its own pool of OpenMP threads for as long as it lives. Once a second pool exists, libgomp
counts more threads than cores and stops letting idle workers spin between parallel regions, so
each of the thousand small ops of a forward pass pays a futex wake-up. Measured on this 2-core
machine: a sentiment pass took 120 ms instead of 70 ms while the batcher's thread merely idled
beside it, and the batcher decoded at half speed (28 -> 13-15 tokens/s) beside a thread that had
once run a pass. So model jobs are handed to the batcher's thread, which runs them between its
decoding steps (the only pool there is), and loading runs on a thread that ends with it (a
thread that has ended leaves no pool behind).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from core.errors import Busy, EngineError
from core.local import internals

T = TypeVar("T")
_Job = tuple[Callable[[], Any], asyncio.Future[Any]]


class ModelWorker:
    """Runs blocking callables one at a time, in order, on the thread of a running Transformers
    continuous batching manager, before each step of its generation loop.

    The queue is bounded: when it is full, `run` raises `Busy` at once rather than letting requests
    pile up without limit.
    """

    def __init__(self, batcher: Any, max_queue: int = 64) -> None:
        self._batcher = batcher
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=max_queue)
        self._wake_up = internals.run_before_each_step(batcher, self._run_pending)

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    def _run_pending(self) -> None:
        """On the batcher's thread."""
        while True:
            try:
                fn, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not future.cancelled():
                _run(fn, future)

    async def run(self, fn: Callable[[], T]) -> T:
        if problem := internals.failure(self._batcher):
            raise EngineError(problem)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            self._jobs.put_nowait((fn, future))
        except queue.Full:
            raise Busy() from None
        self._wake_up()
        while not (await asyncio.wait({future}, timeout=1.0))[0]:
            if problem := internals.failure(self._batcher):  # stopped or crashed: nobody will run the job
                future.cancel()
                raise EngineError(problem)
        return future.result()


async def in_own_thread(fn: Callable[[], T]) -> T:
    """`asyncio.to_thread` for model work (loading), on a thread that ends with it (see the module doc)."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    threading.Thread(target=_run, args=(fn, future), name="tonebot-load", daemon=True).start()
    return await future


def _run(fn: Callable[[], Any], future: asyncio.Future[Any]) -> None:
    """Call `fn` on this thread and hand its result or exception to `future`'s event loop."""
    outcome: Any
    try:
        outcome, failed = fn(), False
    except BaseException as exc:  # handed to the awaiting coroutine
        outcome, failed = exc, True
    loop = future.get_loop()
    if not loop.is_closed():
        loop.call_soon_threadsafe(settle, future, outcome, failed)


def settle(future: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if future.done():  # the caller went away
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
