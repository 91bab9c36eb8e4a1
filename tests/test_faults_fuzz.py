"""Property-based fuzzing of every parser: each input parses or raises LenetError, never anything else, never hangs.

Strategies build near-valid inputs (a valid header with mutated fields, a real
PNG with flipped or cut bytes, lenet's own JSON with values swapped for any
JSON), which reach deeper than random bytes. Every failure Hypothesis found
is kept as an ``@example``. The settings keep the whole file to a few seconds
(``max_examples`` and a per-example ``deadline``); ``HYPOTHESIS_PROFILE=deep``
runs ten times more examples.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lenet_cli.core.errors import LenetError
from lenet_cli.store import runs

settings.register_profile(
    "ci",
    max_examples=120,
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("deep", max_examples=1500, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SCRATCH = Path(tempfile.mkdtemp(prefix="lenet-fuzz-"))


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6), st.none() | st.integers(0, 4096)
)


# --- IDX ------------------------------------------------------------------------------------------

idx_headers = st.tuples(
    st.sampled_from([2051, 2049, 2050, 0, 0xFFFFFFFF]),
    st.integers(0, 20) | st.sampled_from([10**9, 2**32 - 1]),
    st.sampled_from([28, 27, 0, 2**31]),
    st.sampled_from([28, 1, 0]),
)


@given(header=idx_headers, extra=st.integers(-40, 40), gzipped=st.booleans(), mutation=mutations)
@example(header=(2051, 1, 28, 28), extra=0, gzipped=True, mutation=([(20, 0)], None))
@example(header=(2051, 10**9, 28, 28), extra=0, gzipped=True, mutation=([], None))
@example(header=(2051, 0, 28, 28), extra=0, gzipped=False, mutation=([], None))
def test_idx_reader(header, extra, gzipped, mutation):
    from lenet_cli.data.idx import load_idx_images, load_idx_labels

    magic, count, rows, cols = header
    body = bytes(max(0, min(count, 20) * 784 + extra))
    raw = struct.pack(">IIII", magic, count, rows, cols) + body
    payload = gzip.compress(raw, mtime=0) if gzipped else raw
    path = SCRATCH / "fuzz-idx.gz"
    path.write_bytes(_mutate(payload, *mutation))
    for reader in (load_idx_images, load_idx_labels):
        try:
            array = reader(path)
        except LenetError:
            continue
        assert array.dtype == np.uint8


# --- images and preprocessing ---------------------------------------------------------------------


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


images = st.tuples(
    st.integers(1, 40), st.integers(1, 40), st.sampled_from(["L", "RGB", "RGBA"]), st.integers(0, 2**32 - 1)
)


@given(
    image=images,
    fmt=st.sampled_from(["PNG", "BMP", "GIF", "TIFF", "JPEG", "WEBP"]),
    mutation=mutations,
    mode=st.sampled_from(["mnist", "fashion", "none"]),
    invert=st.sampled_from(["auto", "always", "never"]),
)
@example(image=(1, 1, "L", 0), fmt="PNG", mutation=([], None), mode="mnist", invert="auto")
@example(image=(40, 1, "RGBA", 3), fmt="TIFF", mutation=([(30, 255)], None), mode="fashion", invert="never")
def test_image_decoding_and_preprocessing(image, fmt, mutation, mode, invert):
    from lenet_cli.data.preprocess import PreprocessOptions, load_and_preprocess

    height, width, colour, seed = image
    shape = (height, width) if colour == "L" else (height, width, len(colour))
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    if fmt == "JPEG" and colour == "RGBA":
        pixels = pixels[..., :3]
    data = _mutate(_encode(pixels, fmt), *mutation)
    try:
        result = load_and_preprocess(data, PreprocessOptions(mode=mode, invert=invert), name=f"fuzz.{fmt.lower()}")
    except LenetError:
        return
    assert result.shape == (28, 28) and np.isfinite(result).all()
    assert 0.0 <= float(result.min()) and float(result.max()) <= 1.0


# --- the run's JSON files -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _near_valid(kind: str, replacement, key_index: int, garbage: bytes, truncate: int | None) -> bytes:
    """lenet's own file with one value replaced by any JSON, or cut, or garbage bytes."""
    from lenet_cli.core.config import resolve_config

    valid = {
        runs.CONFIG_FILE: resolve_config("mnist").to_json_dict(),
        runs.METRICS_FILE: {"dataset": "mnist", "test_accuracy": 0.9, "val_accuracy": 0.9, "train_seconds": 3.0},
        runs.HISTORY_FILE: [{"epoch": 1, "val_accuracy": 0.8, "epoch_seconds": 2.0}],
    }[kind]
    if key_index == 40:
        valid = replacement  # the whole file is some other JSON value
    elif isinstance(valid, dict):
        keys = list(valid)
        valid[keys[key_index % len(keys)]] = replacement
    else:
        valid[0] = replacement if key_index % 2 else {**valid[0], "epoch_seconds": replacement}
    text = json.dumps(valid).encode()
    if truncate is not None:
        text = text[:truncate]
    return garbage + text if garbage else text


