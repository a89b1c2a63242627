"""A representative subset of the kernel tests (conv, im2col, pooling, batch norm; forward and
backward, float32 and float64) run again with the emulator in sanitizer mode (``pytest
--emu-sanitize``): no out-of-bounds, misaligned or uninitialized access, race or divergent barrier
in gpuconv's own kernels.

The whole matrix runs the same way with ``pytest --emu-sanitize -k emulated`` (or
``GPUCONV_EMU_SANITIZE=1``; about 2x the time of the plain run, plus one compile of each module's
instrumented build), and under AddressSanitizer + UBSan with ``pytest --emu-asan``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpuconv.backend.emulated.backend import unavailable_reason

pytestmark = [pytest.mark.emulated,
              pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")]

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/test_pool.py", "tests/test_batchnorm.py", "tests/test_im2col.py", "tests/test_conv.py"]
# Test functions by name (robust to changes of their parametrization); `emulated` picks that backend.
SUBSET = ("max_pool2d_random or avg_pool2d_random or gem_random or adaptive_max_pool2d_random "
          "or training_forward_random or training_backward_random or eval_backward "
          "or im2col_and_col2im_match or col2im_is_the_adjoint "
          "or chunking_does_not_change or gradients_by_finite_differences or non_contiguous_inputs")
MINIMUM = 30  # tests the subset selects today: fewer means the selection broke


def test_kernel_tests_pass_in_sanitizer_mode():
    env = {k: v for k, v in os.environ.items() if k != "GPUCONV_EMU_SANITIZE"}
    command = [sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider", "--emu-sanitize", *FILES,
               "-k", f"emulated and ({SUBSET})"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    tail = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"kernel tests fail in sanitizer mode:\n{tail}"
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= MINIMUM, f"the subset selected too few tests:\n{tail}"


@pytest.mark.parametrize("option, mode", [("--emu-sanitize", "hooks"), ("--emu-asan", "asan"), (None, "")])
def test_the_pytest_option_sets_the_mode(tmp_path, option, mode):
    """--emu-sanitize is GPUCONV_EMU_SANITIZE=1; =asan re-runs pytest in a child that preloads the
    ASan runtime (where libasan exists), with the ASan builds."""
    if option and option.endswith("asan"):
        from gpuconv.backend.emulated import asan_runtime

        if asan_runtime() is None:
            pytest.skip("the C++ compiler has no ASan runtime (libasan.so)")
    probe = tmp_path / "test_probe.py"
    probe.write_text("import os\nfrom gpuconv.backend.emulated.loader import asan_loaded, sanitize_mode\n\n\n"
                     "def test_mode():\n"
                     f"    assert sanitize_mode() == {mode!r}\n"
                     f"    assert asan_loaded() == {mode == 'asan'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GPUCONV_EMU_SANITIZE", "LD_PRELOAD")}
    command = [sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider", "-p", "tests.conftest",
               *([option] if option else []), str(probe)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
