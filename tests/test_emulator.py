"""The CUDA-on-CPU emulator (kernels/emu/) on its own test kernels (tests/emu_kernels/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.emulated.loader import EmulatedModule, sanitizing
from gpuconv.backend.errors import KernelCompileError, KernelLaunchError
from tests.helpers import assert_schedule_independent, assert_sums_close, emulator_schedule

pytestmark = [pytest.mark.emulated,
              pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")]

CASES = Path(__file__).parent / "emu_kernels" / "emulator_cases.cu"


@pytest.fixture(scope="module", params=["fibers", "ucontext"], ids=["emulated-fibers", "emulated-ucontext"])
def module(request):
    """The test kernels, with the hand-written x86-64 context switch and with the ucontext fallback."""
    flags = ("-DEMU_USE_UCONTEXT",) if request.param == "ucontext" else ()
    return EmulatedModule(CASES, extra_flags=flags)


@pytest.fixture(autouse=True)
def plain_build():
    """These tests are about the plain emulator; some kernels here are wrong on purpose and would
    stop at the sanitizer's first report (tests/test_emulator_sanitizer.py covers that mode)."""
    with sanitizing(False):
        yield


def nan_like(shape, dtype=np.float32):
    return np.full(shape, np.nan, dtype=dtype)


def test_tiled_matmul_with_shared_memory_and_barriers(module, rng):
    m, n, k = 13, 11, 21
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    kernel = module.get_function("tiled_matmul_f32")

    def run():
        c = nan_like((m, n))
        kernel(((n + 7) // 8, (m + 7) // 8), (8, 8), (a, b, c, np.int32(m), np.int32(n), np.int32(k)))
        return c

    c = assert_schedule_independent(run)[0]
    assert_sums_close(c, a.astype(np.float64) @ b, k, np.abs(a).astype(np.float64) @ np.abs(b), np.float32, "c")


@pytest.mark.parametrize("dtype, suffix", [(np.float32, "f32"), (np.float64, "f64")])
def test_block_reduction_with_warp_shuffles(module, rng, dtype, suffix):
    x = rng.standard_normal(10_000).astype(dtype)
    kernel = module.get_function(f"block_sum_{suffix}")

    def run():
        partial = nan_like(7, dtype)
        kernel((7,), (128,), (x, partial, np.int64(x.size)))
        return partial

    partial = assert_schedule_independent(run)[0]
    assert partial.sum() == pytest.approx(x.astype(np.float64).sum(), rel=1e-5 if dtype == np.float32 else 1e-12)


def test_extern_shared_memory_sized_by_the_launch(module):
    x = np.arange(100, dtype=np.float32)
    y = nan_like(100)
    module.get_function("reverse_blocks_f32")((4,), (32,), (x, y, np.int32(100)), shared_mem=32 * 4)
    expected = np.concatenate([x[i:i + 32][::-1] for i in range(0, 96, 32)])
    np.testing.assert_array_equal(y[:96], expected)
    assert np.isnan(y[96:]).all()  # the last block is partial: those threads wrote nothing


def test_early_return_before_a_barrier(module, rng):
    x = rng.standard_normal(64).astype(np.float32)
    y = nan_like(64)
    module.get_function("early_return_f32")((1,), (64,), (x, y, np.int32(40)))
    np.testing.assert_array_equal(y[:40], np.roll(2 * x[:40], -1))
    assert np.isnan(y[40:]).all()


def test_race_is_flagged_by_the_schedule_check(module, rng):
    x = rng.standard_normal(64).astype(np.float32)
    kernel = module.get_function("racy_neighbour_f32")

    def run():
        y = nan_like(64)
        kernel((1,), (64,), (x, y))
        return y

    with pytest.raises(AssertionError, match="race"):
        assert_schedule_independent(run)
    # Forward order reads slots nobody wrote yet: the poison shows.
    with emulator_schedule("forward"):
        assert np.isnan(run()[:63]).all()


def test_divergent_barriers_raise_with_both_sites(module):
    y = nan_like(64)
    with pytest.raises(KernelLaunchError, match=r"divergent __syncthreads: .*emulator_cases\.cu:\d+ but .*"
                                                r"emulator_cases\.cu:\d+"):
        module.get_function("divergent_barrier_f32")((1,), (64,), (y,))
    # The module stays usable after a failed launch.
    test_early_return_before_a_barrier(module, np.random.default_rng(1))


@pytest.mark.parametrize("schedule", ["forward", "reverse"])
def test_shuffle_with_exited_lanes_raises(module, schedule):
    y = np.zeros(32, np.float32)
    with emulator_schedule(schedule), pytest.raises(
            KernelLaunchError, match=r"emulator_cases\.cu:\d+: .*(has exited|never arrive)"):
        module.get_function("shuffle_after_exit_f32")((1,), (32,), (y,))


def test_shared_memory_is_poisoned_before_each_block(module):
    y = nan_like(64)
    module.get_function("stale_shared_f32")((2,), (32,), (y,))
    np.testing.assert_array_equal(y[:32], 1.0)
    assert np.isnan(y[32:]).all(), "block 1 read shared memory that only block 0 wrote"


def test_intrinsics_atomics_ballot_and_3d_indices(module, rng):
    x = rng.standard_normal(128).astype(np.float32)
    ints = np.zeros(6, np.int32)
    ints[2::3] = -10**9
    floats = np.zeros(4, np.float32)
    doubles = np.zeros(2)
    ballots = np.zeros(4, np.uint32)
    module.get_function("intrinsics_probe")((2,), (8, 4, 2), (x, ints, floats, doubles, ballots))
    blocks = x.reshape(2, 64)
    np.testing.assert_array_equal(ints[0::3], (blocks > 0).sum(1))
    np.testing.assert_array_equal(ints[1::3], [64, 64])
    np.testing.assert_array_equal(ints[2::3], (blocks * 1000).astype(np.int32).max(1))
    np.testing.assert_allclose(floats[:2], blocks.sum(1), rtol=1e-5)
    np.testing.assert_allclose(doubles, blocks.astype(np.float64).sum(1), rtol=1e-6)
    expected_ballots = [sum(1 << i for i in range(32) if row[i] > 0) for row in blocks.reshape(4, 32)]
    np.testing.assert_array_equal(ballots, expected_ballots)
    # thread 5: shfl_up from lane 4, shfl from lane 3 (width 8), rsqrtf(4), __expf(0), fmaxf(v, 0)
    np.testing.assert_allclose(floats[2:], blocks[:, 4] + blocks[:, 3] + 0.5 + 1.0 + np.maximum(blocks[:, 5], 0),
                               rtol=1e-5)


def test_shared_memory_is_reread_after_a_barrier(module):
    y = nan_like(64)
    module.get_function("reread_after_barrier_f32")((1,), (64,), (y,))
    np.testing.assert_array_equal(y, 3.0)


def test_float64_array_for_a_float_pointer_is_rejected(module):
    with pytest.raises(TypeError, match=r"kernel divergent_barrier_f32, parameter float32\* y: expected dtype "
                                        r"float32, got float64"):
        module.get_function("divergent_barrier_f32")((1,), (64,), (np.zeros(64),))


def test_python_scalars_and_wrong_counts_are_rejected(module):
    x, y = np.zeros(64, np.float32), np.zeros(64, np.float32)
    kernel = module.get_function("early_return_f32")
    with pytest.raises(TypeError, match=r"parameter int32 active: expected a NumPy int32 scalar .* got Python float"):
        kernel((1,), (64,), (x, y, 40.0))
    with pytest.raises(TypeError, match=r"parameter int32 active: expected a NumPy int32 scalar .* got int64"):
        kernel((1,), (64,), (x, y, np.int64(40)))
    with pytest.raises(TypeError, match="takes 3 arguments"):
        kernel((1,), (64,), (x, y))
    with pytest.raises(TypeError, match="C-contiguous"):
        kernel((1,), (32,), (np.zeros(128, np.float32)[::2], y, np.int32(4)))


def test_launch_limits_are_enforced(module):
    y = np.zeros(64, np.float32)
    kernel = module.get_function("divergent_barrier_f32")
    with pytest.raises(KernelLaunchError, match="exceeds CUDA's limits"):
        kernel((1,), (2048,), (y,))
    with pytest.raises(KernelLaunchError, match="shared memory"):
        module.get_function("reverse_blocks_f32")((1,), (32,), (y, y, np.int32(0)), shared_mem=64 * 1024)


def test_compile_error_names_file_and_line(tmp_path):
    source = tmp_path / "broken.cu"
    source.write_text('#include "common.cuh"\n\nextern "C" __global__ void k(float* x) {\n    x[0] = undefined_name;\n}\n')
    with pytest.raises(KernelCompileError, match=r"broken\.cu:4") as info:
        EmulatedModule(source)
    assert info.value.filename == "broken.cu" and info.value.line == 4
    assert "undefined_name" in info.value.log


def test_unknown_kernel_name(module):
    with pytest.raises(AttributeError, match="no extern \"C\" __global__ kernel named 'nope'"):
        module.get_function("nope")


def test_bad_schedule_setting(module):
    y = np.zeros(64, np.float32)
    with emulator_schedule("sideways"), pytest.raises(ValueError, match="GPUCONV_EMU_SCHEDULE"):
        module.get_function("divergent_barrier_f32")((1,), (64,), (y,))
