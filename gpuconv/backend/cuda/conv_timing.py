"""How the conv autotuner (gpuconv.functional.conv_tune) times an algorithm on a GPU: CUDA events on
the current stream, one warm-up run, then the median of TIMED_RUNS runs; and the device name its
winners are filed under."""

from __future__ import annotations

import functools
import statistics
from typing import Any, Callable

TIMED_RUNS = 3


def cuda_event_timer(xp) -> Callable[[Callable[[], Any], str], float]:
    """``timer(run, label) -> milliseconds`` (see the module docstring); ``xp`` is cupy."""
    def timer(run: Callable[[], Any], label: str) -> float:
        run()
        times = []
        for _ in range(TIMED_RUNS):
            start, end = xp.cuda.Event(), xp.cuda.Event()
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(xp.cuda.get_elapsed_time(start, end))
        return statistics.median(times)
    return timer


@functools.lru_cache(maxsize=None)
def device_name(xp, device_id: int) -> str:
    name = xp.cuda.runtime.getDeviceProperties(device_id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)
