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

import asyncio
import base64
import functools
import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from lenet_cli import __version__
from lenet_cli.core.config import INPUT_SHAPE
from lenet_cli.core.errors import LenetError
from lenet_cli.core.serve_settings import ServeSettings
from lenet_cli.serve.batching import MicroBatcher

log = logging.getLogger("lenet.serve")

TF_MODEL_NAME = "lenet"
RAW_BODY_NAME = "<body>"
IMAGE_FIELD = "file"
RAW_IMAGE_TYPES = ("image/", "application/octet-stream")
JSON_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")  # curl -d sends the last
PAGE = "draw.html"
DOCS_ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's scripts and styles


# --- the model --------------------------------------------------------------------------------


def run_name(ref) -> str | None:
    """The name of the run whose model ``ref`` is (its directory's name), or None for a model file of its own."""
    from lenet_cli.runs import CONFIG_FILE, MODEL_FILE

    if ref.run_dir is not None:
        return ref.run_dir.name
    if ref.model_path.name == MODEL_FILE and (ref.model_path.parent / CONFIG_FILE).is_file():
        return ref.model_path.parent.name  # a run's model.keras, named directly
    return None


class ModelPredictor:
    """A model to serve, with its class names and default preprocessing; loaded on :meth:`load`.

    Args:
        ref: The resolved model (:func:`lenet_cli.store.runs.resolve_model`).
        preprocess: ``auto`` (the model's dataset), ``mnist``, ``fashion`` or ``none``.

    Raises:
        LenetError: the model's dataset (and so its class names and preprocessing) cannot be told.
    """

    def __init__(self, ref, preprocess: str = "auto"):
        from lenet_cli.engine.context import preprocessing_and_classes
        from lenet_cli.runtimes.loading import model_format, read_metadata

        self.ref = ref
        self.path = ref.model_path
        self.run = run_name(ref)
        self.name = f"{self.run}/{self.path.name}" if self.run else self.path.name  # what answers say served them
        self.format = model_format(ref.model_path)
        meta = read_metadata(ref)
        self.dataset = meta["dataset"]
        self.preprocess, self.class_names = preprocessing_and_classes(meta, preprocess, self.path)
        self.loaded = None

    def load(self) -> None:
        """Load the model (TensorFlow only for ``.keras`` and SavedModel); a no-op once loaded."""
        if self.loaded is None:
            from lenet_cli.runtimes.loading import open_model

            self.loaded = open_model(self.ref)

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, classes)`` for float32 ``(n, 28, 28, 1)`` inputs in [0, 1]."""
        return self.loaded.predict(images)


# --- request errors and parsing (these run in the decode threads) ------------------------------


class RequestError(Exception):
    """A bad request: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def split_multipart(body: bytes, content_type: str, max_images: int) -> list[tuple[str, bytes]]:
    """The files of a ``multipart/form-data`` body: ``(filename, bytes)`` per ``file`` field, in order.

    Raises:
        RequestError: no boundary, a malformed body, a field other than ``file``, no file, too many.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "multipart/form-data body without a boundary parameter in its Content-Type")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytes] = {}
    state = {"ended": False}

    def on_part_begin():
        if len(parts) >= max_images:
            raise RequestError(413, f"more than {max_images} images in one request (--max-images); send them in several requests")
        parts.append({"headers": {}, "data": []})

    def on_header_field(data, start, end):
        header["field"] = header.get("field", b"") + data[start:end]

    def on_header_value(data, start, end):
        header["value"] = header.get("value", b"") + data[start:end]

    def on_header_end():
        parts[-1]["headers"][header.get("field", b"").decode("latin-1").lower()] = header.get("value", b"")
        header.clear()

    def on_part_data(data, start, end):
        parts[-1]["data"].append(data[start:end])

    def on_end():
        state["ended"] = True

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
                 "on_header_end": on_header_end, "on_part_data": on_part_data, "on_end": on_end}
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(400, f"malformed multipart/form-data body: {str(exc).splitlines()[0] if str(exc) else 'parse error'}") from None
    if not state["ended"]:
        raise RequestError(400, "malformed multipart/form-data body: it ends before its closing boundary")
    files = []
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get("content-disposition", b""))
        field = disposition.get(b"name", b"").decode("utf-8", "replace")
        if field != IMAGE_FIELD:
            raise RequestError(400, f"unexpected form field {field!r}; send each image in a field named {IMAGE_FIELD!r}")
        filename = disposition.get(b"filename", b"").decode("utf-8", "replace") or f"{IMAGE_FIELD}{len(files)}"
        files.append((filename, b"".join(part["data"])))
    if not files:
        raise RequestError(400, f"no image in the form; send each image in a field named {IMAGE_FIELD!r}")
    return files


def _check_pixel_count(data: bytes, name: str) -> None:
    """Refuse a picture with too many pixels (a decompression bomb) from its header, before decoding it."""
    from PIL import Image

    from lenet_cli.data.images import MAX_IMAGE_PIXELS, quote_name

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        width = height = MAX_IMAGE_PIXELS  # Pillow refused it from its header alone
    except Exception:  # not an image, corrupt: read_image gives the precise message
        return
    if width * height > MAX_IMAGE_PIXELS:
        raise RequestError(413, f"{quote_name(name)} has too many pixels (more than {MAX_IMAGE_PIXELS:,}); downscale it first")


@dataclass
class Decoded:
    """One uploaded image after preprocessing: the 28x28 input, or why it failed (with its status)."""

    name: str
    array: np.ndarray | None = None
    error: str | None = None
    status: int = 200


def decode_upload(body: bytes, content_type: str, mode: str, invert: str, max_images: int) -> list[Decoded]:
    """Split a ``/predict`` body into images and preprocess each one (in a decode thread).

    Raises:
        RequestError: the body as a whole is unusable (see :func:`split_multipart`).
    """
    from lenet_cli.data.preprocess import (
        BlankImageError,
        PreprocessOptions,
        load_and_preprocess,
    )

    if media_type(content_type) == "multipart/form-data":
        files = split_multipart(body, content_type, max_images)
    else:
        files = [(RAW_BODY_NAME, body)]
    options = PreprocessOptions(mode=mode, invert=invert)
    results = []
    for name, data in files:
        try:
            if not data:
                raise RequestError(422, f"{name!r} is empty (0 bytes); send an image file's contents")
            _check_pixel_count(data, name)
            results.append(Decoded(name, array=load_and_preprocess(data, options, name=name)))
        except RequestError as exc:
            results.append(Decoded(name, error=exc.message, status=exc.status))
        except BlankImageError as exc:
            results.append(Decoded(name, error=str(exc).splitlines()[0], status=422))
        except LenetError as exc:
            results.append(Decoded(name, error=str(exc).splitlines()[0], status=422))
    return results


def _named_value(value: Any, what: str) -> Any:
    """TF Serving's named-input form ``{"<input name>": value}``: the value of its one key."""
    if isinstance(value, dict):
        if len(value) != 1:
            raise RequestError(400, f"{what} names {len(value)} inputs; this model has one input (an image)")
        return next(iter(value.values()))
    return value


