"""The response models and request bodies ``/docs`` shows (handlers return JSON directly, in these shapes)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from lenet_cli.serve.requests import IMAGE_FIELD

log = logging.getLogger("lenet.serve")


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
    low_confidence: bool | None = Field(
        None, description="The confidence is below min_confidence: the network is unsure."
    )
    error: str | None = Field(None, description="Why this image failed (the others of the request are still answered).")
    model: str = Field(description="The model that answered: run/model.keras for a run's model, else its file name.")
    input: str | None = Field(
        None, description="With ?return_input=true: the 28x28 input the network saw, as a PNG data URL."
    )


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong with the request, in one line.")


class TFServingPredictions(BaseModel):
    predictions: list[dict[str, Any]] | list[list[float]] | None = Field(
        None, description='For "instances": per instance, its outputs by name ({"class": 7, "probabilities": [...]}).'
    )
    outputs: dict[str, list[Any]] | list[list[float]] | None = Field(
        None, description='For "inputs": per output, its values for every instance.'
    )


class TFServingVersionStatus(BaseModel):
    version: str = Field(description="The version number, as a string (TF Serving prints int64 as strings).")
    state: str = Field(description="AVAILABLE once the model is loaded and warmed up, LOADING before.")
    status: dict[str, str]


class TFServingStatus(BaseModel):
    model_version_status: list[TFServingVersionStatus]


class TFServingMetadata(BaseModel):
    model_spec: dict[str, str] = Field(description='{"name": "lenet", "signature_name": "", "version": "1"}')
    metadata: dict[str, Any] = Field(
        description='{"signature_def": {"signature_def": {"serving_default": {"inputs": ..., "outputs": ..., '
        '"method_name": "tensorflow/serving/predict"}}}}'
    )


class Metadata(BaseModel):
    model: str = Field(
        description="The file that answers: run/model.tflite (a run's TensorFlow-free copy) or run/model.keras "
        "for a run's model, else the model's file name."
    )
    run: str | None = Field(
        description="The name of the run (its directory) whose model this is; null for a model file of its own."
    )
    format: str
    dataset: str | None
    class_names: list[str]
    preprocessing: dict[str, str]
    input_shape: list[int]
    limits: dict[str, int]
    batching: dict[str, Any]
    lenet_version: str


ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (400, 413, 415, 422)}

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "One or more images as multipart/form-data (field 'file', repeatable), or one image as the raw body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [IMAGE_FIELD],
                    "properties": {IMAGE_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ARRAY_28 = {
    "type": "array",
    "description": "28 rows of 28 values in [0, 1] (or 28x28x1)",
    "items": {"type": "array", "items": {}},
}
TF_BODY = {
    "requestBody": {
        "required": True,
        "description": "TensorFlow Serving's predict request: row format (instances) or columnar format (inputs).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "signature_name": {"type": "string", "default": "serving_default"},
                        "instances": {"type": "array", "items": _ARRAY_28},
                        "inputs": {"type": "array", "items": _ARRAY_28},
                    },
                },
                "example": {"instances": [[[0.0] * 28] * 28]},
            }
        },
    }
}
