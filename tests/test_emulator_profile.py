"""The emulator's memory-access profile (gpuconv.backend.emulated.profile) on access patterns whose
costs are known: coalesced, strided and broadcast global loads, conflict-free and 32-way
conflicting shared memory; and on a real kernel through the backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gpuconv
import gpuconv.backend.emulated as emulated
import gpuconv.functional as F
from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.emulated.loader import EmulatedModule

pytestmark = [pytest.mark.emulated,
              pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")]

SOURCE = Path(__file__).parent / "emu_kernels" / "access_patterns.cu"


@pytest.fixture(scope="module")
def patterns():
    return EmulatedModule(SOURCE)


def test_global_sectors_per_request(patterns, rng):
    x = rng.standard_normal(32 * 256).astype(np.float32)
    y = np.zeros(256, np.float32)
    with emulated.profile() as table:
        for name in ("copy_coalesced_f32", "gather_strided_f32", "broadcast_f32"):
            patterns.get_function(name)(4, 64, (x, y))
    requests = 4 * 64 // 32  # warps launched per kernel, one load and one store each
    copy, strided, broadcast = table["copy_coalesced_f32"], table["gather_strided_f32"], table["broadcast_f32"]
    assert copy.counters["global_load"] == dict(requests=requests, transactions=4 * requests, ideal=4 * requests,
                                                bytes=128 * requests)
    assert copy.per_request("global_store") == 4 and copy.efficiency("global_load") == 1.0
    assert strided.per_request("global_load") == 32 and strided.ideal_per_request("global_load") == 4
    assert strided.efficiency("global_load") == pytest.approx(4 / 32)
    assert broadcast.per_request("global_load") == 1 and broadcast.per_request("global_store") == 4
    assert copy.launches == 1 and copy.counters["shared_load"]["requests"] == 0
    np.testing.assert_array_equal(y, x[0])  # profiling leaves results alone


def test_shared_bank_conflicts(patterns, rng):
    x = rng.standard_normal(32 * 32).astype(np.float32)
    y = np.zeros(32, np.float32)
    with emulated.profile() as table:
        patterns.get_function("shared_rows_and_columns_f32")(1, 32, (x, y))
    k = table["shared_rows_and_columns_f32"]
    assert k.counters["shared_store"] == dict(requests=32, transactions=32, ideal=32, bytes=32 * 128)
    assert k.counters["shared_load"]["requests"] == 32
    assert k.counters["shared_load"]["transactions"] == 32 * 32  # every lane in the same bank
    assert k.bank_conflicts() == 32 * 31
    np.testing.assert_allclose(y, x.reshape(32, 32).sum(1), rtol=1e-5)


@pytest.mark.parametrize("name", ["copy_float4_f32", "assign_float4_f32"])
def test_a_float4_access_is_one_request(patterns, rng, name):
    """16 bytes per lane, consecutive: one request of 16 sectors, the ideal (not 4 scalar requests)."""
    x = rng.standard_normal(4 * 256).astype(np.float32)
    y = np.zeros_like(x)
    with emulated.profile() as table:
        patterns.get_function(name)(2, 128, (x, y))
    requests = 2 * 128 // 32
    k = table[name]
    for kind in ("global_load", "global_store"):
        assert k.counters[kind] == dict(requests=requests, transactions=16 * requests, ideal=16 * requests,
                                        bytes=512 * requests), kind
    np.testing.assert_array_equal(y, x)


def test_shared_float4_phases(patterns, rng):
    """128-bit shared accesses are served a quarter-warp at a time: consecutive float4 need 4
    wavefronts (no conflict); a stride of two float4 puts each phase's lanes on 16 banks twice: 8."""
    x = rng.standard_normal(64 * 4).astype(np.float32)
    y = np.zeros(32, np.float32)
    with emulated.profile() as table:
        patterns.get_function("shared_float4_f32")(1, 32, (x, y))
    k = table["shared_float4_f32"]
    assert k.counters["shared_store"] == dict(requests=2, transactions=8, ideal=8, bytes=1024)
    assert k.counters["shared_load"] == dict(requests=1, transactions=8, ideal=4, bytes=512)
    np.testing.assert_allclose(y, x.reshape(32, 8)[:, :4].sum(1), rtol=1e-5)


def test_profile_of_a_backend_kernel(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with gpuconv.backend("emulated"), emulated.profile() as table:
        cols = F.im2col(x, 3, padding=1)
    (name,) = table.kernels  # one launch: the im2col version the launcher picked for this shape
    assert name.startswith("im2col_forward") and name.endswith("_f32")
    k = table[name]
    assert k.filename == "im2col.cu" and k.launches == 1
    assert k.counters["global_store"]["bytes"] == cols.nbytes  # each column element written once
    # Padding is not read; v3's 16-byte loads (stride 1) read each vector for two neighbouring lanes.
    assert 0 < k.counters["global_load"]["bytes"] <= 2 * cols.nbytes
    markdown = table.to_markdown()
    assert markdown.splitlines()[2].startswith(f"| {name} | im2col.cu | 1 |")
    assert markdown.splitlines()[2].endswith(f"| {k.divisions_32} / {k.divisions_64} |")


def test_static_integer_division_counts(patterns):
    """Divisions by run-time values are counted per width in the kernel and its callees; a
    division by a constant (a multiplication after compilation, on a GPU too) is not."""
    x = np.arange(1, 65, dtype=np.int64)
    with emulated.profile() as table:
        patterns.get_function("divisions_i64")(1, 32, (x, np.int32(7), np.int64(5)))
    k = table["divisions_i64"]
    assert (k.divisions_32, k.divisions_64) == (2, 1)
    t = np.arange(32)
    np.testing.assert_array_equal(x[:32], np.arange(1, 33) + t // 7 + t % 7 + t // 5 + t // 3 + 1)


def test_unknown_kernel_names_the_profiled_ones(patterns):
    with emulated.profile() as table:
        patterns.get_function("broadcast_f32")(1, 32, (np.zeros(1, np.float32), np.zeros(32, np.float32)))
    with pytest.raises(KeyError, match=r"no launch of kernel 'nope' was profiled; profiled: \['broadcast_f32'\]"):
        table["nope"]
