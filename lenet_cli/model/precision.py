"""Which arithmetic training uses: float32, or bfloat16 where the hardware does it natively.

``--precision bfloat16`` trains under Keras's ``mixed_bfloat16`` policy: the
convolutions, dense layers, pooling and dropout compute in bfloat16 while
every weight stays float32 (so the optimizer, EMA and checkpoints are
unchanged). The two LRN layers, the logits, the softmax and the loss stay in
float32: LRN's sum of squares and the cross-entropy's log-sum-exp lose too
much in bfloat16's 8-bit mantissa. The model that ships is always float32
(the trained weights in a float32 copy of the network), so ``evaluate``,
``predict``, ``serve`` and every export format see the same kind of model
whatever trained it.

``auto`` picks bfloat16 only where it is native: a CPU with AVX512_BF16 or AMX
(oneDNN then runs bf16 matmuls at up to ~1.7x the float32 rate), or a GPU.
Elsewhere bfloat16 is emulated and slower than float32, so ``auto`` picks
float32. ``auto`` is not the default while its accuracy on the default recipe
has not been measured on such hardware (bench/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
FLOAT32_LAYERS = ("lrn_1", "lrn_2", "logits_layer", "softmax_layer")  # computed in float32 under any policy


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` is unreadable, e.g. not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def native_bfloat16(flags: set[str] | None = None, gpus: int | None = None) -> bool:
    """True on a CPU with AVX512_BF16 or AMX, or with a GPU visible to TensorFlow."""
    if gpus is None:
        from lenet_cli.core.tensorflow_env import import_tensorflow

        gpus = len(import_tensorflow().config.list_physical_devices("GPU"))
    flags = cpu_flags() if flags is None else flags
    return gpus > 0 or any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def resolve_precision(choice: str, native: bool | None = None) -> str:
    """``float32`` or ``bfloat16``: ``auto`` becomes bfloat16 only where it is native."""
    if choice in POLICIES:
        return choice
    if choice != "auto":
        raise ValueError(f"unknown precision {choice!r}; choose auto, float32 or bfloat16")
    return "bfloat16" if (native_bfloat16() if native is None else native) else "float32"


def layer_dtype(precision: str, layer_name: str) -> str:
    """The Keras dtype policy of one layer of the network under ``precision``."""
    if layer_name in FLOAT32_LAYERS:
        return "float32"
    return POLICIES[precision]
