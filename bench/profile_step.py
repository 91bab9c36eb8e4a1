"""Where lenet's training step spends its time: TensorFlow's profiler, op self-time by op type.

    python -m bench.profile_step                 # lenet's settings (oneDNN on)
    TF_ENABLE_ONEDNN_OPTS=0 python -m bench.profile_step   # TensorFlow's fallback kernels

Runs ``steps`` optimizer steps of lenet's own compiled step on random
inputs (speed does not depend on the pixel values), records them with
``tf.profiler.experimental`` and prints the op-type table that TensorBoard's
profile plugin would show, plus the slowest single ops. The table in
bench/RESULTS.md came from this.
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile


def profile(batch_size: int, calls: int) -> list[dict]:
    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    import numpy as np

    from lenet_cli.core.config import resolve_config
    from lenet_cli.model.network import build_lenet
    from lenet_cli.model.train_step import STEPS_PER_CALL, TrainStep, make_optimizer

    cfg = resolve_config("mnist", batch_size=batch_size)
    step = TrainStep.for_config(cfg, build_lenet(seed=0), make_optimizer(cfg, 200))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(STEPS_PER_CALL, batch_size, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(STEPS_PER_CALL, batch_size), dtype=np.int32)
    for _ in range(3):  # trace and warm up outside the recording
        float(step.steps(images, labels)["cross_entropy"])
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(calls):
            float(step.steps(images, labels)["cross_entropy"])
        tf.profiler.experimental.stop()
        xplane = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

        data, ok = _pywrap_profiler_plugin.xspace_to_tools_data([xplane], "framework_op_stats", {})
    if not ok:
        raise SystemExit("the profiler produced no op statistics")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    return [{columns[i]: (cell or {}).get("v") for i, cell in enumerate(row["c"])} for row in table["rows"]]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--calls", type=int, default=3, help="compiled calls recorded (each runs 8 optimizer steps)")
    args = parser.parse_args(argv)
    rows = profile(args.batch_size, args.calls)
    total = sum(r["total_self_time"] for r in rows)
    by_type: dict[str, float] = {}
    for r in rows:
        by_type[r["type"]] = by_type.get(r["type"], 0.0) + r["total_self_time"]
    print(f"op self-time, {args.calls * 8} steps at batch {args.batch_size}: {total / 1000:.0f} ms")
    for name, us in sorted(by_type.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {name:45s} {us / 1000:8.1f} ms {100 * us / total:5.1f} %")
    print("slowest ops:")
    for r in sorted(rows, key=lambda r: -r["total_self_time"])[:12]:
        name = r["operation"].split("StatefulPartitionedCall/")[-1]
        print(f"  {r['type']:40s} {name[:70]:70s} {r['total_self_time'] / 1000:8.1f} ms")


if __name__ == "__main__":
    main()
