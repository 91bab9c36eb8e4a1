"""The HTTP service behind ``lenet serve``: a FastAPI app around one model.

``create_app(predictor, settings)`` builds the app; the model is loaded (if
it is not yet) and warmed up in the lifespan handler, and handlers reach it
through a dependency. Work is kept off the event loop: request bodies are
parsed and images decoded in a thread pool, and the model runs in the
micro-batcher's own thread (:mod:`lenet_cli.serve.batching`).

Every request error is a JSON object ``{"error": "<one line>"}`` (the shape
TensorFlow Serving uses) with a 4xx status: 413 too large (bytes, images or
pixels), 415 wrong content type, 422 an upload that is not a usable image
(not an image, corrupt, blank), 400 a malformed request (JSON, shape, NaN).
Nothing a request sends is ever used as a path: uploads are bytes, and names
are only shown.
"""

from __future__ import annotations

import functools
import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from lenet_cli import __version__
from lenet_cli.core.config import INPUT_SHAPE
from lenet_cli.core.serve_settings import ServeSettings
from lenet_cli.serve import tf_serving
from lenet_cli.serve.metrics import MetricsMiddleware, ServeMetrics
from lenet_cli.serve.requests import Decoded, RequestError, decode_upload, input_png, media_type
from lenet_cli.serve.schemas import ERRORS, PREDICT_BODY, ErrorBody, Metadata, PredictionRecord
from lenet_cli.serve.served_model import ServedModel
from lenet_cli.serve.service import Service, ServiceDep, error_response, json_response, read_body

log = logging.getLogger("lenet.serve")


TF_MODEL_NAME = tf_serving.MODEL_NAME
RAW_IMAGE_TYPES = ("image/", "application/octet-stream")
PAGE = "draw.html"
DOCS_ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's scripts and styles


router = APIRouter()


@router.get("/", response_class=HTMLResponse, summary="The drawing page")
async def drawing_page():
    return HTMLResponse(_page())


@router.get("/favicon.ico", include_in_schema=False, status_code=204)
async def favicon():
    """No icon (204), rather than a 404 that browsers report as a console error."""
    return Response(status_code=204)


@router.get("/healthz", summary="Alive (the process answers)")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", summary="Ready (the model is loaded and warmed up)", responses={503: {"model": ErrorBody}})
async def readyz(service: ServiceDep):
    if not service.ready:
        return error_response(503, "the model is still loading")
    return {"status": "ready"}


