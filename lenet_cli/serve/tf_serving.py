"""TensorFlow Serving's REST API, as ``lenet serve`` answers it: a client written for TF Serving works unchanged.

Every URL of TF Serving's REST API for one model (https://www.tensorflow.org/tfx/serving/api_rest), answered as
``tensorflow_model_server`` answers it for the SavedModel ``lenet export --to savedmodel --serving-version N`` writes:

* ``GET /v1/models/lenet[/versions/N]``: the model status (``model_version_status``, versions as strings);
* ``GET /v1/models/lenet[/versions/N]/metadata``: the model spec and the SignatureDef map (``signature_def``),
  the JSON of TF Serving's ``GetModelMetadataResponse``;
* ``POST /v1/models/lenet[/versions/N]:predict``: the row (``instances``) and columnar (``inputs``) forms, answered
  with one entry per output of the signature (``probabilities`` and ``class``).

A version or model this server does not hold is TF Serving's 404 with its own messages
(``Servable not found for request: Specific(lenet, 2)``), and a URL TF Serving cannot parse is its 400
``Malformed request``. The served version is the SavedModel's folder name in TF Serving's layout (``models/lenet/3``
serves version 3), else 1. The signature of a served SavedModel is read from the file; any other format is
described by the signature lenet's SavedModel export writes, which is what it answers with.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from lenet_cli.core.config import INPUT_SHAPE
from lenet_cli.serve.requests import RequestError, media_type, parse_tf_serving
from lenet_cli.serve.schemas import ERRORS, TF_BODY, TFServingMetadata, TFServingPredictions, TFServingStatus
from lenet_cli.serve.service import ServiceDep, error_response, json_response, read_body

MODEL_NAME = "lenet"
SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
INPUT_NAME = "image"
# lenet_cli.runtimes.writers.SAVEDMODEL_PROBABILITIES (the server does not import the writers)
PROBABILITIES = "probabilities"
CLASS = "class"  # lenet_cli.runtimes.writers.SAVEDMODEL_CLASS
KNOWN_OUTPUTS = (CLASS, PROBABILITIES)
JSON_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")  # curl -d sends the last
DEFAULT_VERSION = 1

# The tensor names lenet's SavedModel export gives its signature (tests/test_tf_serving.py reads them from a real export)
TENSOR_NAMES = {
    INPUT_NAME: "serving_default_image:0",
    CLASS: "StatefulPartitionedCall_1:0",
    PROBABILITIES: "StatefulPartitionedCall_1:1",
}

router = APIRouter(tags=["TensorFlow Serving"])


class NotServed(RequestError):
    """A model or version this server does not hold: TF Serving's 404."""

    def __init__(self, message: str):
        super().__init__(404, message)


def served_version(model_path: Path) -> int:
    """The version a model answers as: its folder's number in TF Serving's layout (``models/lenet/3``), else 1."""
    name = model_path.name
    return int(name) if model_path.is_dir() and name.isdigit() else DEFAULT_VERSION


def _tensor_info(name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
    """A ``TensorInfo`` as TF Serving prints it: int64 sizes as strings, every field present."""
    return {
        "name": name,
        "dtype": dtype,
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
    }


def described_signature(num_classes: int) -> dict[str, Any]:
    """The ``serving_default`` SignatureDef of lenet's SavedModel export, for a model of ``num_classes`` classes."""
    return {
        "inputs": {INPUT_NAME: _tensor_info(TENSOR_NAMES[INPUT_NAME], "DT_FLOAT", [-1, *INPUT_SHAPE])},
        "outputs": {
            PROBABILITIES: _tensor_info(TENSOR_NAMES[PROBABILITIES], "DT_FLOAT", [-1, num_classes]),
            CLASS: _tensor_info(TENSOR_NAMES[CLASS], "DT_INT64", [-1]),
        },
        "method_name": PREDICT_METHOD,
        "defaults": {},
    }


@functools.lru_cache(maxsize=4)
def savedmodel_signatures(path: Path) -> dict[str, Any]:
    """The SignatureDef map of the SavedModel at ``path``, as TF Serving prints it (proto field names, every field).

    Read from ``saved_model.pb`` with TensorFlow's own protos (TensorFlow is loaded already: it serves the model).
    """
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    graph = next((g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags), saved.meta_graphs[0])
    try:
        options = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}
        return {name: json_format.MessageToDict(sig, **options) for name, sig in graph.signature_def.items()}
    except TypeError:  # protobuf before 5.26 names that option including_default_value_fields
        options = {"preserving_proto_field_name": True, "including_default_value_fields": True}
        return {name: json_format.MessageToDict(sig, **options) for name, sig in graph.signature_def.items()}


