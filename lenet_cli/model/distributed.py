"""Data-parallel training on ``tf.distribute``: build the strategy and a synchronous step.

Three modes:

* ``none``: no strategy; the single-device step in :mod:`lenet_cli.engine.trainer`.
* ``mirrored``: ``MirroredStrategy`` over the local GPUs, or over N logical CPU
  devices (``--devices N`` or ``LENET_CPU_DEVICES``) for testing.
* ``multi-worker``: ``MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``,
  or from ``--workers host:port,... --task-index I`` (which build ``TF_CONFIG``).

Input: every worker holds the whole (in-memory) training split and draws the
same epoch permutation from the seeded numpy RNG, so each replica simply takes
its own contiguous slice of every global batch (``replica_id_in_sync_group``
picks it). This is explicit per-replica sharding of each batch; no ``tf.data``
auto-sharding is involved (auto-shard ``FILE`` would fail on in-memory data and
``DATA`` would make every worker read and drop the whole batch anyway).

Loss: each replica differentiates its per-example cross-entropy over the
*global* batch size and adds the penalty's gradient over the number of
replicas, so the all-reduced (summed) gradient equals the single-device
gradient of the mean loss.

Timeouts: every collective (the optimizer's gradient all-reduce and the metric
sums) runs with ``CommunicationOptions(timeout_seconds=worker_timeout)``; joining
the cluster (server start-up, the first variable broadcast and the first step)
runs under a watchdog, supplied by the command that owns the process, that
ends it with a clear message after ``worker_timeout`` seconds, since those
waits take no timeout of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lenet_cli.core.config import DISTRIBUTE_MODES as MODES
from lenet_cli.core.config import WORKER_TIMEOUT
from lenet_cli.core.env import CPU_DEVICES_ENV
from lenet_cli.core.errors import BadValue, LenetError

DEFAULT_WORKER_TIMEOUT = WORKER_TIMEOUT  # seconds


@dataclass
class Distribution:
    """A built strategy and where this process sits in it."""

    mode: str
    strategy: Any
    num_replicas: int
    num_workers: int
    worker_index: int
    is_chief: bool
    worker_timeout: float
    watchdog: Any = None  # what build_distribution's start_watchdog returned

    def describe(self) -> str:
        """One header line for the progress display."""
        role = "chief" if self.is_chief else "non-chief, writing to a temporary directory"
        if self.mode == "mirrored":
            return f"distribute: mirrored, {self.num_replicas} replica(s) on 1 worker"
        return (
            f"distribute: multi-worker, {self.num_replicas} replica(s) on {self.num_workers} worker(s); "
            f"this is worker {self.worker_index} ({role})"
        )


def tf_config_from_workers(workers: str, task_index: int) -> dict:
    """The ``TF_CONFIG`` that ``--workers host:port,... --task-index I`` stands for (worker 0 is the chief).

    Raises:
        BadValue: an address is not ``host:port`` or the index is out of range.
    """
    addresses = [a.strip() for a in workers.split(",") if a.strip()]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise BadValue("workers", f"takes host:port addresses separated by commas. Received: {address!r}")
    if not 0 <= task_index < len(addresses):
        raise BadValue(
            "task_index",
            f"must be between 0 and {len(addresses) - 1} for {len(addresses)} worker(s). Received: {task_index}",
        )
    return {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": task_index}}


def _parse_tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise BadValue("distribute", "multi-worker needs TF_CONFIG, or workers (host:port,...) with a task_index")
    try:
        config = json.loads(raw)
        config["cluster"], config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LenetError(
            f"TF_CONFIG is not a TensorFlow cluster config ({type(exc).__name__}: {exc}). Received: {raw[:200]}"
        ) from None
    return config


def configure_cpu_devices(tf, count: int) -> None:
    """Split the host CPU into ``count`` logical devices; must run before TensorFlow runs any op."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as exc:
        raise LenetError(f"cannot split the CPU into {count} devices after TensorFlow has started ({exc})") from None


