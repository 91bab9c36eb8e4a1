"""bench/recipes.py ranks on validation only and reads only the chosen recipe's test accuracy."""

from __future__ import annotations

import json

import pytest

from bench import recipes


def test_screening_options_replace_a_candidates_epochs():
    assert recipes.candidate_options("long-flip-ema", 3, 500) == [
        "--augment",
        "flip",
        "--ema",
        "0.999",
        "--epochs",
        "3",
        "--train-limit",
        "500",
    ]
    assert recipes.candidate_options("base", None, None) == []
    assert all("flip" not in " ".join(recipes.CANDIDATES[name]) for name in recipes.FOR_DATASET["mnist"])


def test_ranking_is_by_mean_validation_accuracy():
    rows = [
        {"candidate": "a", "options": [], "val_accuracy": 0.90, "train_seconds": 60},
        {"candidate": "a", "options": [], "val_accuracy": 0.94, "train_seconds": 60},
        {"candidate": "b", "options": ["--ema", "0.999"], "val_accuracy": 0.93, "train_seconds": 120},
        {"candidate": "b", "options": ["--ema", "0.999"], "val_accuracy": 0.93, "train_seconds": 120},
    ]
    table = recipes.rank(rows)
    assert [r["candidate"] for r in table] == ["b", "a"] and table[0]["minutes"] == 2.0


@pytest.mark.slow
def test_a_tiny_search_through_the_real_command(synthetic_data_dir, tmp_path, capsys):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\n<!-- recipes:mnist -->\nold\n<!-- /recipes:mnist -->\n\n## after\n")
    recipes.main(
        [
            "--dataset",
            "mnist",
            "--candidates",
            "base,smooth",
            "--seeds",
            "0",
            "--epochs",
            "1",
            "--train-limit",
            "200",
            "--validation-size",
            "100",
            "--data-dir",
            str(synthetic_data_dir),
            "--out",
            str(tmp_path),
            "--results-md",
            str(md),
        ]
    )
    saved = json.loads((tmp_path / "recipes_mnist.json").read_text())
    assert {r["candidate"] for r in saved["runs"]} == {"base", "smooth"}
    assert all(
        "test_accuracy" not in r and "_test_accuracy" not in r for r in saved["runs"]
    )  # only the chosen one's is kept
    assert saved["chosen"] == saved["ranking"][0]["candidate"] and len(saved["chosen_test_accuracy"]) == 1
    text = md.read_text()
    assert "old" not in text and "## after" in text and f"Chosen: **{saved['chosen']}**" in text


def test_the_issue_30_candidates_use_the_new_policies_where_they_belong():
    assert {"b256-writers-ema", "b256-16-writers-ema"} <= set(recipes.FOR_DATASET["mnist"])
    assert {"long-dropout-0.3-tones", "long-dropout-0.3-tones-ema", "b256-30-dropout-0.3-tones"} <= set(
        recipes.FOR_DATASET["fashion"]
    )
    assert all(
        "tones" not in recipes.CANDIDATES[name] for name in recipes.FOR_DATASET["mnist"]
    )  # flips ride with tones (writers-tones has none)
    assert recipes.candidate_options("b256-writers-ema", 2, 300) == [
        "--batch-size",
        "256",
        "--learning-rate",
        "2e-3",
        "--augment",
        "writers",
        "--ema",
        "0.999",
        "--epochs",
        "2",
        "--train-limit",
        "300",
    ]
    assert all(name in recipes.CANDIDATES for names in recipes.FOR_DATASET.values() for name in names)
