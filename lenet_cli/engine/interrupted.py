"""The exception a stopped training raises, in a module light enough for the command line to import before TensorFlow.

``lenet train`` catches it around the whole run; importing it from the trainer
would load TensorFlow before the inputs are checked, and every refusal would
then wait seconds for it.
"""

from __future__ import annotations

from pathlib import Path

from lenet_cli.core.units import plural


class TrainingInterrupted(Exception):
    """Training stopped on a signal; the last completed epoch's checkpoint is on disk.

    With no epoch completed there is nothing to resume, and nothing
    resumable is kept: ``checkpoint_kept`` is False, and ``run_dir_removed``
    says whether the run directory went too (:func:`lenet_cli.store.runs.discard_unstarted_run`).
    """

    def __init__(self, signum: int, completed_epochs: int, run_dir: Path, by_peer: bool = False):
        super().__init__(f"interrupted by signal {signum} after {plural(completed_epochs, 'completed epoch')}")
        self.by_peer = by_peer  # another worker of a distributed run received the signal
        self.signum = signum
        self.completed_epochs = completed_epochs
        self.run_dir = run_dir
        self.checkpoint_kept = True
        self.run_dir_removed = False
