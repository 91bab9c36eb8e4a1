"""Prometheus metrics for ``/metrics``: requests, latency and images, by endpoint, kept by one ASGI middleware."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("lenet.serve")

class ServeMetrics:
    """Prometheus metrics in a registry of the app's own (so several apps can live in one process)."""

    LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("lenet_requests", "HTTP requests answered, by endpoint and status.", ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("lenet_request_errors", "Requests answered with a 4xx or 5xx status, by endpoint and status.", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("lenet_request_duration_seconds", "Time from a request's arrival to its response, by endpoint.", ["endpoint"],
                                 buckets=self.LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("lenet_images", "Images predicted.", registry=self.registry)
        self.batch_size = Histogram("lenet_batch_size", "Images per model call (micro-batches).", buckets=self.BATCH_BUCKETS, registry=self.registry)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count and time every HTTP request (plain ASGI: no per-request task or body copy)."""

    def __init__(self, app, metrics: ServeMetrics, endpoints: set[str]):
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints

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
            path = scope.get("path", "")
            self.metrics.observe(path if path in self.endpoints else "other", status[0], time.perf_counter() - started)
