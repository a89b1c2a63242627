"""gpuconv.warmup(): loads every kernel file the backend runs and steps each layer type once."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv.backend.kernel_source import kernel_files


def test_warmup_loads_every_kernel_file_and_reports(backend, capsys):
    report = gpuconv.warmup((np.float32, np.float64))
    expected = () if backend.name == "numpy" else tuple(p.name for p in kernel_files())
    assert report.backend == backend.name
    assert report.kernel_files == expected
    assert report.load_seconds >= 0 and report.step_seconds > 0
    assert report.total_seconds == report.load_seconds + report.step_seconds
    assert capsys.readouterr().err.strip() == str(report)
    if expected:
        # Loaded means the backend's module cache holds every file: later ops load nothing.
        loaded = {key[1] for key in backend._modules}
        assert set(expected) <= loaded


def test_warmup_leaves_the_seeded_random_stream_unchanged(backend, capsys):
    gpuconv.manual_seed(7)
    expected = gpuconv.default_generator().standard_normal(5)
    gpuconv.manual_seed(7)
    gpuconv.warmup(verbose=False)
    np.testing.assert_array_equal(gpuconv.default_generator().standard_normal(5), expected)
    assert capsys.readouterr().err == ""


def test_warmup_rejects_other_dtypes():
    with pytest.raises(TypeError, match="dtypes must hold float32 or float64, got int32"):
        gpuconv.warmup((np.int32,))
