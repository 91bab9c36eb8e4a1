"""Reading requests: multipart uploads, raw image bodies and TensorFlow Serving's JSON, each into 28x28 inputs.

These run in the decode threads, never on the event loop. Nothing a request
sends is ever used as a path: uploads are bytes, and names are only shown.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lenet_cli.core.errors import LenetError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

log = logging.getLogger("lenet.serve")


RAW_BODY_NAME = "<body>"
IMAGE_FIELD = "file"


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
            raise RequestError(
                413,
                f"more than {max_images} images in one request (the server's max_images); send them in several requests",
            )
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

    callbacks: MultipartCallbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_end": on_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(
            400, f"malformed multipart/form-data body: {str(exc).splitlines()[0] if str(exc) else 'parse error'}"
        ) from None
    if not state["ended"]:
        raise RequestError(400, "malformed multipart/form-data body: it ends before its closing boundary")
    files: list[tuple[str, bytes]] = []
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get("content-disposition", b""))
        field = disposition.get(b"name", b"").decode("utf-8", "replace")
        if field != IMAGE_FIELD:
            raise RequestError(
                400, f"unexpected form field {field!r}; send each image in a field named {IMAGE_FIELD!r}"
            )
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
        raise RequestError(
            413, f"{quote_name(name)} has too many pixels (more than {MAX_IMAGE_PIXELS:,}); downscale it first"
        )


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
        raise RequestError(
            400, 'the request must be a JSON object with "instances" (row format) or "inputs" (columnar format)'
        )
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
        raise RequestError(
            413,
            f"{len(value)} images in one request, more than {max_images} (the server's max_images); send them in several requests",
        )
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(
            400, f'"{key}" must hold numbers: a list of 28x28 (or 28x28x1) arrays of equal shape'
        ) from None
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
