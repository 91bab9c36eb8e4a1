"""TensorFlow Serving: ``lenet export --serving-version N`` writes the layout it loads, and ``lenet serve`` answers every URL of
its REST API for one model as https://www.tensorflow.org/tfx/serving/api_rest documents them.

Each expected body below is TF Serving's documented shape written out by hand (versions as strings, the SignatureDef map
with proto field names, one entry per output, ``{"error": ...}`` with its own messages), not read back from lenet's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'lenet-cli[serve]'")
pytestmark = pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")

VERSION = 3


@pytest.fixture(scope="module")
def serving_base(trained_run, synthetic_data_dir, tmp_path_factory) -> Path:
    """``lenet export --serving-version 3 -o models/lenet``: the model's base folder, as TF Serving's --model_base_path."""
    base = tmp_path_factory.mktemp("models") / "lenet"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            str(trained_run),
            "--serving-version",
            str(VERSION),
            "-o",
            str(base),
            "--data-dir",
            str(synthetic_data_dir),
            "--format",
            "json",
        ],
        env={"LENET_VERIFY_CHECKSUMS": "0"},
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["format"] == "savedmodel" and Path(row["path"]) == base / str(VERSION) and row["verified_on"] == 200
    return base


@pytest.fixture(scope="module")
def images(synthetic_data_dir) -> np.ndarray:
    import gzip

    with gzip.open(synthetic_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return pixels[:4, ..., None].astype(np.float32) / 255.0


def test_the_layout_is_what_tf_serving_loads(serving_base):
    assert sorted(p.name for p in serving_base.iterdir()) == [
        str(VERSION)
    ]  # only version folders: no sidecar beside them
    version = serving_base / str(VERSION)
    assert (version / "saved_model.pb").is_file() and (version / "variables" / "variables.index").is_file()
    assert (
        json.loads((version / "assets" / "lenet.json").read_text())["dataset"] == "mnist"
    )  # its metadata travels inside


def test_serving_default_by_its_input_name_matches_keras(serving_base, trained_run, images):
    import tensorflow as tf

    from lenet_cli.model.network import load_model_file

    signature = tf.saved_model.load(str(serving_base / str(VERSION))).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["image"]
    assert set(signature.structured_outputs) == {"probabilities", "class"}
    outputs = signature(image=tf.constant(images))
    expected = np.asarray(load_model_file(trained_run / "model.keras").predict(images, verbose=0))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    assert outputs["class"].dtype == tf.int64 and (outputs["class"].numpy() == expected.argmax(1)).all()


def test_lenet_reads_the_layout_back(serving_base, synthetic_data_dir):
    """A version folder, or the base folder (its newest version, as TF Serving serves it), is a model for every command."""
    from lenet_cli.store.runs import resolve_model

    (serving_base.parent / "empty").mkdir()
    assert resolve_model(serving_base).model_path == serving_base / str(VERSION)
    result = CliRunner().invoke(
        cli, ["evaluate", str(serving_base), "--data-dir", str(synthetic_data_dir), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "savedmodel" and json.loads(result.stdout)["model"] == str(
        serving_base / str(VERSION)
    )
    refused = CliRunner().invoke(
        cli, ["evaluate", str(serving_base.parent / "empty"), "--data-dir", str(synthetic_data_dir)]
    )
    assert refused.exit_code == 1 and "is not a run directory" in refused.stderr


def test_serving_version_is_for_savedmodels_only(trained_run, tmp_path):
    result = CliRunner().invoke(
        cli, ["export", str(trained_run), "--to", "onnx", "--serving-version", "1", "-o", str(tmp_path / "m")]
    )
    assert (
        result.exit_code == 2
        and "Invalid value for '--serving-version'" in result.stderr
        and "savedmodel" in result.stderr
    )
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def client(serving_base):
    from fastapi.testclient import TestClient

    from lenet_cli.serve.app import create_app
    from lenet_cli.serve.served_model import ServedModel
    from lenet_cli.store.runs import resolve_model

    with TestClient(create_app(ServedModel(resolve_model(serving_base / str(VERSION))))) as test_client:
        assert (
            test_client.get("/metadata").json()["model"] == f"lenet/{VERSION}"
        )  # the version folder, named with its model's
        yield test_client


AVAILABLE = {
    "model_version_status": [
        {"version": str(VERSION), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}


@pytest.mark.parametrize("path", ["/v1/models/lenet", f"/v1/models/lenet/versions/{VERSION}"])
def test_model_status(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response.json() == AVAILABLE


def _dims(*sizes):
    return {"dim": [{"size": str(s), "name": ""} for s in sizes], "unknown_rank": False}


@pytest.mark.parametrize("path", ["/v1/models/lenet/metadata", f"/v1/models/lenet/versions/{VERSION}/metadata"])
def test_model_metadata_is_the_signature_def_map(client, path):
    body = client.get(path).json()
    assert body["model_spec"] == {"name": "lenet", "signature_name": "", "version": str(VERSION)}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert {name: (info["dtype"], info["tensor_shape"]) for name, info in default["inputs"].items()} == {
        "image": ("DT_FLOAT", _dims(-1, 28, 28, 1))
    }
    assert {name: (info["dtype"], info["tensor_shape"]) for name, info in default["outputs"].items()} == {
        "probabilities": ("DT_FLOAT", _dims(-1, 10)),
        "class": ("DT_INT64", _dims(-1)),
    }
    assert default["inputs"]["image"]["name"] == "serving_default_image:0"


def test_a_served_savedmodel_describes_itself_from_its_file(client, serving_base):
    """The map is the file's own, printed as TF Serving prints it (every signature, proto field names, defaults included)."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((serving_base / str(VERSION) / "saved_model.pb").read_bytes())
    expected = {
        name: json_format.MessageToDict(
            sig, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        for name, sig in saved.meta_graphs[0].signature_def.items()
    }
    assert client.get("/v1/models/lenet/metadata").json()["metadata"]["signature_def"]["signature_def"] == expected


def test_any_other_format_is_described_as_lenets_savedmodel(client, trained_run):
    """A .tflite or .onnx model answers as the SavedModel export would: the same signature, names, dtypes and shapes."""
    from fastapi.testclient import TestClient

    from lenet_cli.serve.app import create_app
    from lenet_cli.serve.served_model import ServedModel
    from lenet_cli.store.runs import resolve_model

    with TestClient(create_app(ServedModel(resolve_model(trained_run)))) as litert:  # the run's model.tflite answers
        described = litert.get("/v1/models/lenet/metadata").json()
    assert described["model_spec"]["version"] == "1"
    exported = client.get("/v1/models/lenet/metadata").json()["metadata"]["signature_def"]["signature_def"][
        "serving_default"
    ]
    assert described["metadata"]["signature_def"]["signature_def"] == {"serving_default": exported}


@pytest.mark.parametrize("path", ["/v1/models/lenet:predict", f"/v1/models/lenet/versions/{VERSION}:predict"])
def test_predict_row_and_columnar_forms_answer_as_tf_serving(client, serving_base, images, path):
    import tensorflow as tf

    outputs = tf.saved_model.load(str(serving_base / str(VERSION))).signatures["serving_default"](
        image=tf.constant(images)
    )
    probabilities, classes = outputs["probabilities"].numpy(), outputs["class"].numpy().tolist()

    rows = client.post(path, json={"signature_name": "serving_default", "instances": images.tolist()}).json()
    assert list(rows) == ["predictions"] and [set(p) for p in rows["predictions"]] == [{"probabilities", "class"}] * 4
    assert [p["class"] for p in rows["predictions"]] == classes
    np.testing.assert_allclose([p["probabilities"] for p in rows["predictions"]], probabilities, atol=1e-5)

    named = client.post(path, json={"instances": [{"image": image.tolist()} for image in images]}).json()
    assert [p["class"] for p in named["predictions"]] == classes

    columns = client.post(path, json={"inputs": {"image": images.tolist()}}).json()
    assert list(columns) == ["outputs"] and set(columns["outputs"]) == {"probabilities", "class"}
    assert columns["outputs"]["class"] == classes
    np.testing.assert_allclose(columns["outputs"]["probabilities"], probabilities, atol=1e-5)


NOT_HELD = {
    "status of another version": ("get", "/v1/models/lenet/versions/4", 404, "Could not find version 4 of model lenet"),
    "metadata of another version": (
        "get",
        "/v1/models/lenet/versions/4/metadata",
        404,
        "Servable not found for request: Specific(lenet, 4)",
    ),
    "predict with another version": (
        "post",
        "/v1/models/lenet/versions/4:predict",
        404,
        "Servable not found for request: Specific(lenet, 4)",
    ),
    "status of another model": ("get", "/v1/models/mnist", 404, "Could not find any versions of model mnist"),
    "metadata of another model": (
        "get",
        "/v1/models/mnist/metadata",
        404,
        "Servable not found for request: Latest(mnist)",
    ),
    "predict with another model": (
        "post",
        "/v1/models/mnist:predict",
        404,
        "Servable not found for request: Latest(mnist)",
    ),
    "a version that is not a number": (
        "get",
        "/v1/models/lenet/versions/one",
        400,
        "Malformed request: GET /v1/models/lenet/versions/one",
    ),
}


@pytest.mark.parametrize("method, path, status, message", NOT_HELD.values(), ids=NOT_HELD.keys())
def test_what_is_not_served_gets_tf_servings_error(client, images, method, path, status, message):
    body = {"instances": images[:1].tolist()} if method == "post" else None
    response = client.request(method.upper(), path, json=body)
    assert response.status_code == status and response.json() == {"error": message}
    assert response.headers["content-type"] == "application/json"


def test_the_metrics_label_a_version_by_its_route(client, images):
    client.post(f"/v1/models/lenet/versions/{VERSION}:predict", json={"instances": images[:1].tolist()})
    client.get("/v1/models/lenet/versions/9")
    text = client.get("/metrics").text
    assert 'lenet_requests_total{endpoint="/v1/models/lenet/versions/{version}:predict",status="200"}' in text
    assert 'endpoint="/v1/models/lenet/versions/{version}",status="404"' in text
    assert 'endpoint="/v1/models/lenet/versions/9"' not in text