@given(
    kind=st.sampled_from([runs.CONFIG_FILE, runs.METRICS_FILE, runs.HISTORY_FILE]),
    replacement=json_values,
    key_index=st.integers(0, 40),
    garbage=st.sampled_from([b"", b"\xff\xfe", b"{", b"\x00"]),
    truncate=st.none() | st.integers(0, 200),
    latest=st.text(max_size=20) | st.sampled_from(["..", "/", "run\n", "missing"]),
)
@example(kind=runs.CONFIG_FILE, replacement=None, key_index=0, garbage=b"", truncate=None, latest="run")
@example(kind=runs.HISTORY_FILE, replacement=[], key_index=1, garbage=b"", truncate=17, latest="..")
@example(kind=runs.CONFIG_FILE, replacement=[1], key_index=40, garbage=b"", truncate=None, latest="\x00")
@example(kind=runs.METRICS_FILE, replacement="x", key_index=40, garbage=b"", truncate=None, latest="run")
def test_run_json_files(kind, replacement, key_index, garbage, truncate, latest):
    from lenet_cli.core.config import TrainConfig
    from lenet_cli.engine.resume import resumable_config
    from lenet_cli.engine.runs import list_runs, show_run
    from lenet_cli.runtimes.loading import read_metadata

    root = Path(tempfile.mkdtemp(dir=SCRATCH))
    run_dir = root / "run"
    run_dir.mkdir()
    (run_dir / kind).write_bytes(_near_valid(kind, replacement, key_index, garbage, truncate))
    (run_dir / runs.CHECKPOINT_FILE).write_bytes(b"")
    (root / runs.LATEST_FILE).write_text(latest, encoding="utf-8", errors="surrogateescape")
    calls = [
        lambda: list_runs(root),
        lambda: show_run("run", root),
        lambda: runs.run_status(run_dir),
        lambda: runs.resolve_model(None, root),
        lambda: runs.latest_run(root),
    ]
    if kind == runs.CONFIG_FILE:
        calls += [
            lambda: TrainConfig.load(run_dir / kind),
            lambda: resumable_config(run_dir),
            lambda: runs.ModelRef(run_dir / runs.MODEL_FILE, run_dir).run_config(),
            lambda: read_metadata(runs.ModelRef(run_dir / runs.MODEL_FILE, run_dir)),
        ]
    for call in calls:
        try:
            call()
        except LenetError:
            pass


# --- export sidecar metadata ----------------------------------------------------------------------


