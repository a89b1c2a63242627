"""The emulator's AddressSanitizer mode (GPUCONV_EMU_SANITIZE=asan): modules built with
-fsanitize=address,undefined run in a child process that preloads the ASan runtime
(gpuconv.backend.emulated.run_under_asan). A report names file:line (ASan's or UBSan's own) and
the CUDA thread and block (the emulator's death callback); a clean kernel runs to the end.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gpuconv.backend.emulated import asan_runtime, run_under_asan
from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.emulated.loader import EmulatedModule, sanitizing
from tests.test_emulator_sanitizer import at

pytestmark = [pytest.mark.emulated,
              pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}"),
              pytest.mark.skipif(asan_runtime() is None, reason="the C++ compiler has no ASan runtime (libasan.so)")]

ROOT = Path(__file__).resolve().parent.parent
# The child: a clean launch first (must finish), then the named kernel (its report ends the child).
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from gpuconv.backend.emulated.loader import EmulatedModule
    module = EmulatedModule("tests/emu_kernels/planted_bugs.cu")
    x, y = np.arange(64, dtype=np.float32), np.zeros(64, np.float32)
    module.get_function("copy_f32")(1, 64, (x, y, np.int32(64)))
    assert (y == x).all()
    print("clean launch done", flush=True)
    name, grid = sys.argv[1], int(sys.argv[2])
    args = (x, y, np.int32(65536), np.int32(65536)) if name.startswith("int32") else (x, y, np.int32(64))
    if name != "none":
        module.get_function(name)(grid, 64, args)
    print("no report", flush=True)
""")


def run_child(kernel: str, grid: int = 1):
    return run_under_asan([sys.executable, "-c", CHILD, kernel, str(grid)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_a_clean_kernel_runs_under_asan():
    result = run_child("none")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "clean launch done" in result.stdout and "no report" in result.stdout


@pytest.mark.parametrize("kernel, grid, report, bug, thread", [
    ("read_past_end_f32", 1, r"ERROR: AddressSanitizer: heap-buffer-overflow", "read_past_end", r"\(63,0,0\) of block \(0,0,0\)"),
    ("local_array_past_end_f32", 1, r"runtime error: index 8 out of bounds for type 'float \[8\]'",
     "local_array_past_end", r"\(0,0,0\) of block \(0,0,0\)"),
    ("int32_index_overflow_f32", 2, r"runtime error: signed integer overflow: 65536 \* 65536",
     "int32_index_overflow", r"\(0,0,0\) of block \(1,0,0\)"),
], ids=["heap-overflow", "local-array-bounds", "signed-overflow"])
def test_asan_and_ubsan_reports_name_the_line_and_the_cuda_thread(kernel, grid, report, bug, thread):
    result = run_child(kernel, grid)
    assert result.returncode != 0 and "no report" not in result.stdout, result.stdout
    assert "clean launch done" in result.stdout
    stderr = result.stderr
    assert re.search(report, stderr), stderr[-4000:]
    assert re.search(at(bug), stderr), stderr[-4000:]
    assert re.search(r"gpuconv emulator: the report above comes from CUDA thread " + thread, stderr), stderr[-4000:]


def test_the_asan_build_refuses_to_load_without_the_runtime():
    module = EmulatedModule(ROOT / "tests" / "emu_kernels" / "planted_bugs.cu")
    x = np.zeros(1, np.float32)
    with sanitizing("asan"), pytest.raises(RuntimeError, match=r"GPUCONV_EMU_SANITIZE=asan: the ASan build of "
                                           r"planted_bugs\.cu loads only in a process that preloads"):
        module.get_function("copy_f32")(1, 1, (x, x, np.int32(1)))