def parse_tf_serving(body: bytes, max_images: int) -> tuple[str, np.ndarray]:
    """A TensorFlow Serving predict request -> (``instances`` | ``inputs``, float32 ``(n, 28, 28, 1)``).

    Raises:
        RequestError: malformed JSON, neither or both keys, wrong shape, non-numbers, NaN, out of [0, 1], too many.
    """
    try:
        request = json.loads(body)
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(request, dict):
        raise RequestError(400, 'the request must be a JSON object with "instances" (row format) or "inputs" (columnar format)')
    signature = request.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise RequestError(400, f"unknown signature_name {signature!r}; this model has only 'serving_default'")
    keys = [key for key in ("instances", "inputs") if key in request]
    if len(keys) != 1:
        raise RequestError(400, 'give exactly one of "instances" (row format) or "inputs" (columnar format)')
    key = keys[0]
    value = request[key]
    if key == "instances":
        if not isinstance(value, list):
            raise RequestError(400, '"instances" must be a list of 28x28 arrays')
        value = [_named_value(v, "an instance") for v in value]
    else:
        value = _named_value(value, '"inputs"')
    if isinstance(value, list) and len(value) > max_images:
        raise RequestError(413, f"{len(value)} images in one request, more than {max_images} (--max-images); send them in several requests")
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(400, f'"{key}" must hold numbers: a list of 28x28 (or 28x28x1) arrays of equal shape') from None
    if array.ndim == 4 and array.shape[1:] == (28, 28, 1):
        pass
    elif array.ndim == 3 and array.shape[1:] == (28, 28):
        array = array[..., None]
    else:
        raise RequestError(400, f'"{key}" has shape {list(array.shape)}; expected [N, 28, 28] or [N, 28, 28, 1]')
    if len(array) == 0:
        raise RequestError(400, f'"{key}" is empty; send at least one 28x28 array')
    if not np.isfinite(array).all():
        raise RequestError(400, f'"{key}" holds NaN or infinite values; send numbers in [0, 1]')
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise RequestError(400, f'"{key}" values must lie in [0, 1] (pixel / 255); received range [{low:g}, {high:g}]')
    return key, np.ascontiguousarray(array)


