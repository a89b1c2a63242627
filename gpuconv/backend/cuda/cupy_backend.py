"""The cupy backend: CuPy arrays, kernels/*.cu through NVRTC, GEMM through cuBLAS."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .backend import CudaBackend
from .cupy_loader import CupyModule


# cudaErrorInsufficientDriver and cudaErrorNoDevice: what the CUDA runtime reports on a machine
# without an NVIDIA driver (it says "driver version is insufficient" even when there is none at all)
# or without a GPU.
_NO_DRIVER_OR_DEVICE = {35: "cudaErrorInsufficientDriver", 100: "cudaErrorNoDevice"}
NO_GPU = "no NVIDIA GPU found"
DRIVER_TOO_OLD = "the NVIDIA driver is too old for CuPy's CUDA runtime"
_DRIVER_TOO_OLD_FIX = "update the driver, or install the CuPy build for the driver's CUDA version"
# The driver's user-space library, which every NVIDIA driver installs (Linux, Windows).
_DRIVER_LIBRARIES = ("libcuda.so.1", "nvcuda.dll")


def driver_installed() -> bool:
    """Whether an NVIDIA driver is installed: its user-space library loads."""
    import ctypes

    for name in _DRIVER_LIBRARIES:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def unavailable_reason() -> str | None:
    """Why the cupy backend cannot run here (CuPy missing, no driver or GPU, driver too old), or
    None. No driver or no GPU reads "no NVIDIA GPU found (...)"; a driver too old for CuPy's CUDA
    runtime says so and keeps the runtime's own error in parentheses."""
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); install gpuconv[cuda12] or gpuconv[cuda13]"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, e.g. cudaErrorInsufficientDriver / cudaErrorNoDevice
        raw = f"{type(exc).__name__}: {exc}"
        status = getattr(exc, "status", None)
        if status == 35 or _NO_DRIVER_OR_DEVICE[35] in str(exc):
            # NOTE: the runtime reports "insufficient driver" also when no driver exists at all.
            if driver_installed():
                return f"{DRIVER_TOO_OLD} ({_DRIVER_TOO_OLD_FIX}; {raw})"
            return f"{NO_GPU} (no NVIDIA driver is installed)"
        if status == 100 or _NO_DRIVER_OR_DEVICE[100] in str(exc):
            return f"{NO_GPU} (the NVIDIA driver sees no device: {raw})"
        return f"no usable CUDA device ({raw})"
    if count < 1:
        return f"{NO_GPU} (the CUDA runtime reports 0 devices)"
    return None


class CupyBackend(CudaBackend):
    name = "cupy"
    capabilities = replace(CudaBackend.capabilities, gpu=True)

    def __init__(self, device: int | None = None):
        super().__init__()
        import cupy

        self.xp = cupy
        self.device = cupy.cuda.Device(device) if device is not None else None

    def activate(self):
        """Makes this backend's device current; returns the device to restore afterwards."""
        import cupy

        previous = cupy.cuda.Device()
        if self.device is not None:
            self.device.use()
        return previous

    def restore(self, previous) -> None:
        previous.use()

    def module_cache_key(self):
        return self.xp.cuda.Device().id

    def load_module(self, filename, defines):
        return CupyModule(filename, defines)

    def to_numpy(self, a) -> np.ndarray:
        return self.xp.asnumpy(a) if isinstance(a, self.xp.ndarray) else np.asarray(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def matmul(self, a, b, out=None):
        # NOTE: gpuconv switches TF32 per call (gpuconv.flags.allow_tf32, backend/cuda/tf32.py); a
        # CUPY_TF32=1 set before CuPy's import still makes every 2-D product TF32 regardless.
        return self.xp.matmul(a, b, out=out)
