"""gpuconv.distributed on 2 MPI ranks (CPU): collectives against NumPy, faults, and the local errors.

The multi-rank checks run as scripts under ``mpiexec`` (tests/distributed_workers/); several checks
go into one launch to keep the tests fast.
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np
import pytest

from .mpi_launch import assert_ok, run_ranks

FAULT_TIMEOUT_S = 5.0


def test_collectives_match_numpy_for_every_op_dtype_and_layout():
    """all_reduce / all_gather / broadcast / reduce_scatter on 2 ranks, every op and dtype,
    contiguous and strided inputs, row counts that do not divide by 2, mismatch errors."""
    checks = assert_ok(run_ranks("collectives.py", "auto"))
    assert min(checks) > 400, checks


def test_collectives_on_three_ranks():
    """Three ranks: splits of 7 and 5 rows into 3 blocks of different sizes."""
    assert_ok(run_ranks("collectives.py", "mpi", ranks=3), ranks=3)


@pytest.mark.slow
def test_ranks_compiling_the_same_kernels_at_once_share_the_cache(tmp_path, monkeypatch):
    """Every rank of a node compiles on first use: two ranks, an empty emulator cache, the same
    kernel files at the same moment; both then run them (the heartbeat goes on during g++)."""
    from gpuconv.backend import unavailable_reason
    if unavailable_reason("emulated") is not None:
        pytest.skip(f"emulated backend: {unavailable_reason('emulated')}")
    cache = tmp_path / "emu"
    monkeypatch.setenv("GPUCONV_EMU_CACHE", str(cache))
    assert_ok(run_ranks("compile_race.py", timeout=600))
    entries = sorted(p.name for p in cache.iterdir())
    assert len([e for e in entries if e.endswith(".so")]) >= 2, entries
    assert not [e for e in entries if e.startswith(".build-")], entries  # no build left behind


def test_nccl_refused_where_a_rank_cannot_run_it():
    from gpuconv.distributed.nccl_engine import nccl_unavailable_reason
    if nccl_unavailable_reason() is None:
        pytest.skip("NCCL can run here")
    result = run_ranks("collectives.py", "nccl", timeout=60)
    assert result.returncode != 0
    assert "DistributedError: backend='nccl' is unavailable on rank(s) 0, 1 (here on rank" in result.stderr, result.stderr


@pytest.mark.gpu
def test_nccl_collectives_on_one_gpu():
    """One rank of NCCL (NCCL refuses two ranks on one GPU): the same checks on CuPy arrays
    (contiguous and strided) and NumPy arrays staged through the device."""
    from gpuconv.distributed.nccl_engine import nccl_unavailable_reason
    reason = nccl_unavailable_reason()
    if reason is not None:
        pytest.skip(f"NCCL cannot run here: {reason}")
    assert_ok(run_ranks("collectives.py", "nccl", ranks=1, backend="cupy"), ranks=1)


def test_a_killed_rank_is_named_by_the_survivor_within_the_timeout():
    """Rank 1 SIGKILLs itself mid-training; hydra's auto-cleanup is off so that the survivor's own
    detection is what ends it: rank 0 raises RankFailedError naming rank 1 and exits 1."""
    start = time.monotonic()
    result = run_ranks("faults.py", "kill", str(FAULT_TIMEOUT_S), launcher_options=("-disable-auto-cleanup",),
                       per_rank_status=True, timeout=60)
    elapsed = time.monotonic() - start
    assert "step 2 done on rank 0" in result.stdout, result.stdout + result.stderr
    assert "OK" not in result.stdout
    assert "RankFailedError: rank 1 stopped answering" in result.stderr, result.stderr
    assert re.search(r"^rank 0 exit 1$", result.stderr, re.M), result.stderr
    assert result.returncode != 0
    # Bounded: the timeout, plus start-up and exit of two Pythons on a busy 2-core machine.
    assert elapsed < FAULT_TIMEOUT_S + 20, elapsed


def test_a_killed_rank_ends_the_job_under_default_mpiexec():
    """With hydra's default auto-cleanup, mpiexec itself ends the job non-zero at once."""
    result = run_ranks("faults.py", "kill", str(FAULT_TIMEOUT_S), timeout=60)
    assert result.returncode != 0
    assert "OK" not in result.stdout


