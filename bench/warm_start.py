"""Fashion-MNIST after one epoch: from scratch vs warm-started from an MNIST run with frozen convolutions.

    python -m bench.warm_start MNIST_RUN_DIR

Runs the real ``lenet train`` three times (scratch; --init-from; --init-from
--freeze conv_1,conv_2), one epoch each with the default recipe otherwise,
and prints each run's validation and test accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import data_dir


def main():
    source = Path(sys.argv[1])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (
            ("from scratch", []),
            ("init from MNIST", ["--init-from", str(source)]),
            ("init from MNIST, conv_1,conv_2 frozen", ["--init-from", str(source), "--freeze", "conv_1,conv_2"]),
        ):
            out = Path(tmp) / name.replace(" ", "_").replace(",", "")
            cmd = [
                sys.executable,
                "-m",
                "lenet_cli",
                "train",
                "--dataset",
                "fashion",
                "--epochs",
                "1",
                "--data-dir",
                str(data_dir()),
                "--output",
                str(out),
                "--no-tensorboard",
                "--quiet",
                "--format",
                "json",
                *extra,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            metrics = json.loads(proc.stdout)
            rows.append(
                {"start": name, "val_accuracy": metrics["val_accuracy"], "test_accuracy": metrics["test_accuracy"]}
            )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
