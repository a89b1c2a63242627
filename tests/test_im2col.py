"""im2col / col2im (unfold / fold) on every backend against the float64 loop references."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference
from tests.helpers import assert_close, assert_schedule_independent


def random_config(rng):
    kh, kw = rng.integers(1, 5, size=2)
    dh, dw = rng.integers(1, 4, size=2)
    sh, sw = rng.integers(1, 4, size=2)
    ph, pw = rng.integers(0, 3, size=2)
    # An input at least as large as the dilated kernel minus the padding, sometimes a single row/column.
    h = int(max(1, (kh - 1) * dh + 1 - 2 * ph) + rng.integers(0, 5))
    w = int(max(1, (kw - 1) * dw + 1 - 2 * pw) + rng.integers(0, 5))
    n, c = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 5]))
    return dict(shape=(n, c, h, w), kernel_size=(int(kh), int(kw)), stride=(int(sh), int(sw)),
                padding=(int(ph), int(pw)), dilation=(int(dh), int(dw)))


def ref_args(cfg):
    ph, pw = cfg["padding"]
    return cfg["kernel_size"], cfg["stride"], (ph, ph, pw, pw), cfg["dilation"]


@pytest.mark.parametrize("layout", ["nkl", "knl"])
def test_im2col_and_col2im_match_reference(backend, dtype, layout, rng):
    for _ in range(25):
        cfg = random_config(rng)
        x = rng.standard_normal(cfg["shape"])
        args = dict(kernel_size=cfg["kernel_size"], stride=cfg["stride"], padding=cfg["padding"],
                    dilation=cfg["dilation"])
        expected = reference.im2col(x, *ref_args(cfg))
        cols = F.im2col(gpuconv.asarray(x.astype(dtype)), **args, layout=layout)
        n, k, l_size = expected.shape
        if layout == "knl":
            expected_layout = expected.transpose(1, 0, 2).reshape(k, n * l_size)
        else:
            expected_layout = expected
        assert cols.dtype == dtype
        assert_close(cols, expected_layout, dtype)

        dcols = rng.standard_normal(expected_layout.shape)
        dcols_nkl = dcols if layout == "nkl" else dcols.reshape(k, n, l_size).transpose(1, 0, 2)
        dx = F.col2im(gpuconv.asarray(dcols.astype(dtype)), cfg["shape"][2:], **args, layout=layout)
        assert dx.dtype == dtype
        assert_close(dx, reference.col2im(dcols_nkl, cfg["shape"], *ref_args(cfg)), dtype)


def test_col2im_is_the_adjoint_of_im2col(backend, rng):
    for _ in range(10):
        cfg = random_config(rng)
        args = dict(kernel_size=cfg["kernel_size"], stride=cfg["stride"], padding=cfg["padding"],
                    dilation=cfg["dilation"])
        x = gpuconv.asarray(rng.standard_normal(cfg["shape"]))
        cols = F.im2col(x, **args)
        c = gpuconv.asarray(rng.standard_normal(cols.shape))
        lhs = float(gpuconv.to_numpy((cols * c).sum()))
        rhs = float(gpuconv.to_numpy((x * F.col2im(c, cfg["shape"][2:], **args)).sum()))
        assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_unfold_and_fold_follow_pytorch_argument_order(backend, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    got = F.unfold(gpuconv.asarray(x), (2, 3), 2, 1, (2, 1))  # kernel, dilation, padding, stride
    expected = reference.im2col(x, (2, 3), (2, 1), (1, 1, 1, 1), (2, 2))
    assert_close(got, expected)
    unbatched = F.unfold(gpuconv.asarray(x[0]), (2, 3), 2, 1, (2, 1))
    assert_close(unbatched, expected[0])
    folded = F.fold(gpuconv.asarray(expected), (6, 5), (2, 3), 2, 1, (2, 1))
    assert_close(folded, reference.col2im(expected, x.shape, (2, 3), (2, 1), (1, 1, 1, 1), (2, 2)))
    assert_close(F.fold(gpuconv.asarray(expected[0]), (6, 5), (2, 3), 2, 1, (2, 1)),
                 reference.col2im(expected[:1], (1, 3, 6, 5), (2, 3), (2, 1), (1, 1, 1, 1), (2, 2))[0])


def test_backward_helpers_are_the_adjoints(backend, rng):
    x = rng.standard_normal((2, 2, 5, 4))
    dcols = rng.standard_normal((2, 2 * 3 * 2, 3 * 3))
    dx = F.im2col_backward(gpuconv.asarray(dcols), x.shape, (3, 2), stride=(1, 2), padding=(0, 1))
    assert_close(dx, reference.col2im(dcols, x.shape, (3, 2), (1, 2), (0, 0, 1, 1), (1, 1)))
    assert_close(F.col2im_backward(gpuconv.asarray(x), (3, 2), stride=(1, 2), padding=(0, 1)),
                 reference.im2col(x, (3, 2), (1, 2), (0, 0, 1, 1), (1, 1)))


def test_non_contiguous_input(backend, rng):
    x = rng.standard_normal((3, 4, 9, 8))
    view = gpuconv.asarray(x)[::2, 1:, ::-1, 1::2]
    assert_close(F.im2col(view, 3, padding=1), reference.im2col(x[::2, 1:, ::-1, 1::2], (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)))


def test_kernels_have_no_race(rng):
    if gpuconv.backend.unavailable_reason("emulated"):
        pytest.skip("emulated backend unavailable")
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    with gpuconv.backend("emulated"):
        assert_schedule_independent(lambda: F.im2col(x, 3, stride=2, padding=1, layout="knl"))
        wide = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)  # OW = W = 8: the vectorized v4
        assert_schedule_independent(lambda: F.im2col(wide, 3, padding=1, layout="knl"))
        wide_cols = F.im2col(wide, 3, padding=1)
        assert_schedule_independent(lambda: F.col2im(wide_cols, (7, 8), 3, padding=1))  # W = 8: v4
        valid = rng.standard_normal((2, 2, 7, 10)).astype(np.float32)  # "valid": OW = 8, W = 10, v4 forward
        assert_schedule_independent(lambda: F.im2col(valid, 3, layout="knl"))
        cols = F.im2col(x, 3, stride=2, padding=1)
        assert_schedule_independent(lambda: F.col2im(cols, (7, 6), 3, stride=2, padding=1))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kernel_size=0), ValueError, "kernel_size must be positive"),
    (dict(kernel_size=3, stride=0), ValueError, "stride must be positive"),
    (dict(kernel_size=3, padding=-1), ValueError, "padding must be non-negative"),
    (dict(kernel_size=3, dilation=(1, 0)), ValueError, "dilation must be positive"),
    (dict(kernel_size=(1, 2, 3)), TypeError, "kernel_size must be an int or a pair"),
    (dict(kernel_size=2.5), TypeError, "kernel_size must be an int or a pair"),
    (dict(kernel_size=9), ValueError, "larger than the padded input"),
    (dict(kernel_size=3, layout="nchw"), ValueError, "layout must be"),
])
def test_bad_arguments_are_named(backend, kwargs, error, match):
    x = gpuconv.asarray(np.ones((1, 2, 5, 5), dtype=np.float32))
    with pytest.raises(error, match=match):
        F.im2col(x, **kwargs)


def test_bad_inputs_are_named(backend):
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got shape \(2, 5, 5\)"):
        F.im2col(gpuconv.asarray(np.ones((2, 5, 5))), 3)
    with pytest.raises(TypeError, match="x must be float32 or float64, got int64"):
        F.im2col(gpuconv.asarray(np.ones((1, 2, 5, 5), dtype=np.int64)), 3)
    with pytest.raises(ValueError, match="multiple of kernel_size"):
        F.col2im(gpuconv.asarray(np.ones((1, 7, 9))), (5, 5), 3)
    with pytest.raises(ValueError, match="expected 9 windows"):
        F.col2im(gpuconv.asarray(np.ones((1, 9, 10))), (5, 5), 3)
    with pytest.raises(ValueError, match="positive multiple of 9"):
        F.col2im(gpuconv.asarray(np.ones((9, 10))), (5, 5), 3, layout="knl")


@pytest.mark.parametrize("layout", ["nkl", "knl"])
def test_kernel_versions_and_index_widths_match_reference(kernel_backend, dtype, layout, rng):
    """v1, and v2 in its 32-bit and (forced) 64-bit index variants, on random configurations."""
    for _ in range(12):
        cfg = random_config(rng)
        x = rng.standard_normal(cfg["shape"])
        n, c, h, w = cfg["shape"]
        k, s, (ph, pw), d = cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"]
        expected = reference.im2col(x, *ref_args(cfg))
        rows, l_size = expected.shape[1:]
        out_size = ((h + 2 * ph - d[0] * (k[0] - 1) - 1) // s[0] + 1, (w + 2 * pw - d[1] * (k[1] - 1) - 1) // s[1] + 1)
        dcols = rng.standard_normal(expected.shape)
        want_dx = reference.col2im(dcols, cfg["shape"], *ref_args(cfg))
        if layout == "knl":
            expected = expected.transpose(1, 0, 2).reshape(rows, n * l_size)
            dcols = dcols.transpose(1, 0, 2).reshape(rows, n * l_size)
        for version, bits in ((1, None), (2, 32), (2, 64)):
            cols = kernel_backend.im2col(gpuconv.asarray(x.astype(dtype)), k, s, (ph, pw), d, out_size, layout,
                                         version=version, index_bits=bits)
            assert_close(cols, expected, dtype)
            dx = kernel_backend.col2im(gpuconv.asarray(np.ascontiguousarray(dcols).astype(dtype)), cfg["shape"], k, s,
                                       (ph, pw), d, out_size, layout, version=version, index_bits=bits)
            assert_close(dx, want_dx, dtype)


def test_launcher_picks_the_index_width_and_block_shape():
    from gpuconv.backend.cuda.im2col import index_bits, plane_block
    assert index_bits(10, 2**31 - 1) == 32
    assert index_bits(10, 2**31) == 64
    assert plane_block(49) == (64, 4)  # a 7x7 plane: 4 planes per 256-thread block
    assert plane_block(3136) == (256, 1)
    assert plane_block(1) == (32, 8)


def test_large_planes_and_many_planes(kernel_backend, rng):
    """Planes wider than a block (several blocks along x) and a batch of many small planes (several
    planes per block), with the output written into a slice of a larger buffer as the conv does."""
    for shape, k, s, p in (((1, 2, 23, 31), 3, 1, 1), ((9, 7, 3, 2), 2, 1, 1)):
        x = rng.standard_normal(shape)
        cols = F.im2col(gpuconv.asarray(x), k, stride=s, padding=p)
        assert_close(cols, reference.im2col(x, (k, k), (s, s), (p, p, p, p), (1, 1)))
        dx = F.col2im(cols, shape[2:], k, stride=s, padding=p)
        assert_close(dx, reference.col2im(gpuconv.to_numpy(cols), shape, (k, k), (s, s), (p, p, p, p), (1, 1)))


@pytest.mark.parametrize("layout", ["nkl", "knl"])
def test_vectorized_im2col_matches_reference(kernel_backend, dtype, layout, rng):
    """v3 (16-byte stores) where OW (im2col) or W (col2im) is a multiple of 4: stride, dilation,
    padding, both index widths; the launcher picks it by default there and refuses it elsewhere."""
    from gpuconv.backend.cuda.im2col import column_strides, vector_lanes
    cases = (((2, 3, 9, 8), (3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2, 7, 15), (2, 3), (2, 2), (0, 1), (1, 1)),
             ((1, 4, 12, 12), (3, 3), (1, 1), (2, 2), (2, 2)), ((2, 1, 5, 4), (1, 1), (1, 1), (0, 0), (1, 1)),
             ((2, 2, 9, 16), (3, 2), (2, 4), (1, 0), (2, 3)))
    for shape, k, s, p, d in cases:
        x = rng.standard_normal(shape)
        n, c, h, w = shape
        oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        assert ow % 4 == 0
        expected = reference.im2col(x, k, s, (p[0], p[0], p[1], p[1]), d)
        rows, l_size = expected.shape[1:]
        if layout == "knl":
            expected = expected.transpose(1, 0, 2).reshape(rows, n * l_size)
        X = gpuconv.asarray(x.astype(dtype))
        default = kernel_backend.im2col(X, k, s, p, d, (oh, ow), layout)
        strides = column_strides(layout, n, rows, l_size)
        assert vector_lanes(dtype.itemsize, ow, strides, default) == 16 // dtype.itemsize
        assert_close(default, expected, dtype)
        for bits in (32, 64):
            assert_close(kernel_backend.im2col(X, k, s, p, d, (oh, ow), layout, version=3, index_bits=bits), expected,
                         dtype)
        if w % 4 == 0:  # col2im v3: W a multiple of 4
            dcols = rng.standard_normal(expected.shape)
            dcols_nkl = dcols if layout == "nkl" else dcols.reshape(rows, n, l_size).transpose(1, 0, 2)
            want = reference.col2im(dcols_nkl, shape, k, s, (p[0], p[0], p[1], p[1]), d)
            for version, bits in ((None, None), (3, 32), (3, 64)):
                assert_close(kernel_backend.col2im(gpuconv.asarray(dcols.astype(dtype)), shape, k, s, p, d, (oh, ow),
                                                   layout, version=version, index_bits=bits), want, dtype)
    odd = gpuconv.asarray(rng.standard_normal((1, 1, 5, 5)).astype(dtype))  # OW = 3
    with pytest.raises(ValueError, match="im2col_forward_v3 needs OW"):
        kernel_backend.im2col(odd, (3, 3), (1, 1), (0, 0), (1, 1), (3, 3), layout, version=3)
    with pytest.raises(ValueError, match="im2col_backward_v3 needs W"):
        kernel_backend.col2im(kernel_backend.im2col(odd, (3, 3), (1, 1), (0, 0), (1, 1), (3, 3), layout), (1, 1, 5, 5),
                              (3, 3), (1, 1), (0, 0), (1, 1), (3, 3), layout, version=3)


def _vector_config(rng, sw_choices):
    """A random configuration where v3 runs: W and OW multiples of 4 (so of 2 for float64)."""
    while True:
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        dh, dw = (int(v) for v in rng.integers(1, 4, size=2))
        sh, sw = int(rng.integers(1, 4)), int(rng.choice(sw_choices))
        ph, pw = (int(v) for v in rng.integers(0, 4, size=2))
        h = int(max(1, (kh - 1) * dh + 1 - 2 * ph) + rng.integers(0, 6))
        w = 4 * int(rng.integers(1, 7))
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if oh > 0 and ow > 0 and ow % 4 == 0:
            n, c = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 5]))
            return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow)


def _random_pair(rng, shape, k, s, p, d, layout, dtype):
    """(columns of a random x, the image col2im makes of random columns: both float64 references in
    ``layout``, and x and those columns as ``dtype`` arrays of the current backend)."""
    n = shape[0]
    x = rng.standard_normal(shape)
    pads = (p[0], p[0], p[1], p[1])
    expected = reference.im2col(x, k, s, pads, d)
    rows, l_size = expected.shape[1:]
    dcols = rng.standard_normal(expected.shape)
    want_dx = reference.col2im(dcols, shape, k, s, pads, d)
    if layout == "knl":
        expected = expected.transpose(1, 0, 2).reshape(rows, n * l_size)
        dcols = dcols.transpose(1, 0, 2).reshape(rows, n * l_size)
    return (expected, want_dx, gpuconv.asarray(x.astype(dtype)),
            gpuconv.asarray(np.ascontiguousarray(dcols).astype(dtype)))


@pytest.mark.parametrize("layout", ["nkl", "knl"])
def test_v3_vector_and_scalar_loads_match_reference(kernel_backend, dtype, layout, rng):
    """v3 with its 16-byte loads (im2col: horizontal stride 1 or 2; col2im: stride 1) and with scalar
    loads, both index widths, on random configurations where v3 runs; every padding offset mod 4
    occurs, so every shift of the loaded vectors is exercised. The launcher picks the vector loads
    by default there, and refuses to force them where the rows are not aligned."""
    from gpuconv.backend.cuda.im2col import column_strides, load_lanes
    for trial in range(14):
        shape, k, s, p, d, (oh, ow) = _vector_config(rng, (1, 2) if trial % 2 else (1,))
        n, c, h, w = shape
        expected, want_dx, X, D = _random_pair(rng, shape, k, s, p, d, layout, dtype)
        assert load_lanes(dtype.itemsize, w, X)
        for vector in (None, True, False):
            for bits in (32, 64):
                cols = kernel_backend.im2col(X, k, s, p, d, (oh, ow), layout, version=3, index_bits=bits,
                                             vector_loads=vector)
                assert_close(cols, expected, dtype)
                col2im_vector = vector if s[1] == 1 else (None if vector else vector)
                dx = kernel_backend.col2im(D, shape, k, s, p, d, (oh, ow), layout, version=3, index_bits=bits,
                                           vector_loads=col2im_vector)
                assert_close(dx, want_dx, dtype)
        strides = column_strides(layout, n, c * k[0] * k[1], oh * ow)
        assert load_lanes(dtype.itemsize, ow, D, strides)
    # x one element past a 16-byte boundary: no vector loads by default, and forcing them is refused.
    flat = gpuconv.asarray(rng.standard_normal(1 + 2 * 8 * 8).astype(dtype))
    shifted = flat[1:].reshape(1, 2, 8, 8)
    want = reference.im2col(gpuconv.to_numpy(shifted).astype(np.float64), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    if layout == "knl":
        want = want.transpose(1, 0, 2).reshape(18, 64)
    assert not load_lanes(dtype.itemsize, 8, shifted)
    assert_close(kernel_backend.im2col(shifted, (3, 3), (1, 1), (1, 1), (1, 1), (8, 8), layout, version=3), want,
                 dtype)
    with pytest.raises(ValueError, match="im2col_forward_v3 cannot use 16-byte loads"):
        kernel_backend.im2col(shifted, (3, 3), (1, 1), (1, 1), (1, 1), (8, 8), layout, version=3, vector_loads=True)
    with pytest.raises(ValueError, match="im2col_backward_v3 cannot use 16-byte loads"):
        kernel_backend.col2im(kernel_backend.im2col(flat[1:].reshape(1, 2, 8, 8), (3, 3), (2, 2), (1, 1), (1, 1),
                                                    (4, 4), layout), (1, 2, 8, 8), (3, 3), (2, 2), (1, 1), (1, 1),
                              (4, 4), layout, version=3, vector_loads=True)


def test_launcher_runs_v4_where_its_alignment_allows(rng):
    """The default version (see gpuconv/backend/cuda/im2col.py): v4 at horizontal stride 1
    where its stores are vectors (OW % 4 == 0 for im2col, W % 4 == 0 for col2im) and the array it
    reads is 16-byte aligned with a size that is a multiple of 16 bytes, whatever its row width
    (the "valid" cases); v2 at stride 2, off a 16-byte boundary, or with a ragged size."""
    import gpuconv.backend.emulated as emulated

    def kernels_run(call):
        with emulated.profile() as table:
            call()
        return sorted(table.kernels)

    with gpuconv.backend("emulated") as be:
        flat = rng.standard_normal(1 + 2 * 3 * 16 * 16).astype(np.float32)
        aligned, shifted = flat[:-1].reshape(2, 3, 16, 16), flat[1:].reshape(2, 3, 16, 16)
        assert flat.ctypes.data % 16 == 0
        for x, stride, version in ((aligned, 1, 4), (aligned, 2, 2), (shifted, 1, 2)):
            out = (16 // stride, 16 // stride)
            args = ((3, 3), (stride, stride), (1, 1), (1, 1), out, "knl")
            assert kernels_run(lambda: be.im2col(x, *args)) == [f"im2col_forward_v{version}_i32_f32"]
            cols = be.im2col(x, *args)  # a fresh, aligned array: col2im's choice depends on the stride only
            col2im_version = 4 if stride == 1 else 2
            expected = [f"im2col_backward_v{col2im_version}_i32_f32"]
            assert kernels_run(lambda: be.col2im(cols, x.shape, *args)) == expected
        cols = be.im2col(aligned, (3, 3), (1, 1), (1, 1), (1, 1), (16, 16), "knl")
        flat_cols = np.empty(cols.size + 1, np.float32)
        misaligned_cols = flat_cols[1:].reshape(cols.shape)
        misaligned_cols[...] = cols
        assert kernels_run(lambda: be.col2im(misaligned_cols, aligned.shape, (3, 3), (1, 1), (1, 1), (1, 1),
                                             (16, 16), "knl")) == ["im2col_backward_v2_i32_f32"]
        # "valid" 3x3: v4 forward where OW % 4 == 0 (W = 18), v4 col2im where W % 4 == 0 (W = 56).
        for shape, forward, backward in (((2, 3, 18, 18), 4, 2), ((1, 2, 56, 56), 2, 4), ((1, 1, 5, 6), 2, 2)):
            x = rng.standard_normal(shape).astype(np.float32)  # (1, 1, 5, 6): OW = 4 but 30 elements
            out = (shape[2] - 2, shape[3] - 2)
            args = ((3, 3), (1, 1), (0, 0), (1, 1), out, "nkl")
            assert kernels_run(lambda: be.im2col(x, *args)) == [f"im2col_forward_v{forward}_i32_f32"]
            cols = be.im2col(x, *args)
            assert kernels_run(lambda: be.col2im(cols, shape, *args)) == [f"im2col_backward_v{backward}_i32_f32"]


def _v4_config(rng, side):
    """A random configuration with horizontal stride 1 where v4's stores are vectors: OW % 4 == 0
    (``side`` "forward", any W: "valid" and padded, W often not a multiple of 4) or W % 4 == 0
    ("backward", any OW). Four channels keep every array's size a multiple of 16 bytes."""
    while True:
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        dh, dw = (int(v) for v in rng.integers(1, 4, size=2))
        sh = int(rng.integers(1, 4))
        ph, pw = (int(v) for v in rng.integers(0, 4, size=2))
        if rng.random() < 0.3:
            ph = pw = 0
        h = int(max(1, (kh - 1) * dh + 1 - 2 * ph) + rng.integers(0, 6))
        if side == "forward":
            ow = 4 * int(rng.integers(1, 10))
            w = ow - 2 * pw + dw * (kw - 1)
        else:
            w = 4 * int(rng.integers(1, 10))
            ow = w + 2 * pw - dw * (kw - 1)
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        if oh > 0 and ow > 0 and w > 0:
            n, c = int(rng.integers(1, 3)), 4 * int(rng.integers(1, 3))
            return (n, c, h, w), (kh, kw), (sh, 1), (ph, pw), (dh, dw), (oh, ow)


