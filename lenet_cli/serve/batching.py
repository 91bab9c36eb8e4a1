"""Micro-batching for the server: requests that arrive together are predicted together.

One worker coroutine owns the model. It takes the first waiting request,
then adds every request already queued, up to ``max_batch`` images, and runs
them as one model call in a dedicated thread, so the event loop never blocks.
While that call runs, new requests queue up and form the next batch: under
load, batches grow by themselves; with one client, every request goes
straight through.

``timeout`` (``--batch-timeout``) is how long the worker may hold a batch
open for requests that have *announced* themselves (they are still being
read or decoded, see :meth:`MicroBatcher.reserve`) and will submit shortly.
It never waits when nothing is on its way, so a lone request pays no fixed
delay (TensorFlow Serving's ``batch_timeout_micros`` waits regardless).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Pending:
    images: np.ndarray
    future: asyncio.Future


class Reservation:
    """A request that will submit images soon; the batcher may wait for it (see :meth:`MicroBatcher.reserve`)."""

    def __init__(self, batcher: MicroBatcher):
        self._batcher = batcher
        self._open = True
        batcher._expected += 1

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def release(self) -> None:
        if self._open:
            self._open = False
            self._batcher._expected -= 1

    async def predict(self, images: np.ndarray) -> np.ndarray:
        self.release()
        return await self._batcher.predict(images)


class MicroBatcher:
    """Batch concurrent requests into one model call, in a thread of its own.

    Args:
        predict_fn: ``(n, 28, 28[, 1]) -> (n, classes)`` probabilities; called from one thread only.
        max_batch: Most images merged into one call (a larger single request runs alone).
        timeout: Seconds a batch may wait for announced requests (see the module docstring).
        enabled: False runs every request as its own call (still off the event loop).
    """

    def __init__(self, predict_fn: PredictFn, max_batch: int = 64, timeout: float = 0.002, enabled: bool = True):
        self.predict_fn = predict_fn
        self.max_batch = max(1, int(max_batch))
        self.timeout = max(0.0, float(timeout))
        self.enabled = enabled
        self.on_batch: Callable[[int], None] | None = None  # called with each model call's image count
        self._expected = 0
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lenet-model")
        self._wakeup = asyncio.Event()
        if self.enabled:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="lenet-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail (the server drains before calling this)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def reserve(self) -> Reservation:
        """Announce a request that is still being read or decoded; submit through the reservation.

        Use as ``with batcher.reserve() as slot: ... await slot.predict(images)``.
        """
        return Reservation(self)

    async def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for ``images``, computed in the model thread (batched with others when enabled)."""
        if self._executor is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        loop = asyncio.get_running_loop()
        if not self.enabled:
            return await loop.run_in_executor(self._executor, self._call, images)
        future = loop.create_future()
        self._queue.append(_Pending(images, future))
        self._event().set()
        return await future

    def _event(self) -> asyncio.Event:
        """The wake-up event, made in :meth:`start` on the serving loop (an Event belongs to the loop it was made on)."""
        if self._wakeup is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        return self._wakeup

    def _call(self, images: np.ndarray) -> np.ndarray:
        if self.on_batch is not None:
            self.on_batch(len(images))
        return self.predict_fn(images)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._event().clear()
                await self._event().wait()
            batch = [self._queue.popleft()]
            count = len(batch[0].images)
            deadline = loop.time() + self.timeout
            while count < self.max_batch:
                if not self._queue:
                    remaining = deadline - loop.time()
                    if self._expected <= 0 or remaining <= 0:
                        break
                    self._event().clear()
                    try:
                        await asyncio.wait_for(self._event().wait(), remaining)
                    except asyncio.TimeoutError:
                        break
                    continue
                if count + len(self._queue[0].images) > self.max_batch:
                    break
                batch.append(self._queue.popleft())
                count += len(batch[-1].images)
            batch = [p for p in batch if not p.future.done()]  # cancelled while waiting
            if not batch:
                continue
            images = batch[0].images if len(batch) == 1 else np.concatenate([p.images for p in batch])
            try:
                probabilities = await loop.run_in_executor(self._executor, self._call, images)
            except Exception as exc:  # a real bug in the model call: every request of the batch sees it
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            start = 0
            for pending in batch:
                end = start + len(pending.images)
                if not pending.future.done():
                    pending.future.set_result(probabilities[start:end])
                start = end
