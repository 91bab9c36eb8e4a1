"""The machine a figure was measured on, and the library versions that made it, read without importing any of them.

Speed figures mean nothing without the CPU and the runtimes beside them: ``lenet benchmark`` puts these in its
JSON header and under its table, so a table pasted into an issue says where it came from.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "onnxruntime", "tf2onnx", "onnx", "ai-edge-litert")
"""The distributions whose versions a measurement depends on, in the order they are shown (absent ones are left out)."""


def cpu_model() -> str:
    """The CPU's model name (``AMD EPYC 9B14``), from ``/proc/cpuinfo`` on Linux, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one), which is what a measurement got."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def library_versions() -> dict[str, str]:
    """``{distribution: version}`` of :data:`LIBRARIES` that are installed (package metadata only: nothing is imported)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_facts() -> dict[str, object]:
    """The CPU model, its cores (usable and in all), the OS and the Python version."""
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