def signature_defs(service) -> dict[str, Any]:
    """The SignatureDef map this server answers ``/metadata`` with: the SavedModel's own, else lenet's export's."""
    predictor = service.predictor
    if predictor.format == "savedmodel":
        return savedmodel_signatures(predictor.path)
    return {SIGNATURE: described_signature(len(predictor.class_names))}


def output_names(service) -> list[str]:
    """The outputs of the served ``serving_default`` that an answer carries (lenet computes ``class`` from the probabilities)."""
    outputs = signature_defs(service).get(SIGNATURE, {}).get("outputs", {})
    names = [name for name in outputs if name in KNOWN_OUTPUTS]
    return names or [PROBABILITIES]


def _check_version(service, name: str, version: str | None, kind: str, method: str, path: str) -> int:
    """The version asked for, once this server holds it (TF Serving's 400 and 404 messages otherwise)."""
    if version is not None and not version.isdigit():
        raise RequestError(400, f"Malformed request: {method} {path}")
    held = served_version(service.predictor.path)
    if name != MODEL_NAME:
        if kind == "status":
            raise NotServed(f"Could not find any versions of model {name}")
        raise NotServed(
            f"Servable not found for request: {f'Specific({name}, {int(version)})' if version else f'Latest({name})'}"
        )
    if version is not None and int(version) != held:
        if kind == "status":
            raise NotServed(f"Could not find version {int(version)} of model {name}")
        raise NotServed(f"Servable not found for request: Specific({name}, {int(version)})")
    return held


