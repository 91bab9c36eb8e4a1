"""``lenet runs`` keeps the runs folder tidy: tag, note, filter, compare many, remove and prune, through the command line."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenet_cli import api
from lenet_cli.cli import cli
from lenet_cli.core.errors import BadValue
from tests.test_runs_listing import make_run

DAY = 86400


def invoke(*args):
    return CliRunner().invoke(cli, ["runs", *map(str, args)])


@pytest.fixture()
def folder(tmp_path, monkeypatch) -> Path:
    """Five runs: three MNIST of different accuracy and age, one Fashion-MNIST, one running now; LATEST names mnist-new."""
    root = tmp_path / "runs"
    now = time.time()
    make_run(root, "mnist-old", mtime=now - 40 * DAY, learning_rate=1e-3)
    make_run(root, "mnist-mid", mtime=now - 35 * DAY, learning_rate=2e-3)
    make_run(root, "mnist-new", mtime=now - 1 * DAY, learning_rate=3e-3)
    make_run(root, "fashion-old", dataset="fashion", mtime=now - 50 * DAY)
    running = make_run(root, "mnist-running", completed=1, finished=False, mtime=now - 60 * DAY)
    (running / "RUNNING").write_text(json.dumps({"pid": os.getpid(), "hostname": socket.gethostname()}))
    for name, accuracy in (("mnist-old", 0.95), ("mnist-mid", 0.99), ("mnist-new", 0.97)):
        metrics = json.loads((root / name / "metrics.json").read_text())
        (root / name / "metrics.json").write_text(json.dumps({**metrics, "val_accuracy": accuracy}))
    (root / "LATEST").write_text("mnist-new\n")
    monkeypatch.setenv("LENET_RUNS_DIR", str(root))
    return root


def names(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [r["name"] for r in json.loads(result.stdout)]


def test_tag_note_and_filter(folder):
    tagged = invoke("tag", "mnist-old", "baseline=yes", "paper=fig3", "--format", "json")
    assert names(tagged) == ["mnist-old"] and json.loads(tagged.stdout)[0]["tags"] == {
        "baseline": "yes",
        "paper": "fig3",
    }
    assert json.loads((folder / "mnist-old" / "tags.json").read_text())["tags"] == {"baseline": "yes", "paper": "fig3"}
    invoke("tag", folder / "fashion-old", "baseline=no")  # a path works as well as a name
    noted = invoke("note", "mnist-old", "the first baseline, before augmentation", "--format", "json")
    assert json.loads(noted.stdout)[0]["note"] == "the first baseline, before augmentation"

    assert names(invoke("--tag", "baseline=yes", "--format", "json")) == ["mnist-old"]
    assert names(invoke("--tag", "baseline", "--format", "json")) == [
        "mnist-old",
        "fashion-old",
    ]  # any value; newest first
    assert names(invoke("--tag", "baseline", "--tag", "paper=fig3", "--format", "json")) == ["mnist-old"]
    assert names(invoke("--tag", "nothing", "--format", "json")) == []

    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(invoke("--format", "csv").stdout))}
    assert json.loads(rows["mnist-old"]["tags"]) == {"baseline": "yes", "paper": "fig3"}
    assert rows["mnist-old"]["note"] == "the first baseline, before augmentation" and rows["mnist-mid"]["tags"] == "{}"
    table = invoke("--format", "table").stdout
    assert "baseline=yes, paper=fig3" in next(line for line in table.splitlines() if "mnist-old" in line)
    shown = invoke("show", "mnist-old", "--format", "table").stdout
    assert "baseline=yes, paper=fig3" in shown and "the first baseline, before augmentation" in shown
    assert json.loads(invoke("show", "mnist-old", "--format", "json").stdout)["tags"]["paper"] == "fig3"

    invoke("tag", "mnist-old", "paper=fig4", "--remove", "baseline")
    invoke("note", "mnist-old", "")
    record = json.loads(invoke("show", "mnist-old", "--format", "json").stdout)
    assert record["tags"] == {"paper": "fig4"} and record["note"] is None


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["tag", "mnist-old", "novalue"], 2, "is not KEY=VALUE"),
        (["tag", "mnist-old", "bad key=1"], 2, "is not a tag key"),
        (["tag", "mnist-old"], 2, "give at least one tag"),
        (["tag", "nope", "a=1"], 1, "no run 'nope'"),
        (["--tag", "bad key"], 2, "Invalid value for '--tag'"),
    ],
)
def test_tag_mistakes_are_one_line(folder, args, code, fragment):
    result = invoke(*args)
    assert result.exit_code == code and fragment in result.stderr and "Traceback" not in result.output, result.output


def test_compare_three_runs_with_their_curves(folder, tmp_path):
    result = invoke(
        "compare", "mnist-old", "mnist-mid", "mnist-new", "--plot", tmp_path / "curves.png", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    assert comparison["runs"] == ["mnist-old", "mnist-mid", "mnist-new"]
    rows = {(r["section"], r["key"]): r for r in comparison["rows"]}
    assert rows[("config", "learning_rate")]["values"] == [0.001, 0.002, 0.003]
    assert ("config", "dataset") not in rows  # the same in all three
    assert rows[("metrics", "val_accuracy")]["values"] == [0.95, 0.99, 0.97]
    from PIL import Image

    with Image.open(tmp_path / "curves.png") as picture:
        assert picture.size == (900, 560)
    assert comparison["plot"] == str(tmp_path / "curves.png")
    table = invoke("compare", "mnist-old", "mnist-mid", "mnist-new", "--format", "table").stdout
    line = next(line for line in table.splitlines() if "learning_rate" in line)
    assert "0.001" in line and "0.002" in line and "0.003" in line
    header = next(
        csv.reader(io.StringIO(invoke("compare", "mnist-old", "mnist-mid", "mnist-new", "--format", "csv").stdout))
    )
    assert header == ["section", "key", "mnist-old", "mnist-mid", "mnist-new", "same"]
    one = invoke("compare", "mnist-old")
    assert one.exit_code == 2 and "compare needs at least two runs" in one.stderr
    not_png = invoke("compare", "mnist-old", "mnist-mid", "--plot", tmp_path / "curves.jpg")
    assert not_png.exit_code == 2 and "--plot" in not_png.stderr


def test_rm_refuses_a_running_run_and_latest_unless_forced(folder):
    running = invoke("rm", "mnist-running", "mnist-old")
    assert (
        running.exit_code == 1
        and "mnist-running is training now (pid" in running.stderr
        and len(running.stderr.splitlines()) == 1
    )
    assert (folder / "mnist-old").is_dir()  # all or nothing
    latest = invoke("rm", "mnist-new")
    assert latest.exit_code == 1 and "the run LATEST names" in latest.stderr and (folder / "mnist-new").is_dir()

    dry = invoke("rm", "mnist-old", "mnist-new", "--force", "--dry-run", "--format", "json")
    assert [(r["name"], r["removed"], r["latest"]) for r in json.loads(dry.stdout)] == [
        ("mnist-old", False, False),
        ("mnist-new", False, True),
    ]
    assert "would remove 2 runs" in dry.stderr and "dry run" in dry.stderr
    assert (folder / "mnist-old").is_dir() and (folder / "LATEST").is_file()

    size = sum(p.stat().st_size for p in (folder / "mnist-old").iterdir())
    removed = invoke("rm", "mnist-old", "--format", "json")
    assert (
        removed.exit_code == 0
        and json.loads(removed.stdout)[0]["size_bytes"] == size
        and not (folder / "mnist-old").exists()
    )
    forced = invoke("rm", "mnist-new", "--force")
    assert forced.exit_code == 0 and not (folder / "mnist-new").exists() and not (folder / "LATEST").exists()
    assert not any(p.name.startswith(".") for p in folder.iterdir())  # nothing half-removed left behind
    assert invoke("rm", "not-a-run").exit_code == 1
    (folder / "plain").mkdir()
    assert "is not a run directory" in invoke("rm", "plain").stderr and (folder / "plain").is_dir()


def test_prune_keeps_the_best_of_each_dataset(folder):
    dry = invoke("prune", "--keep", "1", "--dry-run", "--format", "json")
    assert dry.exit_code == 0, dry.output
    assert [r["name"] for r in json.loads(dry.stdout)] == [
        "mnist-old"
    ]  # mid is the best; new is LATEST; running is running
    assert "never pruned: mnist-new, the run LATEST names, mnist-running, training now" in dry.stderr.replace(")", "")
    assert all((folder / n).is_dir() for n in ("mnist-old", "mnist-mid", "mnist-new", "fashion-old"))

    by_age = invoke("prune", "--keep", "0", "--older-than", "45d", "--dry-run", "--format", "json")
    assert [r["name"] for r in json.loads(by_age.stdout)] == ["fashion-old"]
    newest = invoke("prune", "--keep", "1", "--by", "started", "--format", "json")
    assert sorted(r["name"] for r in json.loads(newest.stdout)) == ["mnist-mid", "mnist-old"]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["fashion-old", "mnist-new", "mnist-running"]
    assert invoke("prune", "--keep", "1", "--older-than", "soon").exit_code == 2


def test_prune_a_studys_trials_keeps_its_best(folder):
    study = folder / "tune" / "fashion"
    for number, accuracy in enumerate((0.80, 0.90, 0.85, 0.70)):
        trial = make_run(study, f"trial-{number}", dataset="fashion")
        config = json.loads((trial / "config.json").read_text())
        (trial / "config.json").write_text(json.dumps({**config, "study": "fashion", "trial": number}))
        (trial / "metrics.json").write_text(
            json.dumps({"dataset": "fashion", "val_accuracy": accuracy, "test_accuracy": None})
        )
    (folder / "tune" / "fashion-best.json").write_text(
        json.dumps({"run_dir": str(study / "trial-2")})
    )  # as if scored earlier
    result = invoke("prune", "--study", "fashion", "--keep", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert sorted(r["name"] for r in json.loads(result.stdout)) == ["tune/fashion/trial-0", "tune/fashion/trial-3"]
    assert sorted(p.name for p in study.iterdir()) == ["trial-1", "trial-2"]
    assert (folder / "fashion-old").is_dir()  # the runs folder's own runs are not the study's
    missing = invoke("prune", "--study", "nope", "--keep", "1")
    assert missing.exit_code == 2 and "no study 'nope'" in missing.stderr


def test_the_api_does_what_the_commands_do(folder, tmp_path):
    assert api.tag_run("mnist-mid", {"best": "yes"}, note="kept")["tags"] == {"best": "yes"}
    assert [r["name"] for r in api.list_runs(tags={"best": "yes"})] == ["mnist-mid"]
    comparison = api.compare_runs(["mnist-old", "mnist-mid", "fashion-old"])
    assert len(comparison["runs"]) == 3 and all(len(r["values"]) == 3 for r in comparison["rows"])
    assert [r["name"] for r in api.remove_runs(["mnist-old"], dry_run=True)] == ["mnist-old"] and (
        folder / "mnist-old"
    ).is_dir()
    pruned = api.prune_runs(1, dry_run=True)
    assert [r["name"] for r in pruned["removed"]] == ["mnist-old"] and pruned["freed_bytes"] > 0
    with pytest.raises(BadValue) as caught:
        api.prune_runs(-1)
    assert caught.value.field == "keep"
    with pytest.raises(BadValue):
        api.tag_run("mnist-mid", {"a b": "1"})


def test_train_takes_a_runs_name_for_resume_and_init_from(folder):
    (folder / "stopped").mkdir()
    (folder / "stopped" / "config.json").write_text(json.dumps({"dataset": "mnist", "epochs": 4}))
    resumed = CliRunner().invoke(cli, ["train", "--resume", "stopped"])
    assert resumed.exit_code == 1 and f"{str(folder / 'stopped')!r} is not a resumable run" in resumed.stderr, (
        resumed.output
    )
    missing = CliRunner().invoke(cli, ["train", "--resume", "nope"])
    assert missing.exit_code == 2 and "no run 'nope': it does not exist" in missing.stderr
    donor = CliRunner().invoke(cli, ["train", "--init-from", "nope", "--data-dir", folder / "no-data"])
    assert (
        donor.exit_code == 2 and "Invalid value for '--init-from'" in donor.stderr and "does not exist" in donor.stderr
    )