def input_png(array28: np.ndarray) -> str:
    """The network's 28x28 input as a ``data:image/png;base64`` URL (the page shows it)."""
    from PIL import Image

    from lenet_cli.data.preprocess import to_uint8

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(array28)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --- response models (for /docs; handlers return JSON directly) --------------------------------


class TopK(BaseModel):
    label: str
    index: int
    confidence: float


class PredictionRecord(BaseModel):
    """One image's answer, as ``lenet predict --format json`` prints it."""

    path: str = Field(description="The uploaded file name, or '<body>' for a raw request body.")
    label: str | None = None
    index: int | None = None
    confidence: float | None = None
    top_k: list[TopK] = []
    low_confidence: bool | None = Field(None, description="The confidence is below min_confidence: the network is unsure.")
    error: str | None = Field(None, description="Why this image failed (the others of the request are still answered).")
    model: str = Field(description="The model that answered: run/model.keras for a run's model, else its file name.")
    input: str | None = Field(None, description="With ?return_input=true: the 28x28 input the network saw, as a PNG data URL.")


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong with the request, in one line.")


class TFServingPredictions(BaseModel):
    predictions: list[list[float]] | None = Field(None, description='For "instances": one list of class probabilities per instance.')
    outputs: list[list[float]] | None = Field(None, description='For "inputs": the same, in columnar form.')


class Metadata(BaseModel):
    model: str = Field(description="run/model.keras for a run's model, else the model's file name.")
    run: str | None = Field(description="The name of the run (its directory) whose model this is; null for a model file of its own.")
    format: str
    dataset: str | None
    class_names: list[str]
    preprocessing: dict[str, str]
    input_shape: list[int]
    limits: dict[str, int]
    batching: dict[str, Any]
    lenet_version: str


ERRORS = {status: {"model": ErrorBody} for status in (400, 413, 415, 422)}

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "One or more images as multipart/form-data (field 'file', repeatable), or one image as the raw body.",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": [IMAGE_FIELD], "properties": {
                IMAGE_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ARRAY_28 = {"type": "array", "description": "28 rows of 28 values in [0, 1] (or 28x28x1)", "items": {"type": "array", "items": {}}}
TF_BODY = {
    "requestBody": {
        "required": True,
        "description": "TensorFlow Serving's predict request: row format (instances) or columnar format (inputs).",
        "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "signature_name": {"type": "string", "default": "serving_default"},
                "instances": {"type": "array", "items": _ARRAY_28},
                "inputs": {"type": "array", "items": _ARRAY_28}}},
            "example": {"instances": [[[0.0] * 28] * 28]},
        }},
    }
}


# --- the app ----------------------------------------------------------------------------------


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


class Service:
    """What the handlers share: the model, the batcher, the decode threads, the settings and metrics."""

    def __init__(self, predictor: ModelPredictor, settings: ServeSettings, metrics: ServeMetrics):
        from lenet_cli.data.picture_inputs import decode_workers

        self.predictor = predictor
        self.settings = settings
        self.metrics = metrics
        self.batcher = MicroBatcher(predictor.predict, settings.max_batch, settings.batch_timeout_ms / 1000.0, settings.batching)
        self.batcher.on_batch = metrics.batch_size.observe
        self.decode_threads = settings.decode_threads or decode_workers()
        self.decode_pool: ThreadPoolExecutor | None = None
        self.ready = False

    async def start(self) -> None:
        await asyncio.to_thread(self.predictor.load)
        await asyncio.to_thread(self.predictor.predict, np.zeros((1, 28, 28, 1), np.float32))  # warm up (graph tracing, allocation)
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
            raise RequestError(413, f"the request body is {int(length):,} bytes, more than the limit of {limit:,} (--max-bytes)")
    chunks = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise RequestError(413, f"the request body is more than the limit of {limit:,} bytes (--max-bytes)")
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def _json(content: Any, status: int = 200) -> Response:
    return Response(json.dumps(content, separators=(",", ":")), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


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
        return _error(503, "the model is still loading")
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


def _records(decoded: list[Decoded], probabilities: np.ndarray, service: Service, top_k: int, return_input: bool,
             min_confidence: float) -> list[dict]:
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
    min_confidence: Annotated[float | None, Query(ge=0, le=1, description="Flag answers whose confidence is below this (`low_confidence`).")] = None,
    preprocess: Annotated[Literal["auto", "mnist", "fashion", "none"] | None, Query(description="As `lenet predict --preprocess`.")] = None,
    invert: Annotated[Literal["auto", "always", "never"] | None, Query(description="As `lenet predict --invert`.")] = None,
    return_input: Annotated[bool, Query(description="Add each image's 28x28 network input as a PNG data URL.")] = False,
):
    content_type = request.headers.get("content-type", "")
    kind = media_type(content_type)
    if kind and kind != "multipart/form-data" and not kind.startswith(RAW_IMAGE_TYPES):
        raise RequestError(415, f"unsupported Content-Type {kind!r}; send multipart/form-data (field 'file') "
                                "or one image as the raw body with an image/* or application/octet-stream type")
    s = service.settings
    mode = service.predictor.preprocess if (preprocess or s.preprocess) == "auto" else (preprocess or s.preprocess)
    with service.batcher.reserve() as slot:
        body = await read_body(request, s.max_bytes)
        decoded = await service.in_decode_thread(decode_upload, body, content_type, mode, invert or s.invert, s.max_images)
        good = [d for d in decoded if d.array is not None]
        if not good:
            first = decoded[0]
            raise RequestError(first.status, first.error)
        probabilities = await slot.predict(np.stack([d.array for d in good])[..., None])
    service.metrics.images.inc(len(good))
    return _json(_records(decoded, probabilities, service, top_k or s.top_k, return_input,
                          s.min_confidence if min_confidence is None else min_confidence))


