"""The convolution-algorithm registry (gpuconv.functional.conv_algos): an algorithm registered from
outside, with no change to any dispatch code, is run by F.conv2d and F.conv2d_backward, chosen by
``auto`` (through the heuristic and through the autotuner), timed by ``gpuconv-bench conv``, listed
by ``gpuconv-bench list`` and counted by the memory estimator; names that are not registered are
refused with the list of those that are."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import memory, nn
from gpuconv.bench import cli
from gpuconv.bench import conv as conv_bench
from gpuconv.bench import listing
from gpuconv.functional import conv_algo, conv_algos, conv_tune
from gpuconv.functional.conv_algos.im2col import column_plan
from tests import reference, test_conv_tune
from tests.helpers import assert_close
from tests.test_conv_tune import FakeTimer

tune_cache = test_conv_tune.tune_cache  # the autotuner's fixture: an empty cache folder

X_SHAPE, W_SHAPE = (4, 3, 8, 8), (8, 3, 3, 3)


class OneImageIm2col(conv_algos.ConvAlgorithm):
    """im2col one image at a time, whatever the workspace limit (a low-memory im2col): its plan
    differs from im2col's whenever the batch has more than one image, so what it reports can be told
    apart from what im2col reports. It refuses grouped convolutions (to exercise ``applies``) and
    records each call of its methods (direction, chunk)."""

    name = "one_image_im2col"
    description = "im2col, one image per chunk (a test's algorithm)"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.planned: list[str] = []

    def unsupported_reason(self, g, direction):
        return None if g.groups == 1 else f"needs groups=1 ({direction}), got groups={g.groups}"

    def plan(self, g, direction, itemsize, limit=None):
        self.planned.append(direction)
        return column_plan(g, direction, itemsize, limit=1)

    def forward(self, be, x, weight, bias, g, plan):
        self.calls.append(("forward", plan.chunk))
        return be.conv2d_im2col_forward(x, weight, bias, g, plan.chunk)

    def backward_data(self, be, dy, weight, g, plan):
        self.calls.append(("backward_data", plan.chunk))
        return be.conv2d_im2col_backward_data(dy, weight, g, plan.chunk)

    def backward_weight(self, be, dy, x, g, plan):
        self.calls.append(("backward_weight", plan.chunk))
        return be.conv2d_im2col_backward_weight(dy, x, g, plan.chunk)


@pytest.fixture
def toy():
    """The toy algorithm, registered for the test and unregistered after it."""
    algorithm = conv_algos.register(OneImageIm2col())
    try:
        yield algorithm
    finally:
        conv_algos.unregister(algorithm.name)
    assert algorithm.name not in conv_algos.names()


def _arrays(rng):
    x, w, b = rng.standard_normal(X_SHAPE), rng.standard_normal(W_SHAPE), rng.standard_normal(W_SHAPE[0])
    dy = rng.standard_normal((X_SHAPE[0], W_SHAPE[0]) + X_SHAPE[2:])
    return x, w, b, dy


def _check_results(toy, x, w, b, dy, algo, dtype=np.float64):
    X, W, B, DY = (gpuconv.asarray(a.astype(dtype)) for a in (x, w, b, dy))
    assert_close(F.conv2d(X, W, B, padding=1, algo=algo), reference.conv2d(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1))
    expected = reference.conv2d_backward(dy, x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    for actual, want in zip(F.conv2d_backward(DY, X, W, padding=1, algo=algo), expected, strict=True):
        assert_close(actual, want)
    # one image per chunk in each direction, whatever the workspace limit says
    assert toy.calls == [("forward", 1), ("backward_data", 1), ("backward_weight", 1)]


def test_a_registered_algorithm_runs_by_name_on_every_backend(backend, toy, rng):
    _check_results(toy, *_arrays(rng), algo=toy.name)


def test_auto_runs_it_when_the_backends_rule_picks_it(backend, toy, rng, monkeypatch):
    monkeypatch.setattr(gpuconv.backend.get_backend(), "conv_heuristic", lambda g, direction: toy.name)
    assert [F.choose_algo(X_SHAPE, W_SHAPE, padding=1, direction=d) for d in F.DIRECTIONS] == [toy.name] * 3
    _check_results(toy, *_arrays(rng), algo="auto")


def test_the_autotuner_times_it_and_keeps_it_when_fastest(backend, toy, tune_cache, rng):
    x, w, b, dy = _arrays(rng)
    others = [a for a in conv_algos.names() if a != toy.name]
    timer = FakeTimer({**dict.fromkeys(others, 2.0), toy.name: 1.0})
    with conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
        y = F.conv2d(gpuconv.asarray(x), gpuconv.asarray(w), gpuconv.asarray(b), padding=1)
        # every registered algorithm that applies (gemm needs a 1x1 kernel), the toy last
        assert timer.calls == ["im2col", "direct", "implicit_gemm", toy.name]
        assert F.choose_algo(X_SHAPE, W_SHAPE, padding=1, dtype=np.float64) == toy.name
    assert_close(y, reference.conv2d(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1))
    assert toy.calls == [("forward", 1)] * 2  # timed once, then run as the winner
    # A winner no longer registered is not offered (the cache file outlives the registration).
    untuned = F.choose_algo(X_SHAPE, W_SHAPE, padding=1, dtype=np.float64)
    conv_algos.unregister(toy.name)
    try:
        with conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
            assert F.choose_algo(X_SHAPE, W_SHAPE, padding=1, dtype=np.float64) == untuned
            assert F.conv2d_workspace_bytes(X_SHAPE, W_SHAPE, np.float64, padding=1, direction="forward") == \
                F.conv2d_workspace_bytes(X_SHAPE, W_SHAPE, np.float64, padding=1, algo=untuned, direction="forward")
    finally:
        conv_algos.register(toy)


def test_the_autotuner_leaves_it_out_where_it_does_not_apply(toy):
    grouped = F.conv_geometry((2, 4, 6, 6), (4, 2, 3, 3), 1, 1, 1, 2)
    assert toy.name in conv_algo.candidates(F.conv_geometry(X_SHAPE, W_SHAPE, 1, 1, 1, 1))
    assert toy.name not in conv_algo.candidates(grouped)
    assert not toy.applies(grouped) and toy.applies(grouped._replace(groups=1, c_out=4))
    with pytest.raises(ValueError, match=r"algo='one_image_im2col' needs groups=1 \(forward\), got groups=2"):
        F.conv2d(np.ones((2, 4, 6, 6)), np.ones((4, 2, 3, 3)), padding=1, groups=2, algo=toy.name)
    assert toy.calls == []


def test_bench_conv_lists_and_times_it(toy, tmp_path):
    assert conv_bench.algorithms() == list(conv_algo.ALGOS[1:]) + [toy.name]
    listed = {r["case"]: r for r in listing.rows(gpuconv.backend.get_backend()) if r["kind"] == "algorithm"}
    assert listed[toy.name]["detail"] == toy.description
    out = tmp_path / "report.json"
    status = cli.main(["conv", "--shape", "2,3,8,8,8,3,3,1,1", "--backend", "numpy", "--algos", f"{toy.name},auto",
                       "--format", "json", "--no-torch", "--repeats", "1", "--output", str(out)])
    assert status == 0
    rows = json.loads(out.read_text())["rows"]
    mine = [r for r in rows if r["impl"] == toy.name]
    assert sorted(r["direction"] for r in mine) == sorted(F.DIRECTIONS)
    assert all(r["status"] == "ok" for r in mine), mine
    assert {direction for direction, _ in toy.calls} == set(F.DIRECTIONS)


@pytest.mark.parametrize("target", ["cupy", "numpy"])
def test_the_memory_estimator_counts_its_workspace(toy, target):
    """The estimator runs the toy (its plan and its three directions) on shapes only, and the conv
    layer's temporaries are what the toy's one-image chunks allocate, not im2col's whole batch."""
    def conv_row(algo):
        # A 1x1 conv first, so that the measured conv's input needs a gradient (backward data runs).
        model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 8, 3, padding=1, algo=algo))
        report = memory.estimate(model, X_SHAPE, loss="mse", backend=target, dtype=np.float32)
        (row,) = [r for r in report.rows if r.name == "1"]
        return row.transient_bytes

    mine, im2col = conv_row(toy.name), conv_row("im2col")
    assert set(toy.planned) == set(F.DIRECTIONS)
    assert {direction for direction, _ in toy.calls} == set(F.DIRECTIONS)
    assert all(chunk == 1 for _, chunk in toy.calls)
    g = F.conv_geometry(X_SHAPE, W_SHAPE, 1, 1, 1, 1)
    if target == "cupy":  # the kernel backends: exactly the toy's plan
        assert mine == max(toy.workspace(g, d, 4) for d in F.DIRECTIONS)
        assert im2col == max(conv_algos.get("im2col").workspace(g, d, 4) for d in F.DIRECTIONS)
    assert mine < im2col
    assert F.conv2d_workspace_bytes(X_SHAPE, W_SHAPE, np.float32, padding=1, algo=toy.name) == \
        max(toy.workspace(g, d, 4) for d in F.DIRECTIONS)


