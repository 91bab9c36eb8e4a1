"""What every handler of ``lenet serve`` shares: the model, its batcher and decode threads, and how a body is read and an answer written.

Its own module so that the app's routers (:mod:`lenet_cli.serve.app`, :mod:`lenet_cli.serve.tf_serving`) reach it
without importing each other.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from lenet_cli.core.serve_settings import ServeSettings
from lenet_cli.serve.batching import MicroBatcher
from lenet_cli.serve.metrics import ServeMetrics
from lenet_cli.serve.requests import RequestError
from lenet_cli.serve.served_model import ServedModel


class Service:
    """What the handlers share: the model, the batcher, the decode threads, the settings and metrics."""

    def __init__(self, predictor: ServedModel, settings: ServeSettings, metrics: ServeMetrics):
        from lenet_cli.data.picture_inputs import decode_workers

        self.predictor = predictor
        self.settings = settings
        self.metrics = metrics
        self.batcher = MicroBatcher(
            predictor.predict, settings.max_batch, settings.batch_timeout_ms / 1000.0, settings.batching
        )
        self.batcher.on_batch = metrics.batch_size.observe
        self.decode_threads = settings.decode_threads or decode_workers()
        self.decode_pool: ThreadPoolExecutor | None = None
        self.ready = False

    async def start(self) -> None:
        await asyncio.to_thread(self.predictor.load)
        await asyncio.to_thread(
            self.predictor.predict, np.zeros((1, 28, 28, 1), np.float32)
        )  # warm up (graph tracing, allocation)
        self.decode_pool = ThreadPoolExecutor(self.decode_threads, thread_name_prefix="lenet-decode")
        await self.batcher.start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.batcher.stop()
        if self.decode_pool is not None:
            self.decode_pool.shutdown(wait=True, cancel_futures=True)

    async def in_decode_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.decode_pool, fn, *args)


async def get_service(request: Request) -> Service:
    """The app's :class:`Service` (async: FastAPI runs plain ``def`` dependencies in a thread, ~15 % of a request's CPU)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes, whatever Content-Length says."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError(400, f"invalid Content-Length header {length!r}")
        if int(length) > limit:
            raise RequestError(
                413,
                f"the request body is {int(length):,} bytes, more than the limit of {limit:,} (the server's max_bytes)",
            )
    chunks = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise RequestError(
                    413, f"the request body is more than the limit of {limit:,} bytes (the server's max_bytes)"
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def json_response(content: Any, status: int = 200) -> Response:
    return Response(json.dumps(content, separators=(",", ":")), status_code=status, media_type="application/json")


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)