@pytest.mark.parametrize("layout", ["nkl", "knl"])
def test_v4_matches_reference(kernel_backend, dtype, layout, rng):
    """v4 (each lane loads one aligned vector, shuffles for the neighbour's half) on random
    configurations where its stores are vectors, both index widths: rows of any width and any
    alignment of their start (W and OW not multiples of 4, "valid" and padded, vertical stride and
    dilation), so every lane's shift and every end of a run of lanes occurs. The launcher runs it
    by default there."""
    for trial in range(16):
        side = "forward" if trial % 2 else "backward"
        shape, k, s, p, d, (oh, ow) = _v4_config(rng, side)
        n, c, h, w = shape
        expected, want_dx, X, D = _random_pair(rng, shape, k, s, p, d, layout, dtype)
        versions = ((None, None), (4, 32), (4, 64))
        if side == "forward" or ow % (16 // dtype.itemsize) == 0:
            for version, bits in versions:
                cols = kernel_backend.im2col(X, k, s, p, d, (oh, ow), layout, version=version, index_bits=bits)
                assert_close(cols, expected, dtype)
        if side == "backward" or w % (16 // dtype.itemsize) == 0:
            for version, bits in versions:
                dx = kernel_backend.col2im(D, shape, k, s, p, d, (oh, ow), layout, version=version, index_bits=bits)
                assert_close(dx, want_dx, dtype)


def test_v4_refuses_what_it_cannot_do_and_the_default_falls_back(kernel_backend, dtype, rng):
    """Forcing v4 where its conditions fail raises a ValueError that says which; the default then
    runs v2 and is still right: x off a 16-byte boundary, a ragged size, stride 2, OW or W not a
    multiple of 16 bytes."""
    lanes = 16 // dtype.itemsize
    flat = gpuconv.asarray(rng.standard_normal(1 + 2 * 3 * 10 * 8).astype(dtype))
    shifted = flat[1:].reshape(2, 3, 10, 8)
    # "valid" with a (3, 2) kernel: OW = 2 * lanes, 5 * (2 * lanes + 1) elements, not a multiple of lanes.
    ragged = gpuconv.asarray(rng.standard_normal((1, 1, 5, 2 * lanes + 1)).astype(dtype))
    cases = ((shifted, (3, 3), (1, 1), (1, 1)), (ragged, (3, 2), (1, 1), (0, 0)), (shifted, (3, 3), (2, 2), (1, 1)),
             (gpuconv.asarray(rng.standard_normal((2, 4, 6, 7)).astype(dtype)), (3, 3), (1, 1), (0, 0)))
    for x, k, s, p in cases:
        n, c, h, w = x.shape
        out = ((h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)
        pads = (p[0], p[0], p[1], p[1])
        want = reference.im2col(gpuconv.to_numpy(x).astype(np.float64), k, s, pads, (1, 1))
        assert_close(kernel_backend.im2col(x, k, s, p, (1, 1), out, "nkl"), want, dtype)
        with pytest.raises(ValueError, match="im2col_forward_v4 needs"):
            kernel_backend.im2col(x, k, s, p, (1, 1), out, "nkl", version=4)
        dcols = rng.standard_normal(want.shape)
        # The columns one element past a 16-byte boundary: col2im may not run v4 either.
        D = gpuconv.asarray(np.concatenate([[0.0], dcols.ravel()]).astype(dtype))[1:].reshape(want.shape)
        want_dx = reference.col2im(dcols, x.shape, k, s, pads, (1, 1))
        assert_close(kernel_backend.col2im(D, x.shape, k, s, p, (1, 1), out, "nkl"), want_dx, dtype)
        with pytest.raises(ValueError, match="im2col_backward_v4 needs"):
            kernel_backend.col2im(D, x.shape, k, s, p, (1, 1), out, "nkl", version=4)


def test_v4_runs_its_64_bit_variant_near_the_int_limit(monkeypatch, rng):
    """v4 computes offsets of padding rows past the end of the array it reads: where the arrays fit an
    int but not with that reach, the launcher runs v4's 64-bit variant (v2, which needs no margin,
    keeps 32 bits). The limit is lowered to just above the columns' extent to show it."""
    import gpuconv.backend.cuda.im2col as launcher
    import gpuconv.backend.emulated as emulated
    if gpuconv.backend.unavailable_reason("emulated"):
        pytest.skip("emulated backend unavailable")
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    args = ((3, 3), (1, 1), (1, 1), (1, 1), (16, 16), "knl")
    want = reference.im2col(x.astype(np.float64), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    want = want.transpose(1, 0, 2).reshape(27, 512)
    monkeypatch.setattr(launcher, "INT32_LIMIT", 27 * 512 + 1)  # the columns' extent fits, with v4's reach not
    with gpuconv.backend("emulated") as be:
        for version, name in ((None, "im2col_forward_v4_i64_f32"), (2, "im2col_forward_v2_i32_f32")):
            with emulated.profile() as table:
                cols = be.im2col(x, *args, version=version)
            assert sorted(table.kernels) == [name]
            assert_close(cols, want, np.float32)


def test_gpu_versions_benchmark_runs_on_the_emulator():
    """benchmarks/gpu_im2col_versions.py (meant for a GPU) as a smoke run on the emulated backend:
    every layer and direction gets a row, and the VGG layer (28x28 after shrinking) defaults to v4."""
    import subprocess
    import sys
    from pathlib import Path
    if gpuconv.backend.unavailable_reason("emulated"):
        pytest.skip("emulated backend unavailable")
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(repo / "benchmarks" / "gpu_im2col_versions.py"), "--backend",
                             "emulated", "--batch", "1", "--shrink", "8", "--repeats", "1"], capture_output=True,
                            text=True, cwd=repo, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| im2col |", "| col2im |"))]
    assert len(rows) == 14
    assert rows[-2].endswith("| v4 |") and rows[-1].endswith("| v4 |")