def test_unknown_names_are_refused_with_the_registered_ones(toy):
    listed = r"'auto', 'im2col', 'direct', 'gemm', 'implicit_gemm', 'one_image_im2col'"
    with pytest.raises(ValueError, match=rf"algo must be one of {listed} or a mapping .* got 'nope'"):
        F.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1)), algo="nope")
    with pytest.raises(ValueError, match=rf"algo\['backward_data'\] must be one of {listed}, got 'nope'"):
        F.conv2d_workspace_bytes((1, 1, 3, 3), (1, 1, 1, 1), np.float32, algo={"backward_data": "nope"})
    registered = r"'im2col', 'direct', 'gemm', 'implicit_gemm', 'one_image_im2col'"
    for call in (conv_algos.get, conv_algos.unregister):
        with pytest.raises(ValueError, match=rf"unknown conv algorithm 'nope'; the registered ones are {registered}$"):
            call("nope")


def test_register_refuses_what_would_be_ambiguous(toy):
    with pytest.raises(ValueError, match="'one_image_im2col' is already registered"):
        conv_algos.register(OneImageIm2col())
    auto = OneImageIm2col()
    auto.name = "auto"
    with pytest.raises(ValueError, match="'auto' is reserved"):
        conv_algos.register(auto)
    nameless = OneImageIm2col()
    nameless.name = ""
    with pytest.raises(ValueError, match="non-empty identifier, got ''"):
        conv_algos.register(nameless)
    with pytest.raises(TypeError, match="must be a gpuconv.functional.conv_algos.ConvAlgorithm, got builtins.str"):
        conv_algos.register("im2col")
    assert conv_algos.names() == conv_algo.ALGOS[1:] + (toy.name,)


