"""PyTorch, the reference, timed in a child process of its own.

NOTE: PyTorch runs in another process because loading and running it in the benchmark's process
slowed gpuconv's NumPy copies several-fold afterwards (measured on the 2-core CPU: 36 ms -> 250 ms
for VGG conv1_2's im2col copies), which would make the comparison about their coexistence. The
child is started with ``spawn`` so that it shares no CUDA context or thread pool with the parent.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import time
from typing import Any, Callable


def _timer(torch: Any, device: str) -> Callable[[Callable[[], Any]], float]:
    if device.startswith("cuda"):
        def timed(fn: Callable[[], Any]) -> float:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) / 1e3
    else:
        def timed(fn: Callable[[], Any]) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
    return timed


def _worker(conn: Any, device: str, threads: int, tf32: bool) -> None:
    """Answers ("build", spec) with the names of the callables built, ("time", name) with seconds."""
    try:
        import torch
    except ImportError as error:
        conn.send(f"PyTorch unavailable: {error}")
        return
    if device.startswith("cuda") and not torch.cuda.is_available():
        conn.send(f"PyTorch {torch.__version__} has no usable CUDA device")
        return
    if threads > 0:
        torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
    from . import torch_ops

    conn.send(("ok", torch.__version__, torch.get_num_threads()))
    timed = _timer(torch, device)
    callables: dict[str, Callable[[], Any]] = {}
    while (message := conn.recv()) is not None:
        verb, argument = message
        try:
            if verb == "build":
                callables = torch_ops.build(torch, argument, device)
                conn.send(sorted(callables))
            else:
                conn.send(timed(callables[argument]))
        except Exception as error:  # noqa: BLE001 - reported to the parent as one line, never a traceback
            conn.send(RuntimeError(f"PyTorch failed: {type(error).__name__}: {error}"))


class TorchChild:
    """Handle on the PyTorch child process; ``available`` is False (with ``reason``) without PyTorch.

    Args:
        device: ``"cpu"`` or ``"cuda:N"``.
        threads: PyTorch's CPU threads (0: its default).
        tf32: PyTorch's TF32 switches for cuDNN and matmul on the GPU.
    """

    def __init__(self, device: str = "cpu", threads: int = 0, tf32: bool = False):
        self.version: str | None = None
        self.threads: int | None = None
        self.process = None
        if importlib.util.find_spec("torch") is None:
            self.reason = "PyTorch not installed: no PyTorch comparison"
            return
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, device, threads, tf32), daemon=True)
        self.process.start()
        try:
            status = self.conn.recv()
        except EOFError:
            self.process.join(timeout=30)
            status = f"the PyTorch child process exited at start (exit code {self.process.exitcode})"
        if isinstance(status, tuple):
            _, self.version, self.threads = status
            self.reason = None
        else:
            self.reason = status
            self.process.join(timeout=30)
            self.process = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def _ask(self, message: tuple) -> Any:
        self.conn.send(message)
        answer = self.conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def build(self, spec: dict) -> list[str]:
        """Builds the callables of one case (see torch_ops.build); returns their names."""
        return self._ask(("build", spec))

    def timed(self, name: str) -> Callable[[], float]:
        """A callable that runs ``name`` once in the child and returns its seconds."""
        return lambda: self._ask(("time", name))

    def close(self) -> None:
        if self.process is not None:
            self.conn.send(None)
            self.process.join(timeout=30)
            self.process = None

    def __enter__(self) -> TorchChild:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