@router.post(
    f"/v1/models/{TF_MODEL_NAME}:predict",
    summary="TensorFlow Serving's REST predict API",
    description='`{"instances": [...]}` (row format) or `{"inputs": [...]}` (columnar format) of 28x28 (or 28x28x1) '
                'arrays in [0, 1], as `pixel / 255`; answered as TensorFlow Serving does: `{"predictions": [[...]]}` '
                'or `{"outputs": [[...]]}`, one list of class probabilities per image. No preprocessing is applied.',
    response_model=TFServingPredictions,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra=TF_BODY,
)
async def tf_serving_predict(request: Request, service: ServiceDep):
    kind = media_type(request.headers.get("content-type"))
    if kind and kind not in JSON_TYPES:
        raise RequestError(415, f"unsupported Content-Type {kind!r}; send a JSON body (application/json)")
    s = service.settings
    with service.batcher.reserve() as slot:
        body = await read_body(request, s.max_bytes)
        key, images = await service.in_decode_thread(parse_tf_serving, body, s.max_images)
        probabilities = await slot.predict(images)
    service.metrics.images.inc(len(images))
    return _json({"predictions" if key == "instances" else "outputs": probabilities.tolist()})


@router.get(f"/v1/models/{TF_MODEL_NAME}", summary="TensorFlow Serving's model status API")
async def tf_serving_status(service: ServiceDep):
    state = "AVAILABLE" if service.ready else "LOADING"
    return {"model_version_status": [{"version": "1", "state": state, "status": {"error_code": "OK", "error_message": ""}}]}


@functools.lru_cache(maxsize=1)
def _page() -> str:
    """The drawing page, one static file shipped in the package."""
    return resources.files("lenet_cli.serve").joinpath("static", PAGE).read_text(encoding="utf-8")


def _install_error_handlers(app: FastAPI) -> None:
    """Every error a request can meet is one JSON line: ``{"error": "..."}``, never a traceback."""

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
        return _error(422, f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg", "invalid request")))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("internal error answering %s %s", request.method, request.url.path)
        first = str(exc).splitlines()[0] if str(exc) else ""
        return _error(500, f"internal error: {type(exc).__name__}{': ' + first if first else ''}")


def create_app(predictor: ModelPredictor, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving ``predictor`` (loaded, if not yet, when the app starts).

    Args:
        predictor: The model to serve (:class:`ModelPredictor`).
        settings: Batching, limits and preprocessing defaults.

    Returns:
        An ASGI app; run it with uvicorn, or drive it with ``fastapi.testclient.TestClient``.
    """
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    service = Service(predictor, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    # FastAPIOffline: /docs and /redoc served with the Swagger UI and ReDoc files fastapi-offline ships, not a CDN's
    app = FastAPIOffline(title="lenet serve", version=__version__, summary="A LeNet classifier for MNIST / Fashion-MNIST images over HTTP.",
                         lifespan=lifespan, static_url=DOCS_ASSETS)
    app.state.service = service
    _install_error_handlers(app)
    app.include_router(router)
    endpoints = {route.path for route in (*app.routes, *router.routes) if hasattr(route, "path")}
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=endpoints)
    return app
