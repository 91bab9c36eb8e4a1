"""``lenet predict``: every input kind, image mode and output format, and per-file errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from lenet_cli.cli import cli


def _digit(size=120, dark_on_light=True) -> Image.Image:
    """A hand-drawn-looking "7": dark strokes on light paper."""
    bg, ink = (245, 20) if dark_on_light else (0, 255)
    image = Image.new("L", (size, size), bg)
    draw = ImageDraw.Draw(image)
    draw.line([(30, 30), (90, 30), (55, 100)], fill=ink, width=10)
    return image


@pytest.fixture()
def images(tmp_path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _digit().save(folder / "a.png")
    _digit().convert("RGB").save(folder / "b.jpg", quality=90)
    _digit(dark_on_light=False).save(folder / "sub" / "c.bmp")
    return folder


def _predict(*args, input=None):
    return CliRunner().invoke(cli, ["predict", *map(str, args)], input=input)


@pytest.fixture(autouse=True)
def latest(trained_run, monkeypatch):
    monkeypatch.setenv("LENET_RUNS_DIR", str(trained_run.parent))


def test_json_by_default_when_piped_and_tsv_on_request(images):
    records = json.loads(_predict(images / "a.png", images / "b.jpg").stdout)  # piped, like every command: JSON
    assert [Path(r["path"]).name for r in records] == ["a.png", "b.jpg"]
    result = _predict(images / "a.png", images / "b.jpg", "--format", "tsv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    path, label, confidence = lines[0].split("\t")
    assert (
        path.endswith("a.png")
        and label == records[0]["label"]
        and float(confidence) == pytest.approx(records[0]["confidence"], abs=1e-4)
    )


def test_directory_and_recursive(images):
    flat = json.loads(_predict(images, "--format", "json").stdout)
    deep = json.loads(_predict(images, "--recursive", "--format", "json").stdout)
    assert [Path(r["path"]).name for r in flat] == ["a.png", "b.jpg"]
    assert [Path(r["path"]).name for r in deep] == ["a.png", "b.jpg", "c.bmp"]


def test_stdin_image(images):
    result = _predict("-", "--format", "json", input=(images / "a.png").read_bytes())
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["path"] == "<stdin>" and record["error"] is None


def test_files_from_file_and_stdin(images, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{images / 'a.png'}\n\n{images / 'b.jpg'}\n")
    from_file = _predict("--files-from", listing, "--format", "jsonl")
    from_stdin = _predict("--files-from", "-", "--format", "jsonl", input=listing.read_text())
    for result in (from_file, from_stdin):
        assert result.exit_code == 0, result.output
        assert [Path(json.loads(line)["path"]).name for line in result.stdout.splitlines()] == ["a.png", "b.jpg"]


def test_json_schema_and_top_k(images):
    [record] = json.loads(_predict(images / "a.png", "--format", "json", "--top-k", "4").stdout)
    assert set(record) == {"path", "label", "index", "confidence", "top_k", "low_confidence", "error", "model"}
    assert len(record["top_k"]) == 4 and record["top_k"][0]["index"] == record["index"]
    assert record["top_k"][0]["confidence"] == record["confidence"]
    confidences = [t["confidence"] for t in record["top_k"]]
    assert confidences == sorted(confidences, reverse=True)


def test_min_confidence_flags_unsure_answers_in_every_format(images):
    [record] = json.loads(_predict(images / "a.png", "--format", "json").stdout)
    confidence = record["confidence"]
    above = json.loads(
        _predict(images / "a.png", "--format", "json", "--min-confidence", min(1.0, confidence + 1e-4)).stdout
    )[0]
    below = json.loads(
        _predict(images / "a.png", "--format", "json", "--min-confidence", max(0.0, confidence - 1e-4)).stdout
    )[0]
    never = json.loads(_predict(images / "a.png", "--format", "json", "--min-confidence", 0).stdout)[0]
    assert (above["low_confidence"], below["low_confidence"], never["low_confidence"]) == (True, False, False)
    unsure = _predict(images / "a.png", images / "b.jpg", "--format", "table", "--min-confidence", 1)
    assert unsure.exit_code == 0, unsure.output
    assert "? " in unsure.stdout and "unsure" in unsure.stdout
    assert "2 of 2 answers below 100% confidence" in unsure.stderr
    rows = list(
        csv.DictReader(io.StringIO(_predict(images / "a.png", "--format", "csv", "--min-confidence", 1).stdout))
    )
    assert rows[0]["low_confidence"] == "true"
    line = json.loads(_predict(images / "a.png", "--format", "jsonl", "--min-confidence", 0).stdout)
    assert line["low_confidence"] is False
    assert _predict(images / "a.png", "--min-confidence", 1.5).exit_code == 2


def test_csv_parses(images):
    result = _predict(images / "a.png", images / "b.jpg", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [Path(r["path"]).name for r in rows] == ["a.png", "b.jpg"] and all(r["error"] == "" for r in rows)


def test_table_for_people(images):
    result = _predict(images / "a.png", "--format", "table")
    assert result.exit_code == 0 and "confidence" in result.stdout and "%" in result.stdout


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_every_image_mode(tmp_path, mode):
    base = _digit()
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base, dtype=np.uint16) * 257)
    elif mode == "LA":
        image = base.convert("LA")
    else:
        image = base.convert(mode)
    path = tmp_path / "d.png"
    image.save(path)
    assert Image.open(path).mode == mode
    [record] = json.loads(_predict(path, "--format", "json").stdout)
    assert record["error"] is None, record


def test_alpha_only_ink(tmp_path):
    alpha = 255 - np.asarray(_digit())
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 3] = alpha
    Image.fromarray(rgba, "RGBA").save(tmp_path / "ink.png")
    out = tmp_path / "seen"
    result = _predict(tmp_path / "ink.png", "--format", "json", "--save-preprocessed", out)
    assert json.loads(result.stdout)[0]["error"] is None
    [saved] = list(out.iterdir())
    seen = np.asarray(Image.open(saved))
    assert seen.shape == (28, 28) and seen[0, 0] == 0 and seen.max() > 200  # white strokes on black


def test_blank_and_corrupt_files_are_reported_and_others_still_predicted(images, tmp_path):
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = _predict(
        images / "a.png", tmp_path / "blank.png", tmp_path / "broken.png", tmp_path / "missing.png", "--format", "jsonl"
    )
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["error"] is None for r in records] == [True, False, False, False]
    assert "no content found" in records[1]["error"] and records[1]["label"] is None
    assert "Traceback" not in result.stderr and result.stderr.count("Error: ") == 3


def test_needs_an_input():
    result = _predict()
    assert result.exit_code == 2 and "give at least one image" in result.stderr


def _many_inputs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for i in range(count):
        image = _digit(size=int(rng.integers(60, 160)), dark_on_light=bool(i % 2))
        paths.append(folder / f"{i:03d}.png")
        image.rotate(float(rng.uniform(-20, 20)), fillcolor=245 if i % 2 else 0).save(paths[-1])
    (folder / "050.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")  # one corrupt file in the middle
    return paths


def test_parallel_decoding_gives_the_serial_results_in_order(tmp_path):
    """Worker processes decode exactly what one process does, in input order, errors included."""
    import subprocess
    import sys

    _many_inputs(tmp_path / "many", 150)
    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from lenet_cli.data.picture_inputs import ChunkDecoder, expand_inputs\n"
        "from lenet_cli.data.preprocess import PreprocessOptions\n"
        "items = expand_inputs([sys.argv[1]])\n"
        "options = PreprocessOptions(mode='mnist')\n"
        "parallel = ChunkDecoder(items, options, workers=2, chunk_size=16)\n"
        "assert parallel.parallel, 'expected worker processes'\n"
        "got = [r for _, rs in parallel for r in rs]\n"
        "want = [r for _, rs in ChunkDecoder(items, options, workers=1) for r in rs]\n"
        "assert len(got) == len(want) == 150\n"
        "for (a, ea), (b, eb) in zip(got, want):\n"
        "    assert ea == eb\n"
        "    assert (a is None and b is None) or np.array_equal(a, b)\n"
        "assert got[50][1] and got[50][0] is None and got[49][1] is None\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "many")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_many_files_through_the_command_match_one_by_one(tmp_path, trained_run):
    """A real ``lenet predict`` process (parallel decoding) agrees with in-process predictions file by file."""
    import subprocess
    import sys

    paths = _many_inputs(tmp_path / "many", 100)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenet_cli",
            "predict",
            "--model",
            str(trained_run),
            str(tmp_path / "many"),
            "--format",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # the one corrupt file
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == [p.name for p in paths]
    assert [r["error"] is not None for r in records] == [p.name == "050.png" for p in paths]
    one_by_one = json.loads(_predict("--model", trained_run, *paths[:60:7], "--format", "json").stdout)
    by_name = {Path(r["path"]).name: r for r in records}
    for expected in one_by_one:
        got = by_name[Path(expected["path"]).name]
        assert got["index"] == expected["index"]
        assert got["confidence"] == pytest.approx(expected["confidence"], abs=1e-5)


def test_a_dead_decoding_worker_is_one_line_error():
    """A worker killed mid-decode (OOM killer, kill -9) ends in a one-line LenetError, not a traceback."""
    import subprocess
    import sys

    script = (
        "import os\n"
        "import lenet_cli.data.picture_inputs as P\n"
        "from lenet_cli.core.errors import LenetError\n"
        "def die(items, options):\n"
        "    os._exit(9)\n"
        "P.decode_chunk = die\n"
        "decoder = P.ChunkDecoder([P.InputItem(f'x{i}.png') for i in range(80)], None, workers=2)\n"
        "assert decoder.parallel\n"
        "try:\n"
        "    list(decoder)\n"
        "except LenetError as exc:\n"
        "    print('error:', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("error: an image-decoding worker process died"), proc.stdout


@pytest.mark.parametrize(
    "invert, dark_on_light, seen",
    [("never", True, "dark content on a light background"), ("always", False, "light content on a dark background")],
)
def test_the_wrong_invert_names_the_cause_not_specks(tmp_path, invert, dark_on_light, seen):
    _digit(dark_on_light=dark_on_light).save(tmp_path / "seven.png")
    result = _predict("--invert", invert, tmp_path / "seven.png", "--format", "json")
    assert result.exit_code == 1
    assert (
        f"with invert {invert!r}: it is {seen}, and inverting it finds content; set invert to 'auto'" in result.stderr
    )
    assert "noise or specks" not in result.stderr
    assert _predict("--invert", "auto", tmp_path / "seven.png", "--format", "json").exit_code == 0


def test_a_blank_picture_with_a_set_invert_is_still_blank(tmp_path):
    Image.new("L", (60, 60), 245).save(tmp_path / "paper.png")
    result = _predict("--invert", "never", tmp_path / "paper.png", "--format", "json")
    assert result.exit_code == 1 and "no content found" in result.stderr and "inverting" not in result.stderr


def test_sub_folders_left_out_are_mentioned(images):
    flat = _predict(images, "--format", "json")
    assert flat.exit_code == 0, flat.output
    assert len(json.loads(flat.stdout)) == 2
    assert f"did not enter 1 sub-folder of {str(images)!r} (recursive is off)" in flat.stderr
    deep = _predict(images, "--recursive", "--format", "json")
    assert len(json.loads(deep.stdout)) == 3 and "did not enter" not in deep.stderr
