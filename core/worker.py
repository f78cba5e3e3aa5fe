"""One worker thread behind a bounded queue: the model never runs on the event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from core.errors import Busy

T = TypeVar("T")
_DONE = object()
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, Callable[[Any, BaseException | None], None]]


class ModelWorker:
    """Runs blocking callables one at a time on a dedicated thread.

    The queue is bounded: when it is full, `run` and `stream` raise `Busy` at once rather
    than letting requests pile up without limit.
    """

    def __init__(self, max_queue: int = 64, name: str = "tonebot-model") -> None:
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, loop, done = job
            try:
                result, error = fn(), None
            except BaseException as exc:  # handed to the awaiting coroutine
                result, error = None, exc
            if not loop.is_closed():
                loop.call_soon_threadsafe(done, result, error)

    def _submit(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            self._jobs.put_nowait((fn, asyncio.get_running_loop(), done))
        except queue.Full:
            raise Busy("the model is busy, please retry in a moment") from None

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

    async def stream(self, work: Callable[[Callable[[T], None], threading.Event], None]) -> AsyncIterator[T]:
        """Run `work(emit, stop)` on the worker and yield what it emits as it comes.

        `stop` is set when the consumer goes away, so long work (generation) can end early.
        """
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: T) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        def done(_: Any, error: BaseException | None) -> None:
            items.put_nowait(error if error is not None else _DONE)

        self._submit(lambda: work(emit, stop), done)
        try:
            while (item := await items.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)
