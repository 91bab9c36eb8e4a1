"""The training display: figures show a dash until they are measured, and the whole run's elapsed time and ETA beside the epoch's."""

from __future__ import annotations

import io

from rich.console import Console

from lenet_cli.cli.progress import NOT_YET, RichProgress, run_figures, step_figures


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _screen(progress: RichProgress) -> str:
    shown = Console(file=io.StringIO(), width=220, record=True)
    shown.print(progress._progress.get_renderable())
    return shown.export_text()


def test_before_the_first_step_no_figure_is_made_up():
    text = step_figures(None, None, None)
    assert "0.0000" not in text and " 0 img/s" not in text
    assert text == f"objective {NOT_YET}  acc {NOT_YET}  {NOT_YET} img/s"
    assert run_figures(0.0, 0, 100) == f"run 0:00:00 elapsed, {NOT_YET} left"


def test_the_run_eta_counts_every_epoch_left():
    clock = FakeClock()
    progress = RichProgress(Console(file=io.StringIO(), width=220), epochs=4, steps=10, clock=clock)
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    first = _screen(progress)
    assert "objective \u2014" in first and "0.0000" not in first and f"{NOT_YET} left" in first
    clock.now += 30.0  # 5 of the run's 40 steps in 30 s: 35 steps left, 210 s at that pace
    progress.on_train_batch_end(4, {"objective": 0.5, "accuracy": 0.75, "images": 250, "elapsed": 30.0})
    later = _screen(progress)
    assert "objective 0.5000" in later and "acc 0.7500" in later and "8 img/s" in later
    assert "run 0:00:30 elapsed, 0:03:30 left" in later
    progress.on_train_end()


def test_a_resumed_run_paces_its_own_steps_only():
    clock = FakeClock()
    progress = RichProgress(Console(file=io.StringIO(), width=220), epochs=4, steps=10, clock=clock)
    progress.on_train_begin()
    progress.on_epoch_begin(2)  # epochs 1 and 2 were done before the resume
    clock.now += 10.0
    progress.on_train_batch_end(9, {"objective": 0.5, "accuracy": 0.75, "images": 500, "elapsed": 10.0})
    assert "run 0:00:10 elapsed, 0:00:10 left" in _screen(progress)  # 10 steps in 10 s; one epoch of 10 steps left
    progress.on_train_end()
