"""``lenet serve``: the options, then the HTTP service of :mod:`lenet_cli.serve` (imported only when it runs)."""

from __future__ import annotations

import click

from lenet_cli.cli.options import (
    MODEL_PATH,
    ByteSize,
    engine_option,
    min_confidence_option,
    model_option,
    pick_model,
    preprocess_options,
    runs_dir_option,
    top_k_option,
)
from lenet_cli.core import config as C
from lenet_cli.core.serve_settings import ServeSettings

_SERVE = ServeSettings()


@click.command()
@click.argument("model", required=False, type=MODEL_PATH)
@model_option("model_option")
@engine_option
@runs_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@preprocess_options
@top_k_option("Classes per image; a request's ?top_k= overrides it")
@min_confidence_option(
    "Flag answers whose confidence is below this (low_confidence); a request's ?min_confidence= overrides it"
)
@click.option(
    "--batching/--no-batching",
    default=_SERVE.batching,
    show_default=True,
    help="Predict requests that arrive together in one model call.",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=_SERVE.max_batch,
    show_default=True,
    help="Most images in one model call.",
)
@click.option(
    "--batch-timeout",
    type=click.FloatRange(min=0),
    default=_SERVE.batch_timeout_ms,
    show_default=True,
    help="Milliseconds a batch may wait for requests already being read or decoded (never when none are).",
)
@click.option(
    "--max-bytes",
    type=ByteSize(),
    default=_SERVE.max_bytes,
    show_default=True,
    help="Largest request body accepted (413 above).",
)
@click.option(
    "--max-images",
    type=click.IntRange(min=1),
    default=_SERVE.max_images,
    show_default=True,
    help="Most images in one request (413 above).",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One line per request on stderr.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes answering on the port, each with its own model (one per core uses them all); /metrics adds up all of theirs.",
)
def serve(
    model,
    model_option,
    engine,
    runs_dir,
    host,
    port,
    preprocess,
    invert,
    top_k,
    min_confidence,
    batching,
    max_batch,
    batch_timeout,
    max_bytes,
    max_images,
    access_log,
    workers,
):
    """Serve a model over HTTP: a drawing page, a JSON API and TensorFlow Serving's REST API.

    MODEL is a run directory or a model file (.keras, .onnx, .tflite, a
    SavedModel directory); without it, the latest run. A run answers with
    its TensorFlow-free model.tflite (ready in about a second) unless
    --engine keras; /metadata names the file. Needs the serve extra:
    pip install 'lenet-cli[serve]'. Endpoints: GET / (the drawing page),
    POST /predict, GET /healthz, /readyz, /metadata, /metrics, /docs, and
    TensorFlow Serving's REST API: GET /v1/models/lenet[/versions/N][/metadata],
    POST /v1/models/lenet[/versions/N]:predict. Ctrl-C or SIGTERM drains the
    requests in flight and exits 0.

    \b
    Examples:
      lenet serve                                  # the latest run's model.tflite, on http://127.0.0.1:8000/
      lenet serve model.onnx --port 8080           # no TensorFlow: ready in about a second
      lenet serve runs/mnist-20261127-101500 --engine keras   # the run's model.keras (TensorFlow)
      lenet serve models/lenet/1 --workers 2       # a SavedModel in TF Serving's layout, two processes
      curl -F file=@digit.png http://127.0.0.1:8000/predict
    """
    from lenet_cli.serve.runner import ServePlan, run_serve
    from lenet_cli.serve.workers import run_workers

    settings = ServeSettings(
        batching=batching,
        max_batch=max_batch,
        batch_timeout_ms=batch_timeout,
        max_bytes=max_bytes,
        max_images=max_images,
        preprocess=preprocess,
        invert=invert,
        top_k=C.DEFAULT_TOP_K if top_k is None else top_k,
        min_confidence=min_confidence,
    )
    ctx = click.get_current_context()
    plan = ServePlan(pick_model(model, model_option), runs_dir, host, port, settings, access_log, engine, workers)
    serve_with = run_serve if workers == 1 else run_workers
    ctx.exit(serve_with(plan, lambda line: click.echo(line, err=True)))
