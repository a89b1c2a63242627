"""The header of every report: machine, CPU/GPU name, library versions, date and settings."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from typing import Any

import gpuconv

# Libraries whose versions the header lists when they are installed (read from their metadata,
# without importing them: importing torch would slow NumPy down in this process, see torch_child).
_LIBRARIES = {"numpy": "numpy", "cupy": "cupy-cuda12x", "cupy (cuda13)": "cupy-cuda13x", "torch": "torch",
              "torchvision": "torchvision", "matplotlib": "matplotlib"}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name(be: Any) -> str | None:
    """The current GPU's name on the cupy backend, else None."""
    if not be.capabilities.gpu:
        return None
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return props["name"].decode()


def versions(be: Any) -> dict[str, str]:
    """gpuconv, Python and the installed libraries' versions (CUDA's too on the cupy backend)."""
    found = {"gpuconv": gpuconv.__version__, "python": platform.python_version()}
    for label, dist in _LIBRARIES.items():
        try:
            found[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if be.capabilities.gpu:
        import cupy

        found["cuda runtime"] = str(cupy.cuda.runtime.runtimeGetVersion())
        found["cuda driver"] = str(cupy.cuda.runtime.driverGetVersion())
    return found


def load_note(when: str) -> str | None:
    """The 1-minute load average against the core count (timings on a busy CPU are noisy), or None."""
    if not hasattr(os, "getloadavg"):
        return None
    return f"load average {when}: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU cores"


def header(be: Any, command: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The report header (the ``header`` object of the JSON schema)."""
    return {
        "command": command,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores",
        "cpu": cpu_name(),
        "gpu": gpu_name(be),
        "backend": be.name,
        "versions": versions(be),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": settings,
        "notes": [note for note in (load_note("at the start"),) if note],
    }