def test_a_stalled_collective_times_out():
    """Rank 1 sleeps instead of joining the all-reduce while its heartbeat goes on: rank 0 raises
    CollectiveTimeoutError after the timeout (2 s) rather than waiting forever."""
    start = time.monotonic()
    result = run_ranks("faults.py", "stall", "2", timeout=60)
    assert "CollectiveTimeoutError: all_reduce" in result.stderr and "did not complete within 2 s on rank 0" \
        in result.stderr, result.stderr
    assert result.returncode != 0
    assert time.monotonic() - start < 30


def test_a_raising_rank_is_named_with_its_exception():
    result = run_ranks("faults.py", "raise", "60", per_rank_status=True, launcher_options=("-disable-auto-cleanup",),
                       timeout=60)
    assert "RankFailedError: rank 1 failed: ValueError: rank 1 met a bad batch on purpose" in result.stderr, \
        result.stderr
    assert "gpuconv.distributed: rank 1 of 2 failed" in result.stderr
    assert re.search(r"^rank 0 exit 1$", result.stderr, re.M) and re.search(r"^rank 1 exit 1$", result.stderr, re.M), \
        result.stderr
    assert result.returncode != 0


# ---- in this process (no MPI started) -------------------------------------------------------------
def test_calls_before_init_say_to_initialize():
    import gpuconv.distributed as dist
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.get_local_rank, dist.barrier):
        with pytest.raises(dist.DistributedError, match="init_process_group"):
            call()
    with pytest.raises(dist.DistributedError, match="init_process_group"):
        dist.all_reduce(np.zeros(3))


@pytest.mark.parametrize("kwargs, message", [
    (dict(backend="gloo"), "backend must be one of auto, mpi, nccl; got 'gloo'"),
    (dict(timeout=0), "timeout must be a positive number"),
    (dict(timeout="60"), "timeout must be a positive number"),
])
def test_init_rejects_bad_arguments(kwargs, message):
    import gpuconv.distributed as dist
    with pytest.raises(ValueError, match=re.escape(message)):
        dist.init_process_group(**kwargs)


def test_missing_mpi4py_gives_the_install_line(monkeypatch):
    import gpuconv.distributed as dist
    from gpuconv.distributed._mpi import import_mpi
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(dist.DistributedError, match=re.escape("pip install 'gpuconv[distributed]'")):
        import_mpi()


@pytest.mark.parametrize("call, x, message", [
    ("all_reduce", [1.0, 2.0], "must be a NumPy or CuPy array or a gpuconv.Tensor, got builtins.list"),
    ("all_reduce", np.zeros(3, dtype=np.float16), "has dtype float16; collectives support"),
    ("all_reduce", np.zeros(3, dtype=np.int32), "op='mean' needs a floating dtype, got int32"),
])
def test_collectives_check_arguments_before_communicating(call, x, message):
    import gpuconv.distributed as dist
    kwargs = {"op": "mean"} if "mean" in message else {}
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        getattr(dist, call)(x, **kwargs)


def test_nccl_type_codes_match_nccl():
    nccl = pytest.importorskip("cupy.cuda.nccl", reason="cupy.cuda.nccl (CuPy) is not installed")
    if not nccl.available:
        pytest.skip("CuPy was built without NCCL")
    from gpuconv.distributed.nccl_engine import _NCCL_OPS, _NCCL_TYPES
    for name, code in _NCCL_TYPES.items():
        assert code == getattr(nccl, f"NCCL_{name.upper()}"), name
    assert _NCCL_OPS == {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
