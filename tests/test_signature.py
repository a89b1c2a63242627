"""Parsing extern "C" __global__ signatures."""

from __future__ import annotations

import numpy as np
import pytest

from gpuconv.backend.kernel_source import kernel_files, read_source
from gpuconv.backend.signature import parse_signatures


def test_parses_qualifiers_pointers_and_launch_bounds():
    source = '''
    // extern "C" __global__ void commented_out(int x)
    extern "C" __global__ __launch_bounds__(256, 2) void k1(const float* __restrict__ x, double *y,
                                                           long long n, unsigned int m, const int k) {}
    extern "C" __global__ void k2() {}
    /* extern "C" __global__ void also_commented(float* x) */
    '''
    sigs = parse_signatures(source)
    assert sorted(sigs) == ["k1", "k2"]
    params = sigs["k1"].params
    assert [(p.name, p.dtype, p.pointer) for p in params] == [
        ("x", np.dtype(np.float32), True), ("y", np.dtype(np.float64), True), ("n", np.dtype(np.int64), False),
        ("m", np.dtype(np.uint32), False), ("k", np.dtype(np.int32), False)]
    assert sigs["k2"].params == ()


def test_unsupported_parameter_types_are_named():
    with pytest.raises(ValueError, match=r"kernel k parameter h: unsupported type '__half'"):
        parse_signatures('extern "C" __global__ void k(__half h) {}', "x.cu")
    with pytest.raises(ValueError, match="only scalars and single pointers"):
        parse_signatures('extern "C" __global__ void k(float** p) {}', "x.cu")


def test_every_kernel_file_parses_with_entry_points_per_dtype():
    for path in kernel_files():
        name, text = read_source(path)
        sigs = parse_signatures(text, name)
        assert sigs, f"{name} has no extern \"C\" __global__ entry point"
        for kernel in sigs:
            # Integer-only kernels (a target check, a step counter) name their integer type instead.
            assert kernel.endswith(("_f32", "_f64", "_i32", "_i64")), \
                f"{name}: {kernel} does not follow <op>_<direction>_<dtype>"
