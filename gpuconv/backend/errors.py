"""Exceptions raised by the backend layer."""


class KernelCompileError(RuntimeError):
    """A kernels/*.cu file failed to compile (NVRTC or g++).

    Attributes:
        filename: the .cu file, e.g. ``"im2col.cu"``.
        line: the first line the compiler complained about, or ``None``.
        log: the compiler's full message.
    """

    def __init__(self, filename: str, line: int | None, log: str, compiler: str):
        self.filename = filename
        self.line = line
        self.log = log
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{compiler} failed to compile {where}:\n{log.strip()}")


class KernelLaunchError(RuntimeError):
    """A kernel launch was rejected or failed while running (emulated backend)."""


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine; the message says why."""
