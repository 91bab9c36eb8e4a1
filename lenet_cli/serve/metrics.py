"""Prometheus metrics for ``/metrics``: requests, latency and images, by endpoint, kept by one ASGI middleware.

With ``lenet serve --workers N`` every worker is a process of its own, and ``/metrics`` is answered by whichever
worker a connection reaches: the workers run in prometheus-client's multiprocess mode (the supervisor points
``PROMETHEUS_MULTIPROC_DIR`` at a folder of its own before they start), each writes its counts there, and the one
that answers adds up every worker's. ``lenet_worker_requests_total`` keeps one count per worker (its ``worker``
label), to show how the connections were shared.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("lenet.serve")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServeMetrics:
    """Prometheus metrics in a registry of the app's own (so several apps can live in one process).

    Args:
        worker: This process's number among ``--workers`` (1 for a single process).
    """

    LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

    def __init__(self, worker: int = 1):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        self.worker = str(worker)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lenet_requests",
            "HTTP requests answered, by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "lenet_request_errors",
            "Requests answered with a 4xx or 5xx status, by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lenet_request_duration_seconds",
            "Time from a request's arrival to its response, by endpoint.",
            ["endpoint"],
            buckets=self.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter("lenet_images", "Images predicted.", registry=self.registry)
        self.batch_size = Histogram(
            "lenet_batch_size",
            "Images per model call (micro-batches).",
            buckets=self.BATCH_BUCKETS,
            registry=self.registry,
        )
        self.worker_requests = Counter(
            "lenet_worker_requests",
            "HTTP requests answered by each worker process (lenet serve --workers).",
            ["worker"],
            registry=self.registry,
        )

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        self.worker_requests.labels(self.worker).inc()

    def render(self) -> bytes:
        """The text exposition of every worker's counts (this process's alone without ``--workers``)."""
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count and time every HTTP request (plain ASGI: no per-request task or body copy).

    A request is labelled with its route's path template (``/v1/models/lenet/versions/{version}:predict``), so the
    labels stay few whatever the URLs; a path no route matched is ``other``.
    """

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = getattr(
                scope.get("route"), "path", None
            )  # the router sets "route" on this same scope once a route matched
            self.metrics.observe(path if isinstance(path, str) else "other", status[0], time.perf_counter() - started)