@router.get("/metadata", response_model=Metadata, summary="The model: dataset, class names, preprocessing, limits")
async def metadata(service: ServiceDep):
    p, s = service.predictor, service.settings
    return {
        "model": p.name,
        "run": p.run,
        "format": p.format,
        "dataset": p.dataset,
        "class_names": list(p.class_names),
        "preprocessing": {"mode": p.preprocess, "invert": s.invert},
        "input_shape": list(INPUT_SHAPE),
        "limits": {"max_bytes": s.max_bytes, "max_images": s.max_images},
        "batching": {"enabled": s.batching, "max_batch": s.max_batch, "batch_timeout_ms": s.batch_timeout_ms},
        "lenet_version": __version__,
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(service: ServiceDep):
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _records(
    decoded: list[Decoded],
    probabilities: np.ndarray,
    service: Service,
    top_k: int,
    return_input: bool,
    min_confidence: float,
) -> list[dict]:
    """One record per uploaded image, in order: ``lenet predict --format json``'s, with ``error`` set for a failed one."""
    from lenet_cli.core.prediction import Prediction

    names, model = service.predictor.class_names, service.predictor.name
    records, rows = [], iter(probabilities)
    for d in decoded:
        if d.array is None:
            records.append({**Prediction(d.name, error=d.error).to_dict(), "model": model})
            continue
        record = Prediction.from_probabilities(d.name, next(rows), names, top_k, min_confidence).to_dict()
        record["model"] = model
        if return_input:
            record["input"] = input_png(d.array)
        records.append(record)
    return records


@router.post(
    "/predict",
    summary="Classify uploaded images",
    description="Multipart/form-data with one or more `file` fields, or one image as the raw body "
    "(`Content-Type: image/png`, `image/jpeg`, ... or `application/octet-stream`). Answers the records "
    "`lenet predict --format json` prints; an image that fails has its `error` set while the others are "
    "answered, and a request whose every image fails is a 4xx error.",
    response_model=list[PredictionRecord],
    responses=ERRORS,
    openapi_extra=PREDICT_BODY,
)
async def predict(
    request: Request,
    service: ServiceDep,
    top_k: Annotated[int | None, Query(ge=1, le=10, description="How many classes to list per image.")] = None,
    min_confidence: Annotated[
        float | None, Query(ge=0, le=1, description="Flag answers whose confidence is below this (`low_confidence`).")
    ] = None,
    preprocess: Annotated[
        Literal["auto", "mnist", "fashion", "none"] | None, Query(description="As `lenet predict --preprocess`.")
    ] = None,
    invert: Annotated[
        Literal["auto", "always", "never"] | None, Query(description="As `lenet predict --invert`.")
    ] = None,
    return_input: Annotated[bool, Query(description="Add each image's 28x28 network input as a PNG data URL.")] = False,
):
    content_type = request.headers.get("content-type", "")
    kind = media_type(content_type)
    if kind and kind != "multipart/form-data" and not kind.startswith(RAW_IMAGE_TYPES):
        raise RequestError(
            415,
            f"unsupported Content-Type {kind!r}; send multipart/form-data (field 'file') "
            "or one image as the raw body with an image/* or application/octet-stream type",
        )
    s = service.settings
    mode = service.predictor.preprocess if (preprocess or s.preprocess) == "auto" else (preprocess or s.preprocess)
    with service.batcher.reserve() as slot:
        body = await read_body(request, s.max_bytes)
        decoded = await service.in_decode_thread(
            decode_upload, body, content_type, mode, invert or s.invert, s.max_images
        )
        good = [d for d in decoded if d.array is not None]
        if not good:
            first = decoded[0]
            raise RequestError(first.status, first.error)
        probabilities = await slot.predict(np.stack([d.array for d in good])[..., None])
    service.metrics.images.inc(len(good))
    return json_response(
        _records(
            decoded,
            probabilities,
            service,
            top_k or s.top_k,
            return_input,
            s.min_confidence if min_confidence is None else min_confidence,
        )
    )


@functools.lru_cache(maxsize=1)
def _page() -> str:
    """The drawing page, one static file shipped in the package."""
    return resources.files("lenet_cli.serve").joinpath("static").joinpath(PAGE).read_text(encoding="utf-8")


def _install_error_handlers(app: FastAPI) -> None:
    """Every error a request can meet is one JSON line: ``{"error": "..."}``, never a traceback."""

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return error_response(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
        return error_response(
            422, f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg", "invalid request"))
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("internal error answering %s %s", request.method, request.url.path)
        first = str(exc).splitlines()[0] if str(exc) else ""
        return error_response(500, f"internal error: {type(exc).__name__}{': ' + first if first else ''}")


def create_app(predictor: ServedModel, settings: ServeSettings | None = None, worker: int = 1) -> FastAPI:
    """The FastAPI app serving ``predictor`` (loaded, if not yet, when the app starts).

    Args:
        predictor: The model to serve (:class:`ServedModel`).
        settings: Batching, limits and preprocessing defaults.
        worker: Which of ``lenet serve --workers``'s processes this is (1 without ``--workers``): the ``worker`` label of
            ``lenet_worker_requests_total``.

    Returns:
        An ASGI app; run it with uvicorn, or drive it with ``fastapi.testclient.TestClient``.
    """
    settings = settings or ServeSettings()
    metrics = ServeMetrics(worker)
    service = Service(predictor, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    # FastAPIOffline: /docs and /redoc served with the Swagger UI and ReDoc files fastapi-offline ships, not a CDN's
    app = FastAPIOffline(
        title="lenet serve",
        version=__version__,
        summary="A LeNet classifier for MNIST / Fashion-MNIST images over HTTP.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
    )
    app.state.service = service
    _install_error_handlers(app)
    app.include_router(router)
    app.include_router(tf_serving.router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
