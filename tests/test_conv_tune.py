"""The conv autotuner's logic (gpuconv.functional.conv_tune), driven on the CPU backends by an
injected fake device and timer: only the cupy backend times for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend import cache_folder, cache_trust
from gpuconv.functional import conv_tune
from tests import reference
from tests.helpers import assert_close

ROOT = Path(__file__).resolve().parent.parent
STEM = dict(x_shape=(2, 3, 17, 19), weight_shape=(8, 3, 7, 7), stride=2, padding=3)


@pytest.fixture
def tune_cache(tmp_path, monkeypatch):
    """An empty cache folder, and no winners in memory."""
    monkeypatch.setenv(conv_tune.CACHE_ENV, str(tmp_path))
    conv_tune.forget()
    cache_folder.forget_decisions()
    monkeypatch.setattr(conv_tune, "_warned", set())
    monkeypatch.setattr(cache_trust, "_warned", set())
    yield tmp_path
    conv_tune.forget()
    cache_folder.forget_decisions()


class FakeTimer:
    """Runs each candidate once (so the tuned runs are real) and reports the given times."""

    def __init__(self, times: dict[str, float]):
        self.times, self.calls = times, []

    def __call__(self, run, label):
        run()
        self.calls.append(label)
        return self.times[label]


def _stem_arrays(rng):
    x = rng.standard_normal(STEM["x_shape"])
    w = rng.standard_normal(STEM["weight_shape"])
    return x, w


def test_without_a_device_the_flag_changes_nothing(backend, tune_cache, rng):
    x, w = _stem_arrays(rng)
    with gpuconv.flags(conv_benchmark=True):
        y = F.conv2d(gpuconv.asarray(x), gpuconv.asarray(w), stride=2, padding=3)
        assert [F.choose_algo(**STEM, direction=d) for d in F.DIRECTIONS] == ["direct", "im2col", "im2col"]
    assert_close(y, reference.conv2d(x, w, None, (2, 2), (3, 3, 3, 3), (1, 1), 1))
    assert not any(tune_cache.iterdir())


def test_tunes_each_direction_once_and_remembers_the_winner(backend, tune_cache, rng):
    x, w = _stem_arrays(rng)
    X, W = gpuconv.asarray(x), gpuconv.asarray(w)
    timer = FakeTimer({"im2col": 1.0, "direct": 2.0, "implicit_gemm": 4.0})
    with conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
        assert F.choose_algo(**STEM) == "direct"  # nothing tuned yet: the heuristic
        y = F.conv2d(X, W, stride=2, padding=3)
        assert timer.calls == ["im2col", "direct", "implicit_gemm"]
        assert F.choose_algo(**STEM, dtype=np.float64) == "im2col"
        F.conv2d(X, W, stride=2, padding=3)
        assert timer.calls == ["im2col", "direct", "implicit_gemm"]  # no second tuning
        dy = gpuconv.asarray(rng.standard_normal(y.shape))
        dx, dw, _ = F.conv2d_backward(dy, X, W, stride=2, padding=3)
        assert timer.calls[3:] == ["im2col", "direct", "implicit_gemm"] * 2  # backward data, then weight
        # The key has the dtype and the TF32 setting: float32 or TF32 are tuned separately.
        assert F.choose_algo(**STEM, dtype=np.float32) == "direct"
        with gpuconv.flags(allow_tf32=True):
            assert F.choose_algo(**STEM, dtype=np.float64) == "direct"
    assert F.choose_algo(**STEM, dtype=np.float64) == "direct"  # the flag off: the heuristic again
    with conv_tune.inject_timer("Another GPU", timer), gpuconv.flags(conv_benchmark=True):
        assert F.choose_algo(**STEM, dtype=np.float64) == "direct"  # winners are per device
    ref = reference.conv2d_backward(gpuconv.to_numpy(dy), x, w, (2, 2), (3, 3, 3, 3), (1, 1), 1)
    assert_close(y, reference.conv2d(x, w, None, (2, 2), (3, 3, 3, 3), (1, 1), 1))
    assert_close(dx, ref[0])
    assert_close(dw, ref[1])
    entries = json.loads(conv_tune.cache_path().read_text())["entries"]
    assert sorted(entries.values()) == ["im2col"] * 3 and all(json.loads(k)[0] == "Fake GPU" for k in entries)


def test_only_algorithms_that_fit_the_workspace_limit_are_timed(tune_cache, rng):
    x, w = _stem_arrays(rng)
    timer = FakeTimer({"im2col": 1.0, "direct": 2.0, "implicit_gemm": 4.0})
    with gpuconv.backend("numpy"), conv_tune.inject_timer("Fake GPU", timer), \
            gpuconv.flags(conv_benchmark=True, workspace_limit=1):
        F.conv2d(x, w, stride=2, padding=3)
        # im2col's columns exceed 1 byte; the implicit GEMM's forward has no workspace
        assert timer.calls == ["direct", "implicit_gemm"]
        assert F.choose_algo(**STEM, dtype=np.float64) == "direct"


def test_pointwise_candidates_include_gemm(tune_cache, rng):
    x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((3, 4, 1, 1))
    timer = FakeTimer({"im2col": 3.0, "direct": 1.5, "gemm": 2.0, "implicit_gemm": 1.0})
    with gpuconv.backend("numpy"), conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
        F.conv2d(x, w)
        assert timer.calls == ["im2col", "direct", "gemm", "implicit_gemm"]
        assert F.choose_algo(x.shape, w.shape, dtype=np.float64) == "implicit_gemm"


def _run_python(code: str, cache: Path, **kwargs):
    env = dict(os.environ, GPUCONV_TUNE_CACHE=str(cache), GPUCONV_BACKEND="numpy", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kwargs)


def _finish(process) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def test_a_new_process_reuses_the_winner(tune_cache, rng):
    x, w = _stem_arrays(rng)
    timer = FakeTimer({"im2col": 1.0, "direct": 2.0, "implicit_gemm": 4.0})
    with gpuconv.backend("numpy"), conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
        F.conv2d(x, w, stride=2, padding=3)
    out = _finish(_run_python(f"""
        import numpy as np, gpuconv, gpuconv.functional as F
        from gpuconv.functional import conv_tune
        def no_timing(run, label):
            raise AssertionError("timed again although the winner is cached")
        with conv_tune.inject_timer("Fake GPU", no_timing), gpuconv.flags(conv_benchmark=True):
            F.conv2d(np.ones({STEM['x_shape']}), np.ones({STEM['weight_shape']}), stride=2, padding=3)
            print(F.choose_algo({STEM['x_shape']}, {STEM['weight_shape']}, stride=2, padding=3, dtype=np.float64))
        """, tune_cache))
    assert out.strip() == "im2col"


def test_a_corrupt_file_is_ignored_with_one_warning_and_rewritten(tune_cache, rng):
    path = conv_tune.cache_path()
    path.write_text('{"format": 1, "entries": {"trunc')
    x, w = _stem_arrays(rng)
    timer = FakeTimer({"im2col": 1.0, "direct": 2.0, "implicit_gemm": 4.0})
    with gpuconv.backend("numpy"), conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
        with pytest.warns(RuntimeWarning, match="corrupt conv autotuner cache") as caught:
            F.conv2d(x, w, stride=2, padding=3)
            F.conv2d(x[:1], w, stride=2, padding=3)  # a second key: read and stored again, no second warning
        assert len([c for c in caught if "autotuner" in str(c.message)]) == 1
    entries = json.loads(path.read_text())["entries"]
    assert len(entries) == 2 and set(entries.values()) == {"im2col"}
    for bad in ("[1, 2]", '{"format": 1, "entries": {"k": 3}}', '{"format": 99, "entries": {}}'):
        path.write_text(bad)
        conv_tune.forget()
        conv_tune._warned.clear()
        with pytest.warns(RuntimeWarning, match="corrupt"):
            assert conv_tune._entries(path) == {}


def test_two_processes_tuning_at_once_keep_both_winners(tune_cache):
    code = """
        import sys, time, numpy as np, gpuconv, gpuconv.functional as F
        from gpuconv.functional import conv_tune
        which = sys.argv[1]
        def slow(run, label):
            time.sleep(0.02)  # widen the window in which the two processes overlap
            return {"im2col": 1.0, "direct": 2.0, "implicit_gemm": 4.0}[label]
        with conv_tune.inject_timer("Fake GPU", slow), gpuconv.flags(conv_benchmark=True):
            for n in range(1, 7):
                h = 9 + n if which == "a" else 30 + n
                F.conv2d(np.ones((1, 3, h, h)), np.ones((4, 3, 3, 3)))
                F.conv2d(np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3)))  # one key both tune
        """
    processes = [_run_python(code.replace("sys.argv[1]", repr(which)), tune_cache) for which in "ab"]
    for process in processes:
        _finish(process)
    entries = json.loads(conv_tune.cache_path().read_text())["entries"]
    sizes = sorted(json.loads(k)[2][2] for k in entries)
    assert sizes == sorted([8] + [9 + n for n in range(1, 7)] + [30 + n for n in range(1, 7)])
    assert set(entries.values()) == {"im2col"}
    assert not [p for p in tune_cache.iterdir() if p.suffix == ".tmp"]


@pytest.mark.gpu
def test_cupy_times_with_cuda_events(tune_cache, rng):
    reason = gpuconv.backend.unavailable_reason("cupy")
    if reason is not None:
        pytest.skip(f"cupy backend unavailable: {reason}")
    x, w = _stem_arrays(rng)
    with gpuconv.backend("cupy") as be, gpuconv.flags(conv_benchmark=True):
        y = F.conv2d(be.asarray(x), be.asarray(w), stride=2, padding=3)
        winner = F.choose_algo(**STEM, dtype=np.float64)
    assert_close(y, reference.conv2d(x, w, None, (2, 2), (3, 3, 3, 3), (1, 1), 1))
    entries = json.loads(conv_tune.cache_path().read_text())["entries"]
    assert list(entries.values()) == [winner] and winner in ("im2col", "direct")


def test_an_unusable_cache_folder_warns_once_and_uses_a_private_one(tune_cache, monkeypatch, rng):
    blocker = tune_cache / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(conv_tune.CACHE_ENV, str(blocker / "tune"))  # a folder inside a file: mkdir fails
    x, w = _stem_arrays(rng)
    timer = FakeTimer({"im2col": 1.0, "direct": 2.0, "implicit_gemm": 4.0})
    with gpuconv.backend("numpy"), conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
        with pytest.warns(RuntimeWarning, match="cannot create cache folder .*a-file/tune.*private folder") as caught:
            F.conv2d(x, w, stride=2, padding=3)
            F.conv2d(x[:1], w, stride=2, padding=3)
        assert len([c for c in caught if "cache" in str(c.message)]) == 1
        assert F.choose_algo(**STEM, dtype=np.float64) == "im2col"
        assert timer.calls == ["im2col", "direct", "implicit_gemm"] * 2
    private = conv_tune.cache_path().parent
    assert private != blocker / "tune" and (private.stat().st_mode & 0o777) == 0o700
    assert len(json.loads(conv_tune.cache_path().read_text())["entries"]) == 2
