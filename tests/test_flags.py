"""gpuconv.flags: defaults, validation on assignment, the context manager, the aliases."""

from __future__ import annotations

import pytest

import gpuconv
import gpuconv.functional as F


def test_defaults():
    assert gpuconv.flags.conv_benchmark is False
    assert gpuconv.flags.allow_tf32 is False
    assert gpuconv.flags.workspace_limit == 256 * 2**20
    assert gpuconv.flags.as_dict() == {"conv_benchmark": False, "allow_tf32": False, "workspace_limit": 256 * 2**20,
                                        "detect_anomaly": False}


def test_assignment_sets_and_validates(monkeypatch):
    previous = gpuconv.flags.as_dict()
    try:
        gpuconv.flags.conv_benchmark = True
        gpuconv.flags.workspace_limit = 4096
        assert gpuconv.flags.conv_benchmark is True and F.get_workspace_limit() == 4096
        with pytest.raises(TypeError, match=r"gpuconv.flags.allow_tf32 must be a bool .* got 1"):
            gpuconv.flags.allow_tf32 = 1
        with pytest.raises(TypeError, match=r"workspace_limit must be a positive int \(bytes\), got 1.5"):
            gpuconv.flags.workspace_limit = 1.5
        with pytest.raises(TypeError, match="workspace_limit must be a positive int"):
            gpuconv.flags.workspace_limit = True
        with pytest.raises(ValueError, match=r"workspace_limit must be a positive int \(bytes\), got -1"):
            gpuconv.flags.workspace_limit = -1
        with pytest.raises(AttributeError, match="no setting 'conv_benchmarks'; the settings are allow_tf32, "
                                                 "conv_benchmark, detect_anomaly, workspace_limit"):
            gpuconv.flags.conv_benchmarks = True
        assert gpuconv.flags.allow_tf32 is False and F.get_workspace_limit() == 4096
        F.set_workspace_limit(8192)
        assert gpuconv.flags.workspace_limit == 8192
    finally:
        for name, value in previous.items():
            setattr(gpuconv.flags, name, value)


def test_context_manager_restores_also_on_exceptions():
    with gpuconv.flags(conv_benchmark=True, allow_tf32=True):
        assert gpuconv.flags.conv_benchmark and gpuconv.flags.allow_tf32
        with gpuconv.flags(allow_tf32=False, workspace_limit=10):
            assert not gpuconv.flags.allow_tf32 and gpuconv.flags.workspace_limit == 10
        assert gpuconv.flags.allow_tf32 and gpuconv.flags.workspace_limit == 256 * 2**20
    assert not gpuconv.flags.conv_benchmark and not gpuconv.flags.allow_tf32
    with pytest.raises(RuntimeError, match="boom"):
        with gpuconv.flags(conv_benchmark=True):
            raise RuntimeError("boom")
    assert gpuconv.flags.conv_benchmark is False


def test_a_bad_value_in_the_context_manager_changes_nothing():
    with pytest.raises(TypeError, match="allow_tf32 must be a bool"):
        with gpuconv.flags(conv_benchmark=True, allow_tf32="yes"):
            pass
    assert gpuconv.flags.conv_benchmark is False
    with pytest.raises(AttributeError, match="no setting 'benchmark'"):
        gpuconv.flags(benchmark=True)


def test_repr_names_the_settings():
    assert repr(gpuconv.flags) == ("gpuconv.flags(allow_tf32=False, conv_benchmark=False, "
                                   "detect_anomaly=False, workspace_limit=268435456)")


def test_overlapping_blocks_in_two_threads_each_see_their_own_and_restore_the_default():
    import threading

    seen: dict[str, list] = {"a": [], "b": []}
    for _ in range(50):
        entered, leave_a = threading.Barrier(2), threading.Event()

        def a():
            with gpuconv.flags(allow_tf32=True, workspace_limit=4096):
                entered.wait()
                seen["a"].append((gpuconv.flags.allow_tf32, gpuconv.flags.workspace_limit))
                leave_a.wait()

        def b():
            entered.wait()  # a is inside its block now
            seen["b"].append(gpuconv.flags.allow_tf32)
            with gpuconv.flags(allow_tf32=False, conv_benchmark=True):
                leave_a.set()  # a leaves while b is still inside
                seen["b"].append((gpuconv.flags.allow_tf32, gpuconv.flags.conv_benchmark,
                                  gpuconv.flags.workspace_limit))

        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert gpuconv.flags.as_dict() == gpuconv.flags.DEFAULTS
    assert set(seen["a"]) == {(True, 4096)}
    assert set(seen["b"]) == {False, (False, True, 256 * 2**20)}


def test_a_flags_object_can_be_entered_again_and_used_as_a_decorator():
    fast = gpuconv.flags(allow_tf32=True)
    with fast:
        with fast:
            assert gpuconv.flags.allow_tf32
        assert gpuconv.flags.allow_tf32
        with gpuconv.flags(allow_tf32=False):
            with fast:
                assert gpuconv.flags.allow_tf32
            assert not gpuconv.flags.allow_tf32
    assert not gpuconv.flags.allow_tf32

    @gpuconv.flags(conv_benchmark=True)
    def tuned():
        return gpuconv.flags.conv_benchmark

    assert tuned() and tuned() and not gpuconv.flags.conv_benchmark


def test_assigning_inside_a_block_sets_the_default_and_reads_back():
    try:
        with gpuconv.flags(allow_tf32=False):
            gpuconv.flags.allow_tf32 = True
            assert gpuconv.flags.allow_tf32
        assert gpuconv.flags.allow_tf32  # the default was set
    finally:
        gpuconv.flags.allow_tf32 = False