def test_the_built_in_algorithms_report_what_plan_gave_before_the_registry():
    """The workspace the built-in algorithm objects report, against the arithmetic of
    ``conv_algo.plan`` before it was split into them (written out here), over geometries that
    reach each branch: strides, groups, depthwise, 1x1, a chunked batch."""
    from gpuconv.backend.cuda.conv_direct import backward_weight_v2_splits
    from gpuconv.backend.cuda.conv_implicit_gemm import backward_weight_splits

    def old_plan(g, name, direction, itemsize, limit):
        kh, kw = g.kernel_size
        l_size = g.out_size[0] * g.out_size[1]
        cols_image, dy_image = g.c_in * kh * kw * l_size * itemsize, g.c_out * l_size * itemsize
        weight_bytes = g.c_out * (g.c_in // g.groups) * kh * kw * itemsize
        if name == "direct":
            if direction == "backward_data":
                return (g.n, weight_bytes if g.stride == (1, 1) else 0)
            return (g.n, backward_weight_v2_splits(g) * weight_bytes if direction == "backward_weight" else 0)
        if name == "implicit_gemm":
            splits = backward_weight_splits(g, itemsize)
            return (g.n, splits * weight_bytes if direction == "backward_weight" and splits > 1 else 0)
        if name == "gemm" and direction == "forward":
            return (g.n, 0)
        transposed = weight_bytes if (g.c_in // g.groups) * kh * kw > 1 and g.c_out // g.groups > 1 else 0
        if name == "gemm" and direction == "backward_data":
            return (g.n, transposed)
        per_image = cols_image + (dy_image if direction == "backward_weight" else 0)
        chunk = max(1, min(g.n, limit // max(1, per_image)))
        workspace = chunk * per_image
        if direction == "backward_data":
            workspace += transposed
        elif direction == "backward_weight":
            workspace += weight_bytes * ((g.groups > 1) + (chunk < g.n))
        return (chunk, workspace)

    cases = [((8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1), ((3, 16, 8, 9), (48, 8, 3, 3), 1, 1, 1, 2),
             ((4, 64, 9, 10), (64, 1, 3, 3), 2, 1, 1, 64), ((2, 48, 6, 7), (64, 48, 1, 1), 1, 0, 1, 1),
             ((32, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1, 1), ((1, 1, 41, 42), (1, 1, 40, 40), 1, 0, 1, 1),
             ((32, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1, 1), ((5, 6, 11, 13), (4, 3, 3, 2), (2, 1), 2, (1, 2), 2)]
    for x_shape, w_shape, *args in cases:
        g = F.conv_geometry(x_shape, w_shape, *args)
        for algorithm in conv_algos.BUILT_IN:
            for direction in F.DIRECTIONS:
                if not algorithm.applies(g, direction):
                    continue
                for itemsize in (4, 8):
                    for limit in (2**28, 1, 3 * 2**20):
                        assert tuple(algorithm.plan(g, direction, itemsize, limit)) == \
                            old_plan(g, algorithm.name, direction, itemsize, limit), (g, algorithm, direction)
