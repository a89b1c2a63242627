"""A representative subset of the kernel tests (conv, im2col, pooling, batch norm; forward and
backward, float32 and float64) run again with the emulator in sanitizer mode: no out-of-bounds,
misaligned or uninitialized access, race or divergent barrier in gpuconv's own kernels.

The whole matrix runs the same way with ``GPUCONV_EMU_SANITIZE=1 pytest -k emulated`` (about 2x
the time of the plain run, plus one compile of each module's instrumented build).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpuconv.backend.emulated_backend import unavailable_reason

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
    env = dict(os.environ, GPUCONV_EMU_SANITIZE="1")
    command = [sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider", *FILES,
               "-k", f"emulated and ({SUBSET})"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    tail = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"kernel tests fail in sanitizer mode:\n{tail}"
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= MINIMUM, f"the subset selected too few tests:\n{tail}"
