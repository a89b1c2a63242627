"""gpuconv.backend.kernel_stubs: kernels replaced by argument-checking stubs, and put back."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.kernel_stubs import stubbed_kernels

pytestmark = pytest.mark.skipif(gpuconv.backend.unavailable_reason("emulated") is not None,
                                reason="emulated backend unavailable")


def test_stubs_count_launches_run_nothing_and_the_real_kernels_come_back():
    x_np = np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32)
    with gpuconv.backend("emulated") as be:
        x = be.asarray(x_np)
        np.testing.assert_array_equal(be.to_numpy(F.relu(x)), np.maximum(x_np, 0))  # real kernel cached
        with stubbed_kernels(be) as counter:
            out = F.relu(x)
            be.count_step(be.zeros((), np.int64))  # a kernel fetched by module().get_function
            assert counter.launches == 2
            assert not np.array_equal(be.to_numpy(out), np.maximum(x_np, 0))  # the stub computed nothing
            with pytest.raises(TypeError, match="argument"):
                be.kernel("elementwise.cu", "relu_forward", np.float32)((1,), (32,), (x,))  # checked
        np.testing.assert_array_equal(be.to_numpy(F.relu(x)), np.maximum(x_np, 0))
        counter_array = be.zeros((), np.int64)
        be.count_step(counter_array)
        assert int(be.to_numpy(counter_array)) == 1


def test_stubbed_gemms_leave_their_output_alone():
    rng = np.random.default_rng(0)
    with gpuconv.backend("emulated") as be:
        x, w = be.asarray(rng.standard_normal((1, 2, 4, 4))), be.asarray(rng.standard_normal((3, 2, 1, 1)))
        with stubbed_kernels(be, gemms=True) as counter, np.errstate(all="ignore"):
            F.conv2d(x, w)
            assert counter.launches == 0  # a 1x1 convolution is one GEMM and nothing else
        assert "conv_gemm" not in vars(be)
        np.testing.assert_allclose(be.to_numpy(F.conv2d(x, w)),
                                   np.einsum("oc,nchw->nohw", be.to_numpy(w)[:, :, 0, 0], be.to_numpy(x)))