def build_distribution(
    mode: str,
    devices: int | None = None,
    workers: str | None = None,
    task_index: int | None = None,
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
    start_watchdog: Callable[[float, str], Any] | None = None,
) -> Distribution | None:
    """Build the strategy for ``mode`` (``None`` for ``none``); call before TensorFlow runs any op.

    ``start_watchdog(seconds, what)`` is called just before a multi-worker
    process joins its cluster and returns an object with ``stop()``, called
    after the first synchronous step. TensorFlow's cluster start-up blocks in
    C++ with no timeout of its own, so only the caller (which owns the process)
    can end a join that never completes.

    Raises:
        BadValue: a bad mode, worker list or device count.
        LenetError: a malformed ``TF_CONFIG`` or device-count variable.
    """
    if mode == "none":
        return None
    if mode not in MODES:
        raise BadValue("distribute", f"must be one of {', '.join(MODES)}. Received: {mode!r}")
    if devices is None and os.environ.get(CPU_DEVICES_ENV):
        try:
            devices = int(os.environ[CPU_DEVICES_ENV])
        except ValueError:
            raise LenetError(
                f"{CPU_DEVICES_ENV} must be a whole number. Received: {os.environ[CPU_DEVICES_ENV]!r}"
            ) from None
    if devices is not None and devices < 1:
        raise BadValue("devices", f"must be at least 1. Received: {devices}")
    if mode == "multi-worker" and workers:
        os.environ["TF_CONFIG"] = json.dumps(tf_config_from_workers(workers, task_index or 0))
    cluster = _parse_tf_config() if mode == "multi-worker" else None

    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    if devices is not None:
        configure_cpu_devices(tf, devices)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=float(worker_timeout))
    if mode == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        names = (
            [d.name for d in gpus]
            if gpus and devices is None
            else [d.name for d in tf.config.list_logical_devices("CPU")]
        )
        cross = tf.distribute.ReductionToOneDevice() if not gpus or devices is not None else None
        strategy = tf.distribute.MirroredStrategy(devices=names, cross_device_ops=cross)
        return Distribution(mode, strategy, strategy.num_replicas_in_sync, 1, 0, True, worker_timeout)

    assert cluster is not None, "mode is multi-worker here, and its config was parsed above"
    task = cluster["task"]
    jobs = cluster["cluster"]
    num_workers = sum(len(jobs.get(job, [])) for job in ("chief", "worker"))
    is_chief = task["type"] == "chief" or (task["type"] == "worker" and int(task["index"]) == 0 and "chief" not in jobs)
    worker_index = int(task["index"]) + (1 if task["type"] == "worker" and "chief" in jobs else 0)
    watchdog = (
        start_watchdog(worker_timeout, "joining the cluster and running the first step") if start_watchdog else None
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return Distribution(
        mode, strategy, strategy.num_replicas_in_sync, num_workers, worker_index, is_chief, worker_timeout, watchdog
    )


def first_step_callback(distribution: Distribution):
    """A Keras callback that disarms the start-up watchdog once the first synchronous step has run."""
    import keras

    class ClusterJoined(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if distribution.watchdog is not None:
                distribution.watchdog.stop()
                distribution.watchdog = None

    return ClusterJoined()


def distributed_train_step(distribution: Distribution, view, objective, trainable, optimizer, inputs):
    """A step like the single-device one: (uint8 images, int32 labels) of one global batch -> per-example sums.

    Returns the global batch's summed ``cross_entropy`` and ``correct`` count,
    and each penalty term times the batch size, as :class:`lenet_cli.engine.trainer.TrainStep` does,
    plus ``stop_sigint`` / ``stop_sigterm``: how many replicas' workers asked to stop (SIGINT
    or SIGTERM). They ride the step's own all-reduce, so a signal on any one worker stops every
    worker after the same step, within one step's time, instead of leaving the others waiting
    on a collective until ``--worker-timeout``.
    ``inputs`` turns a replica's uint8 images into the network's (augmented) input.
    """
    import tensorflow as tf

    strategy = distribution.strategy
    replicas = strategy.num_replicas_in_sync

    def replica_step(x, y, global_n, stop):
        terms = objective.penalties()  # before the update: the weights this step starts from
        with tf.GradientTape() as tape:
            logits, _ = view(inputs(x), training=True)
            loss, cross_entropy_sum = objective.data_loss(y, logits, global_n)
        grads = objective.add_penalty_gradients(tape.gradient(loss, trainable), trainable, replicas)
        optimizer.apply_gradients(zip(grads, trainable))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        context = tf.distribute.get_replica_context()
        stop_sigint, stop_sigterm = (
            tf.identity(stop[0]),
            tf.identity(stop[1]),
        )  # this replica's copies, reduced like its sums
        ce_total, correct_total, stop_sigint, stop_sigterm = context.all_reduce(
            tf.distribute.ReduceOp.SUM, [cross_entropy_sum, correct, stop_sigint, stop_sigterm]
        )
        return {
            "cross_entropy": ce_total,
            "correct": correct_total,
            "stop_sigint": stop_sigint,
            "stop_sigterm": stop_sigterm,
            "penalty_images": global_n,
            **{k: v * global_n for k, v in terms.items()},
        }

    @tf.function(reduce_retracing=True)
    def step(x, y, global_n, stop):
        per_replica = strategy.run(replica_step, args=(x, y, global_n, stop))
        return {k: strategy.experimental_local_results(v)[0] for k, v in per_replica.items()}

    def run(images: np.ndarray, labels: np.ndarray, signum: int = 0):
        """One global batch; ``signum`` (0, SIGINT or SIGTERM) is this worker's stop request, shared in the all-reduce."""
        n = len(images)

        def shard(ctx, array):
            i, r = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
            return tf.constant(array[n * i // r : n * (i + 1) // r])

        x = strategy.experimental_distribute_values_from_function(lambda ctx: shard(ctx, images))
        y = strategy.experimental_distribute_values_from_function(lambda ctx: shard(ctx, labels))
        stop = tf.constant([float(signum == signal.SIGINT), float(signum == signal.SIGTERM)])
        return step(x, y, tf.constant(float(n)), stop)

    return run


def weights_digest(model, layers) -> str:
    """SHA-256 of the named layers' weights (float32 bytes): equal digests mean equal weights."""
    digest = hashlib.sha256()
    for name in layers:
        for weight in model.get_layer(name).get_weights():
            digest.update(np.ascontiguousarray(weight, dtype=np.float32).tobytes())
    return digest.hexdigest()