@given(
    meta=json_values
    | st.dictionaries(st.sampled_from(["dataset", "class_names", "run_config", "preprocessing"]), json_values),
    garbage=st.sampled_from([b"", b"\xff", b"]"]),
    suffix=st.sampled_from([".keras", ".onnx", ".tflite"]),
)
@example(meta={"class_names": 7}, garbage=b"", suffix=".tflite")
@example(meta=[], garbage=b"", suffix=".keras")
def test_export_sidecar_metadata(meta, garbage, suffix):
    from lenet_cli.runtimes.loading import SIDECAR_SUFFIX, read_metadata

    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    model = folder / f"model{suffix}"
    model.write_bytes(b"not a model")
    Path(str(model) + SIDECAR_SUFFIX).write_bytes(garbage + json.dumps(meta).encode())
    try:
        result = read_metadata(runs.ModelRef(model, None))
    except LenetError:
        return
    assert result["dataset"] is None or isinstance(result["dataset"], str)
    assert result["class_names"] is None or (
        isinstance(result["class_names"], list) and all(isinstance(c, str) for c in result["class_names"])
    )


# --- own data: pixel CSVs, classes.txt and picture folders ---------------------------------------------


def _valid_csv_rows(count: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(i % 3)] + [int(v) for v in rng.integers(0, 256, 784)] for i in range(count)]


@given(
    rows=st.integers(0, 6),
    seed=st.integers(0, 3),
    edits=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 784),
            st.sampled_from(["", "x", "-1", "256", "3.5", "nan", "1e9", '"7"', "7,8"]),
        ),
        max_size=3,
    ),
    header=st.sampled_from(["ok", "missing", "extra", "renamed", "none"]),
    cut=st.none() | st.integers(0, 4000),
)
@example(rows=1, seed=0, edits=[], header="ok", cut=None)
def test_pixel_csv_parses_or_refuses_in_one_line(rows, seed, edits, header, cut):
    from lenet_cli.data.sources.csv_pixels import COLUMNS, read_pixels_csv

    columns = list(COLUMNS)
    if header == "missing":
        columns = columns[:-1]
    elif header == "extra":
        columns = columns + ["pixel784"]
    elif header == "renamed":
        columns[5] = "px4"
    table = [[str(v) for v in row] for row in _valid_csv_rows(rows, seed)]
    for row, column, value in edits:
        if row < len(table):
            table[row][min(column, len(table[row]) - 1)] = value
    text = ("" if header == "none" else ",".join(columns) + "\n") + "\n".join(",".join(r) for r in table)
    path = Path(tempfile.mkdtemp(dir=SCRATCH)) / "train.csv"
    path.write_text(text[:cut] if cut is not None else text)
    try:
        split = read_pixels_csv(path)
    except LenetError as exc:
        assert "\n" not in str(exc)
        return
    assert (
        split.images.dtype == np.uint8 and split.images.shape[1:] == (28, 28) and len(split.images) == len(split.labels)
    )


@given(content=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(content=b"a\na\n")
@example(content=b"\n\n")
def test_classes_txt_parses_or_refuses_in_one_line(content):
    from lenet_cli.data.sources.common import read_class_names

    path = Path(tempfile.mkdtemp(dir=SCRATCH)) / "classes.txt"
    path.write_bytes(content)
    try:
        names = read_class_names(path)
    except LenetError as exc:
        assert "\n" not in str(exc)
        return
    assert names and len(set(names)) == len(names) and all(isinstance(n, str) and n for n in names)


@given(
    layout=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", ".hidden", "train", "test"]),
            st.sampled_from(["ok", "text", "empty", "blank"]),
        ),
        max_size=6,
    )
)
@settings(max_examples=25)
def test_picture_folder_lists_or_refuses_in_one_line(layout):
    from PIL import Image

    from lenet_cli.data.sources.picture_folder import list_pictures

    root = Path(tempfile.mkdtemp(dir=SCRATCH))
    for index, (folder, kind) in enumerate(layout):
        (root / folder).mkdir(exist_ok=True)
        path = root / folder / f"{index}.png"
        if kind == "ok":
            Image.new("L", (20, 20), 0).save(path)
        elif kind == "text":
            path.write_text("not an image")
        elif kind == "empty":
            path.write_bytes(b"")
    try:
        names, pictures, _ = list_pictures(root)
    except LenetError as exc:
        assert "\n" not in str(exc)
        return
    assert len(names) >= 2 and all((root / p.relative).is_file() and 0 <= p.label < len(names) for p in pictures)
