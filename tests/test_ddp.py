"""DistributedDataParallel and SyncBatchNorm on 2 MPI ranks (CPU) against one process with the
whole batch; the checks run in tests/distributed_workers/ddp.py (one launch per dtype)."""

from __future__ import annotations

import pytest

from .mpi_launch import assert_ok, run_ranks


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_equal_one_process_with_the_whole_batch(dtype):
    """ResNet-style with SyncBatchNorm and a model with an unused branch, 5 SGD-momentum steps;
    no_sync accumulation; (float64) different models and a missed parameter are errors."""
    assert_ok(run_ranks("ddp.py", dtype, "mpi", timeout=300))


def test_under_the_emulated_backend():
    from gpuconv.backend import unavailable_reason
    if unavailable_reason("emulated") is not None:
        pytest.skip(f"emulated backend: {unavailable_reason('emulated')}")
    assert_ok(run_ranks("ddp.py", "float32", "mpi", backend="emulated", timeout=600))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_nccl_rank_equals_one_process(dtype):
    """The NCCL engine on one GPU (NCCL refuses two ranks on one GPU): DDP's buckets, SyncBatchNorm
    and no_sync through NCCL give the one-process result."""
    from gpuconv.distributed.nccl_engine import nccl_unavailable_reason
    reason = nccl_unavailable_reason()
    if reason is not None:
        pytest.skip(f"NCCL cannot run here: {reason}")
    assert_ok(run_ranks("ddp.py", dtype, "nccl", ranks=1, backend="cupy", timeout=300), ranks=1)


def test_sync_batchnorm_is_batchnorm_without_a_process_group():
    import numpy as np

    import gpuconv as gc
    from gpuconv import nn
    gc.manual_seed(0)
    def build():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1),
                             nn.BatchNorm2d(2)).to(dtype=np.float64)

    plain = build()
    batchnorm = plain[1]
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(plain)
    assert [type(m).__name__ for m in converted.modules()].count("SyncBatchNorm") == 2
    assert converted[1].weight is batchnorm.weight and converted[1].running_mean is batchnorm.running_mean
    x = gc.asarray(np.random.default_rng(0).standard_normal((5, 3, 6, 6)))
    reference = build()
    reference.load_state_dict(converted.state_dict())
    for mode in (True, False):
        converted.train(mode)
        reference.train(mode)
        np.testing.assert_allclose(gc.to_numpy(converted(x).data), gc.to_numpy(reference(x).data), rtol=1e-12)


def test_fit_under_ddp(tmp_path):
    """Progress on rank 0 only; the history's loss over both ranks' samples; a NaN loss on rank 1
    raises NonFiniteLossError on both at the same batch; only rank 0 writes checkpoints."""
    assert_ok(run_ranks("fit.py", str(tmp_path), timeout=300))


@pytest.mark.slow
def test_the_example_trains_on_two_ranks():
    pytest.importorskip("sklearn", reason="the example needs scikit-learn (pip install 'gpuconv[examples]')")
    result = run_ranks("../../examples/train_digits_ddp.py", "--epochs", "1", "--no-progress", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("2 ranks on the mpi engine")
    accuracy = float(lines[-1].removeprefix("test accuracy: "))
    assert accuracy > 0.3, result.stdout  # 10 classes: chance is 0.1
