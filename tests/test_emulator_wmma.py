"""The emulator's nvcuda::wmma (kernels/emu/wmma.h) against NumPy, on tests/emu_kernels/wmma_cases.cu."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpuconv.backend.cuda.tf32 import round_to_tf32
from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.emulated.loader import EmulatedModule, sanitizing
from gpuconv.backend.errors import KernelLaunchError
from tests.helpers import assert_schedule_independent, assert_sums_close

pytestmark = [pytest.mark.emulated,
              pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")]

CASES = Path(__file__).parent / "emu_kernels" / "wmma_cases.cu"


@pytest.fixture(scope="module")
def module():
    return EmulatedModule(CASES)


def _truncate_to_tf32(a):
    return (np.ascontiguousarray(a, np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


@pytest.mark.parametrize("layout", ["rr", "cc"])
@pytest.mark.parametrize("round_inputs", [True, False], ids=["rounded", "unrounded"])
def test_mma_matches_numpy_on_tf32_inputs(module, rng, layout, round_inputs):
    a = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal((8, 16)).astype(np.float32)
    c = rng.standard_normal((16, 16)).astype(np.float32)
    order = "C" if layout == "rr" else "F"  # the kernel reads and writes column-major in "cc"
    kernel = module.get_function(f"wmma_mma_{layout}")

    def run():
        d = np.full(256, np.nan, np.float32)
        kernel((1,), (32,), (a.ravel(order), b.ravel(order), c.ravel(order), d, np.int32(round_inputs)))
        return d.reshape((16, 16), order=order)

    d = assert_schedule_independent(run)[0]
    # Inputs not converted by the kernel are read as TF32 by dropping their low bits.
    convert = round_to_tf32 if round_inputs else _truncate_to_tf32
    expected = convert(a).astype(np.float64) @ convert(b) + c
    magnitude = np.abs(convert(a)).astype(np.float64) @ np.abs(convert(b)) + np.abs(c)
    assert_sums_close(d, expected, a.shape[1] + 1, magnitude, np.float32, "d")
    # TF32 is visible: full float32 inputs give a product further away than that tolerance.
    assert np.abs(d - (a.astype(np.float64) @ b + c)).max() > 1e-4


def test_float_to_tf32_rounds_as_the_numpy_emulation(module, rng):
    x = np.concatenate([rng.standard_normal(500).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 500),
                        np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 3.4e38, 1e-40], np.float32)]).astype(np.float32)
    # exact ties (the 13 dropped bits are 1000000000000) round away from zero
    ties = (np.arange(1, 41, dtype=np.uint32) << 13 | np.uint32(0x1000)).view(np.float32)
    one_and_a_tie = (np.float32(1.0).view(np.uint32) | np.uint32(0x1000)).reshape(1).view(np.float32)
    x = np.concatenate([x, ties, -ties, one_and_a_tie])
    y = np.empty_like(x)
    module.get_function("wmma_round")((1,), (64,), (x, y, np.int32(x.size)))
    np.testing.assert_array_equal(y.view(np.uint32), round_to_tf32(x).view(np.uint32))


def test_fragment_layout_is_scrambled_but_complete(module):
    a = np.arange(128, dtype=np.float32)
    out = np.full(128, np.nan, np.float32)
    module.get_function("wmma_layout")((1,), (32,), (a, out))
    assert sorted(out.tolist()) == a.tolist()  # every element in exactly one lane
    assert not np.array_equal(out, a)  # not row-major by lane
    assert not np.array_equal(out, a.reshape(16, 8).T.ravel())  # nor column-major


def test_reading_another_lanes_store_needs_syncwarp(module, rng):
    """The plain build shows the stale read (sanitizer mode reports the race: tested below)."""
    c = rng.standard_normal(256).astype(np.float32)
    kernel = module.get_function("wmma_store_then_read")
    out = np.full(32, np.nan, np.float32)
    with sanitizing(False):
        kernel((1,), (32,), (c, out, np.int32(1)))
        np.testing.assert_array_equal(out, c[255 - np.arange(32)])
        kernel((1,), (32,), (c, out, np.int32(0)))
    assert np.isnan(out).any()  # a lane read shared memory that its writer had not stored yet


def test_a_partial_warp_cannot_run_a_collective(module):
    c = np.zeros(256, np.float32)
    with pytest.raises(KernelLaunchError, match=r"wmma_cases\.cu:\d+: .*needs all 32 lanes of the warp"):
        module.get_function("wmma_store_then_read")((1,), (16,), (c, np.zeros(32, np.float32), np.int32(1)))


# ---- sanitizer mode: the fragments' loads and stores are the kernel's accesses, the emulator's own
# work (the warp's fragment exchange in mma_sync) is not ------------------------------------------
def _line_of(text: str) -> str:
    """A regex for 'wmma_cases.cu:<line>' of the first line of the source containing ``text``."""
    for number, line in enumerate(CASES.read_text().splitlines(), start=1):
        if text in line:
            return rf"wmma_cases\.cu:{number}\b"
    raise AssertionError(f"no line of {CASES.name} contains {text!r}")


def test_mma_runs_clean_and_identical_in_sanitizer_mode(module, rng):
    a, b, c = (rng.standard_normal(n).astype(np.float32) for n in (128, 128, 256))
    kernel = module.get_function("wmma_mma_rr")
    results = []
    for mode in (False, True):
        d = np.full(256, np.nan, np.float32)
        with sanitizing(mode):
            kernel((1,), (32,), (a, b, c, d, np.int32(1)))
        results.append(d)
    assert not np.isnan(results[0]).any()
    np.testing.assert_array_equal(results[1], results[0])


def test_a_fragment_load_past_the_end_is_reported_at_the_callers_line(module):
    a = np.arange(127, dtype=np.float32)  # one element short of the 16x8 tile
    with sanitizing(True), pytest.raises(
            KernelLaunchError, match=r"memcheck: invalid read of 4 bytes at " + _line_of("load_matrix_sync(fa, a, 8)") +
            r".* by thread \(\d+,0,0\) of block \(0,0,0\): .* 0 bytes past the end of argument 'a'"):
        module.get_function("wmma_layout")((1,), (32,), (a, np.zeros(128, np.float32)))


def test_a_fragment_store_read_by_another_lane_without_syncwarp_is_a_race(module, rng):
    c = rng.standard_normal(256).astype(np.float32)
    kernel = module.get_function("wmma_store_then_read")
    with sanitizing(True):
        kernel((1,), (32,), (c, np.zeros(32, np.float32), np.int32(1)))  # with __syncwarp: clean
        store, read = _line_of("store_matrix_sync(tile"), _line_of("out[threadIdx.x] = tile[")
        with pytest.raises(KernelLaunchError, match=rf"racecheck: \S+ hazard on shared array '[^']*tile'.*"
                                                    rf"({store}.*{read}|{read}.*{store})"):
            kernel((1,), (32,), (c, np.zeros(32, np.float32), np.int32(0)))