def _status(service, version: int) -> dict[str, Any]:
    state = "AVAILABLE" if service.ready else "LOADING"
    return {
        "model_version_status": [
            {"version": str(version), "state": state, "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def _metadata(service, version: int) -> dict[str, Any]:
    return {
        "model_spec": {"name": MODEL_NAME, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": signature_defs(service)}},
    }


def answer(key: str, probabilities: np.ndarray, names: list[str]) -> dict[str, Any]:
    """TF Serving's answer: ``predictions`` (row form) or ``outputs`` (columnar), one entry per output.

    One output: a plain list per image (row) or for the batch (columnar). Several: an object per image
    (row), or one list per output (columnar), each keyed by the output's name.
    """
    values = {PROBABILITIES: probabilities.tolist(), CLASS: probabilities.argmax(axis=1).tolist()}
    if len(names) == 1:
        return {"predictions" if key == "instances" else "outputs": values[names[0]]}
    if key == "instances":
        return {"predictions": [{name: values[name][i] for name in names} for i in range(len(probabilities))]}
    return {"outputs": {name: values[name] for name in names}}


async def _predict(request: Request, service, version: str | None, name: str = MODEL_NAME):
    _check_version(service, name, version, "predict", "POST", request.url.path)
    kind = media_type(request.headers.get("content-type"))
    if kind and kind not in JSON_TYPES:
        raise RequestError(415, f"unsupported Content-Type {kind!r}; send a JSON body (application/json)")
    settings = service.settings
    with service.batcher.reserve() as slot:
        body = await read_body(request, settings.max_bytes)
        key, images = await service.in_decode_thread(parse_tf_serving, body, settings.max_images)
        probabilities = await slot.predict(images)
    service.metrics.images.inc(len(images))
    return json_response(answer(key, probabilities, output_names(service)))


PREDICT_DOC = (
    '`{"instances": [...]}` (row format) or `{"inputs": [...]}` (columnar format) of 28x28 (or 28x28x1) arrays in [0, 1], '
    'as `pixel / 255`, optionally named `{"image": ...}`; answered as TensorFlow Serving answers for lenet\'s SavedModel: '
    '`{"predictions": [{"class": 7, "probabilities": [...]}, ...]}` or `{"outputs": {"class": [...], "probabilities": [[...]]}}`. '
    "No preprocessing is applied."
)


@router.post(
    f"/v1/models/{MODEL_NAME}:predict",
    summary="Predict (TensorFlow Serving's REST API)",
    description=PREDICT_DOC,
    response_model=TFServingPredictions,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra=TF_BODY,
)
async def tf_predict(request: Request, service: ServiceDep):
    return await _predict(request, service, None)


@router.post(
    f"/v1/models/{MODEL_NAME}/versions/{{version}}:predict",
    summary="Predict with a version (TensorFlow Serving's REST API)",
    description=PREDICT_DOC,
    response_model=TFServingPredictions,
    response_model_exclude_none=True,
    responses={**ERRORS, 404: ERRORS[400]},
    openapi_extra=TF_BODY,
)
async def tf_predict_version(version: str, request: Request, service: ServiceDep):
    return await _predict(request, service, version)


@router.get(
    f"/v1/models/{MODEL_NAME}", summary="Model status (TensorFlow Serving's REST API)", response_model=TFServingStatus
)
async def tf_status(request: Request, service: ServiceDep):
    return json_response(_status(service, _check_version(service, MODEL_NAME, None, "status", "GET", request.url.path)))


@router.get(
    f"/v1/models/{MODEL_NAME}/versions/{{version}}",
    summary="A version's status (TensorFlow Serving's REST API)",
    response_model=TFServingStatus,
    responses={404: ERRORS[400]},
)
async def tf_status_version(version: str, request: Request, service: ServiceDep):
    return json_response(
        _status(service, _check_version(service, MODEL_NAME, version, "status", "GET", request.url.path))
    )


@router.get(
    f"/v1/models/{MODEL_NAME}/metadata",
    summary="Model metadata: the SignatureDef map (TensorFlow Serving's REST API)",
    response_model=TFServingMetadata,
)
async def tf_metadata(request: Request, service: ServiceDep):
    return json_response(
        _metadata(service, _check_version(service, MODEL_NAME, None, "metadata", "GET", request.url.path))
    )


@router.get(
    f"/v1/models/{MODEL_NAME}/versions/{{version}}/metadata",
    summary="A version's metadata (TensorFlow Serving's REST API)",
    response_model=TFServingMetadata,
    responses={404: ERRORS[400]},
)
async def tf_metadata_version(version: str, request: Request, service: ServiceDep):
    return json_response(
        _metadata(service, _check_version(service, MODEL_NAME, version, "metadata", "GET", request.url.path))
    )


# Any other model name: TF Serving's own 404s (and its 400 for a path it cannot parse), kept out of /docs.


@router.post("/v1/models/{name}:predict", include_in_schema=False)
async def other_predict(name: str, request: Request, service: ServiceDep):
    return await _predict(request, service, None, name)


@router.post("/v1/models/{name}/versions/{version}:predict", include_in_schema=False)
async def other_predict_version(name: str, version: str, request: Request, service: ServiceDep):
    return await _predict(request, service, version, name)


@router.get("/v1/models/{name}", include_in_schema=False)
async def other_status(name: str, request: Request, service: ServiceDep):
    return _refuse_get(service, name, None, "status", request)


@router.get("/v1/models/{name}/versions/{version}", include_in_schema=False)
async def other_status_version(name: str, version: str, request: Request, service: ServiceDep):
    return _refuse_get(service, name, version, "status", request)


@router.get("/v1/models/{name}/metadata", include_in_schema=False)
async def other_metadata(name: str, request: Request, service: ServiceDep):
    return _refuse_get(service, name, None, "metadata", request)


@router.get("/v1/models/{name}/versions/{version}/metadata", include_in_schema=False)
async def other_metadata_version(name: str, version: str, request: Request, service: ServiceDep):
    return _refuse_get(service, name, version, "metadata", request)


def _refuse_get(service, name: str, version: str | None, kind: str, request: Request):
    if ":" in name:  # TF Serving's GET paths name no method
        return error_response(400, f"Malformed request: GET {request.url.path}")
    _check_version(service, name, version, kind, "GET", request.url.path)
    raise AssertionError("only other models' names reach these routes")  # pragma: no cover
