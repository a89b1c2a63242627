"""The emulator as a sanitizer (memcheck, racecheck, initcheck, synccheck), its crash reports and
watchdog, and the legal cases it must run: the planted bugs of tests/emu_kernels/planted_bugs.cu.

Each bug is caught with a message that names the check, the CUDA thread and block, the argument
or shared array, and the file:line of the buggy statement (marked `// BUG: <name>` in the source).
"""

from __future__ import annotations

import ctypes
import mmap
import re
from pathlib import Path

import numpy as np
import pytest

import gpuconv
from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.emulated.guard import guarded
from gpuconv.backend.emulated.loader import EmulatedModule, sanitize_enabled, sanitize_mode, sanitizing
from gpuconv.backend.errors import KernelLaunchError
from gpuconv.backend.optimizer_records import SgdStepArgs, TensorRow
from tests.helpers import SCHEDULES, emulator_schedule

pytestmark = [pytest.mark.emulated,
              pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")]

SOURCE = Path(__file__).parent / "emu_kernels" / "planted_bugs.cu"


def at(bug: str) -> str:
    """A regex for 'planted_bugs.cu:<line>' of the line marked `// BUG: <bug>`."""
    for number, line in enumerate(SOURCE.read_text().splitlines(), start=1):
        if line.rstrip().endswith(f"// BUG: {bug}"):
            return rf"planted_bugs\.cu:{number}\b"
    raise AssertionError(f"no line marked BUG: {bug}")


@pytest.fixture(scope="module")
def planted():
    return EmulatedModule(SOURCE)


@pytest.fixture
def x(rng):
    return rng.standard_normal(64).astype(np.float32)


def launch(module, name, grid, block, args, *, sanitize, shared_mem=0):
    with sanitizing(sanitize):
        module.get_function(name)(grid, block, args, shared_mem=shared_mem)


# ---- memcheck ------------------------------------------------------------------------------------
def test_read_one_past_the_end(planted, x):
    y = np.zeros(64, np.float32)
    with pytest.raises(KernelLaunchError, match=r"memcheck: invalid read of 4 bytes at " + at("read_past_end") +
                       r".* by thread \(63,0,0\) of block \(0,0,0\): .* is 0 bytes past the end of argument 'x' "
                       r"\(float32, shape \(64,\)\) \(256 bytes\)"):
        launch(planted, "read_past_end_f32", 1, 64, (x, y, np.int32(64)), sanitize=True)


def test_write_one_past_the_end(planted, x):
    y = np.zeros(64, np.float32)
    with pytest.raises(KernelLaunchError, match=r"memcheck: invalid write of 4 bytes at " + at("write_past_end") +
                       r".* by thread \(63,0,0\) .* past the end of argument 'y'"):
        launch(planted, "write_past_end_f32", 1, 64, (x, y, np.int32(64)), sanitize=True)


def _far_unmapped_array(x: np.ndarray):
    """A copy of ``x`` on the first page of an address-space reservation of 1 GiB + 2 pages whose other
    pages are inaccessible, so the planted read 1 GiB past it faults whatever else the process maps
    (in a long-lived test worker the address 1 GiB past a NumPy array may be someone's memory).
    Returns (array, release)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    size = (1 << 30) + 2 * mmap.PAGESIZE
    prot_none, map_noreserve = 0, 0x4000  # PROT_NONE, MAP_NORESERVE (Linux): address space only
    base = libc.mmap(None, size, prot_none, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | map_noreserve, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value), "mmap of the reservation failed"
    assert libc.mprotect(base, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE) == 0
    far = np.frombuffer((ctypes.c_char * x.nbytes).from_address(base), np.float32)
    far[:] = x
    return far, lambda: libc.munmap(base, size)


@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_int32_overflow_far_past_the_end(planted, x, sanitize):
    """The sanitizer catches it before the access; the plain build's SIGSEGV becomes the same report."""
    y = np.zeros(64, np.float32)
    check = "memcheck: invalid read of 4 bytes" if sanitize else "SIGSEGV"
    source, release = (x, lambda: None) if sanitize else _far_unmapped_array(x)
    try:
        with pytest.raises(KernelLaunchError, match=check + " at " + at("read_far_past_end") +
                           r".* thread \(0,0,0\) of block \(0,0,0\): .* is \d+ bytes past the end of argument '[xy]'"):
            launch(planted, "read_far_past_end_f32", 1, 64, (source, y, np.int32(64)), sanitize=sanitize)
    finally:
        release()


def test_guard_page_after_an_argument_catches_what_the_hooks_miss(planted, x):
    """In sanitizer mode arguments sit in copies that end at an inaccessible page: a read past the
    end in uninstrumented code faults, and the report names the argument. Results are copied back."""
    y = np.zeros(64, np.float32)
    with pytest.raises(KernelLaunchError, match=r"SIGSEGV at " + at("unchecked_read_past_end") + r".* in thread "
                       r"\(0,0,0\) of block \(0,0,0\): address 0x[0-9a-f]+ is 0 bytes past the end of argument 'x' "
                       r"\(float32, shape \(64,\)\) \(256 bytes\)"):
        launch(planted, "unchecked_read_past_end_f32", 1, 32, (x, y, np.int32(64)), sanitize=True)
    launch(planted, "copy_f32", 1, 64, (x, y, np.int32(64)), sanitize=True)
    np.testing.assert_array_equal(y, x)


def test_guarded_copies_keep_alignment_and_aliasing(x):
    b = np.arange(10, dtype=np.float32)[1:]  # 36 bytes, 4 past a 16-byte boundary
    with guarded([x, x[1:], b]) as (ax, ax1, ab):
        assert (ax, ax1) == (x.ctypes.data, x[1:].ctypes.data)  # overlapping: left in place
        assert ab != b.ctypes.data and ab % 16 == b.ctypes.data % 16
        assert -(ab + b.nbytes) % mmap.PAGESIZE < 16  # the guard page follows within 16 bytes
        copy = np.frombuffer((ctypes.c_char * b.nbytes).from_address(ab), np.float32)
        np.testing.assert_array_equal(copy, b)
        copy[:] = -copy
    np.testing.assert_array_equal(b, -np.arange(1, 10, dtype=np.float32))  # copied back


def test_signed_index_overflow_traps(planted, x):
    """UndefinedBehaviorSanitizer's checks (trapping, no runtime library) run in sanitizer mode."""
    y = np.zeros(64, np.float32)
    args = (x, y, np.int32(65536), np.int32(65536))  # block 1: 1 * 65536 * 65536 overflows int
    launch(planted, "int32_index_overflow_f32", 1, 64, args, sanitize=True)  # block 0: no overflow
    with pytest.raises(KernelLaunchError, match=r"undefined behaviour at " + at("int32_index_overflow") +
                       r".* in thread \(0,0,0\) of block \(1,0,0\): a -fsanitize=undefined check trapped"):
        launch(planted, "int32_index_overflow_f32", 2, 64, args, sanitize=True)


def test_shared_index_past_the_array(planted, x):
    y = np.zeros(32, np.float32)
    with pytest.raises(KernelLaunchError, match=r"memcheck: invalid write of 4 bytes at " + at("shared_past_end") +
                       r".* by thread \(31,0,0\) .* 0 bytes past the end of shared array 'shared_past_end_f32::a' "
                       r"\(128 bytes\)"):
        launch(planted, "shared_past_end_f32", 1, 32, (x, y), sanitize=True)


def test_shared_index_far_past_the_array(planted):
    y = np.zeros(32, np.float32)
    with pytest.raises(KernelLaunchError, match=r"memcheck: invalid write of 4 bytes at " + at("shared_far_past_end") +
                       r".* by thread \(0,0,0\) .* 256 bytes past the end of shared array 'shared_far_past_end_f32::c'"):
        launch(planted, "shared_far_past_end_f32", 1, 32, (y,), sanitize=True)


@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_misaligned_float4_store(planted, sanitize):
    y = np.zeros(64, np.float32)
    match = (r"memcheck: misaligned address 0x[0-9a-f]+ for a 16-byte vector store at " if sanitize
             else r"SIGSEGV at ") + at("misaligned_float4")
    with pytest.raises(KernelLaunchError, match=match):
        launch(planted, "misaligned_float4_f32", 1, 4, (y,), sanitize=sanitize)


def test_misaligned_float4_load(planted, x):
    """A vector load is checked like a store (a copy construction of float4 goes through the hook)."""
    y = np.zeros(64, np.float32)
    with pytest.raises(KernelLaunchError, match=r"memcheck: misaligned address 0x[0-9a-f]+ for a 16-byte vector load "
                       r"at " + at("misaligned_float4_load") + r".* by thread \(0,0,0\) of block \(0,0,0\): argument "
                       r"'x' \(float32, shape \(64,\)\) \(byte offset 4\)"):
        launch(planted, "misaligned_float4_load_f32", 1, 4, (x, y), sanitize=True)


@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_local_memory_overflowing_the_stack(planted, x, sanitize):
    y = np.zeros(64, np.float32)
    with pytest.raises(KernelLaunchError, match=r"SIGSEGV at " + at("local_overflow") + r".* thread \(0,0,0\) .*"
                       r"guard page: local memory overflows the 576 KiB stack \(GPUCONV_EMU_STACK_KB\)"):
        launch(planted, "local_overflow_f32", 1, 2, (x, y, np.int32(64)), sanitize=sanitize)
    # The module stays usable after a crash.
    launch(planted, "copy_f32", 1, 64, (x, y, np.int32(64)), sanitize=sanitize)
    np.testing.assert_array_equal(y, x)


# ---- racecheck -----------------------------------------------------------------------------------
def test_plus_equals_on_shared_memory_is_a_race(planted, x):
    y = np.zeros(1, np.float32)
    line = at("shared_plus_equals")
    with pytest.raises(KernelLaunchError, match=r"racecheck: read-after-write hazard on shared array "
                       r"'shared_plus_equals_f32::total' \(byte offset 0\): write at " + line + r".* by thread "
                       r"\(0,0,0\) of block \(0,0,0\) and read at " + line + r".* by thread \(1,0,0\) .* with no "
                       r"__syncthreads between them"):
        launch(planted, "shared_plus_equals_f32", 1, 64, (x, y), sanitize=True)


def test_atomic_add_on_shared_memory_is_not_a_race(planted, x):
    y = np.zeros(1, np.float32)
    launch(planted, "shared_atomic_sum_f32", 1, 64, (x, y), sanitize=True)
    assert y[0] == pytest.approx(x.astype(np.float64).sum(), rel=1e-5)


@pytest.mark.parametrize("schedule", ["forward", "reverse"])
def test_missing_barrier_names_both_lines(planted, x, schedule):
    y = np.zeros(64, np.float32)
    write, read = at("missing_barrier_write"), at("missing_barrier_read")
    with emulator_schedule(schedule), pytest.raises(KernelLaunchError) as info:
        launch(planted, "missing_barrier_f32", 1, 64, (x, y), sanitize=True)
    message = str(info.value)
    assert re.search(r"racecheck: (write-after-read|read-after-write) hazard on shared array 'missing_barrier_f32::s'",
                     message), message
    assert re.search(write, message) and re.search(read, message), message


def test_blocks_writing_the_same_global_element_race(planted):
    y = np.zeros(32, np.float32)
    with pytest.raises(KernelLaunchError, match=r"racecheck: write-after-write hazard on argument 'y' .* write at " +
                       at("blocks_write_same") + r".* of block \(0,0,0\) and write at .* of block \(1,0,0\), in "
                       r"different blocks of one launch"):
        launch(planted, "blocks_write_same_f32", 2, 32, (y,), sanitize=True)


# ---- initcheck -----------------------------------------------------------------------------------
def test_reading_memory_that_empty_allocated_and_nothing_wrote(planted, x):
    with gpuconv.backend("emulated") as be:
        unwritten = be.empty((64,), np.float32)
    y = np.zeros(64, np.float32)
    with pytest.raises(KernelLaunchError, match=r"initcheck: read of uninitialized global memory at " +
                       at("uninitialized_read") + r".* thread \(0,0,0\) of block \(0,0,0\): element 0 of argument "
                       r"'x' .* was allocated by gpuconv's empty\(\) and never written"):
        launch(planted, "copy_f32", 1, 64, (unwritten, y, np.int32(64)), sanitize=True)
    unwritten[:] = x  # written: now a legal input
    launch(planted, "copy_f32", 1, 64, (unwritten, y, np.int32(64)), sanitize=True)
    np.testing.assert_array_equal(y, x)


def test_reading_an_integer_array_that_empty_allocated_and_no_kernel_wrote(planted):
    """Integers from empty() hold -1, a legal value: a shadow of the elements kernels wrote tells them apart."""
    with gpuconv.backend("emulated") as be:
        index = be.empty((64,), np.int32)
    y = np.zeros(64, np.int32)
    # A kernel writes -1 into the second half, through a view: its shadow is marked at offset 32.
    launch(planted, "fill_i32", 1, 32, (index[32:], np.int32(-1), np.int32(32)), sanitize=True)
    with pytest.raises(KernelLaunchError, match=r"initcheck: read of uninitialized global memory at " +
                       at("uninitialized_int_read") + r".* thread \(0,0,0\) of block \(0,0,0\): element 0 of "
                       r"argument 'x' \(int32, shape \(64,\)\) was allocated by gpuconv's empty\(\) and never "
                       r"written"):
        launch(planted, "copy_i32", 1, 64, (index, y, np.int32(64)), sanitize=True)
    # Every element written by a kernel, -1 included: legal.
    launch(planted, "fill_i32", 1, 64, (index[:32], np.int32(-1), np.int32(32)), sanitize=True)
    launch(planted, "copy_i32", 1, 64, (index, y, np.int32(64)), sanitize=True)
    np.testing.assert_array_equal(y, -1)


def test_reading_shared_memory_no_thread_wrote(planted):
    y = np.zeros(32, np.float32)
    with pytest.raises(KernelLaunchError, match=r"initcheck: read of uninitialized shared memory at " +
                       at("unwritten_shared") + r".* shared array 'unwritten_shared_f32::s' \(byte offset 0\)"):
        launch(planted, "unwritten_shared_f32", 1, 32, (y,), sanitize=True)


# ---- synccheck -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_threads_leaving_a_barrier_loop_after_different_counts(planted, sanitize):
    y = np.zeros(64, np.float32)
    with pytest.raises(KernelLaunchError, match=r"synccheck: divergent threads at __syncthreads " +
                       at("barrier_loop_counts") + r": thread \(0,0,0\) of block \(0,0,0\) exited after passing it 1 "
                       r"time\(s\) while thread \(1,0,0\) .* waits there"):
        launch(planted, "barrier_loop_counts_f32", 1, 64, (y,), sanitize=sanitize)


# ---- legal cases ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_two_kernels_with_32_kib_static_shared_memory_each(planted, sanitize):
    for name, scale in (("big_shared_a_f32", 1.0), ("big_shared_b_f32", 2.0)):
        y = np.zeros(64, np.float32)
        launch(planted, name, 1, 64, (y,), sanitize=sanitize)
        np.testing.assert_array_equal(y, scale * ((np.arange(64) + 1) % 64))
    # The limit is still enforced per kernel: 32 KiB static + 16 KiB + 4 bytes dynamic is too much.
    with pytest.raises(KernelLaunchError, match=r"invalid launch: 32768 bytes of static shared memory \(with "
                       r"'big_shared_a_f32::a'\) and 16388 bytes of dynamic exceed the 49152 bytes"):
        launch(planted, "big_shared_a_f32", 1, 64, (np.zeros(64, np.float32),), sanitize=sanitize,
               shared_mem=16 * 1024 + 4)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_warp_syncs_with_disjoint_masks(planted, x, schedule, sanitize):
    y = np.full(2, np.nan, np.float32)
    with emulator_schedule(schedule):
        launch(planted, "half_warp_sums_f32", 1, 32, (x, y), sanitize=sanitize)
    np.testing.assert_allclose(y, [x[:16].sum(), x[16:32].sum()], rtol=1e-5)


@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_300_kb_local_array(planted, x, sanitize):
    y = np.zeros(64, np.float32)
    launch(planted, "big_local_array_f32", 1, 4, (x, y, np.int32(64)), sanitize=sanitize)
    index = 74999 - np.arange(4)
    np.testing.assert_array_equal(y[:4], x[index % 64] + index.astype(np.float32))


def test_threads_writing_neighbouring_bytes_do_not_race(planted):
    y = np.zeros(64, np.bool_)
    launch(planted, "write_own_byte_b8", 1, 64, (y,), sanitize=True)
    np.testing.assert_array_equal(y, np.arange(64) % 3 == 0)


@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_spin_on_a_flag_another_thread_sets(planted, monkeypatch, sanitize):
    """In sanitizer mode a volatile read in a loop lets the other threads run; in the plain build
    (no instrumentation to notice it) the watchdog's tick preempts a thread that made no progress."""
    monkeypatch.setenv("GPUCONV_EMU_WATCHDOG_S", "5")
    y = np.zeros(64, np.float32)
    launch(planted, "spin_on_flag_f32", 1, 64, (y,), sanitize=sanitize)
    assert y[1] == 1.0


@pytest.mark.parametrize("sanitize", [True, False], ids=["sanitizer", "plain"])
def test_spin_on_a_flag_no_thread_sets(planted, monkeypatch, sanitize):
    """A real hang: the watchdog turns it into an error naming the thread (and, in the plain build, its line)."""
    monkeypatch.setenv("GPUCONV_EMU_WATCHDOG_S", "0.5")
    y = np.zeros(64, np.float32)
    where = (r"threads yield without progress" if sanitize else
             r"thread \(1,0,0\) of block \(0,0,0\) still runs at " + at("spin_forever"))
    with pytest.raises(KernelLaunchError, match=r"watchdog: no thread of block \(0,0,0\) started, exited or reached a "
                       r"barrier for .* s \(GPUCONV_EMU_WATCHDOG_S\); .*" + where):
        launch(planted, "spin_forever_f32", 1, 64, (y,), sanitize=sanitize)


# ---- settings ------------------------------------------------------------------------------------
def test_sanitize_setting(monkeypatch):
    monkeypatch.setenv("GPUCONV_EMU_SANITIZE", "1")
    assert sanitize_enabled() and sanitize_mode() == "hooks"
    with sanitizing(False):
        assert not sanitize_enabled() and sanitize_mode() == ""
    with sanitizing("asan"):
        assert sanitize_mode() == "asan"
    monkeypatch.setenv("GPUCONV_EMU_SANITIZE", "ASan")
    assert sanitize_mode() == "asan"
    monkeypatch.setenv("GPUCONV_EMU_SANITIZE", "maybe")
    with pytest.raises(ValueError, match="GPUCONV_EMU_SANITIZE must be 0, 1 or asan, got 'maybe'"):
        sanitize_enabled()
    with pytest.raises(ValueError, match="sanitizing\\(\\) takes True, False or 'asan', got 'tsan'"):
        sanitizing("tsan").__enter__()


@pytest.mark.parametrize("name, value", [("GPUCONV_EMU_WATCHDOG_S", "-1"), ("GPUCONV_EMU_STACK_KB", "ten")])
def test_bad_numeric_settings(planted, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name} must be a number >= .*, got '{value}'"):
        planted.get_function("copy_f32")(1, 64, (np.zeros(64, np.float32), np.zeros(64, np.float32), np.int32(64)))


def test_stack_size_setting(planted, x, monkeypatch):
    """A 300 KB local array fails with a 256 KiB stack, with the setting named."""
    monkeypatch.setenv("GPUCONV_EMU_STACK_KB", "256")
    with pytest.raises(KernelLaunchError, match=r"overflows the 256 KiB stack \(GPUCONV_EMU_STACK_KB\)"):
        launch(planted, "big_local_array_f32", 1, 4, (x, np.zeros(64, np.float32), np.int32(64)), sanitize=False)


# ---- arrays reached through a table of addresses (the multi-tensor optimizer step) ---------------
def _sgd_step(be, params, grads, lr):
    """One plain SGD step over ``params`` through the multi-tensor kernel (addresses in a table)."""
    rows = [TensorRow(p, g) for p, g in zip(params, grads)]
    t = params[0].dtype.type
    be.multi_tensor_step("sgd_step", rows, SgdStepArgs(
        neg_lr=t(-lr), momentum=t(0), one_minus_dampening=t(1), weight_decay=t(0), use_momentum=np.int32(0),
        use_weight_decay=np.int32(0), nesterov=np.int32(0), maximize=np.int32(0)))


def test_arrays_reached_through_a_table_are_checked_as_named_regions(rng):
    """The launcher declares them (launch_reaching): a clean step runs in sanitizer mode with NumPy's
    result, and an unwritten gradient (from empty()) is reported by initcheck under its name."""
    with gpuconv.backend("emulated") as be, sanitizing(True):
        params = [rng.standard_normal(n).astype(np.float32) for n in (5000, 3)]
        grads = [rng.standard_normal(p.size).astype(np.float32) for p in params]
        expected = [p - np.float32(0.5) * g for p, g in zip(params, grads)]
        _sgd_step(be, params, grads, 0.5)
        for p, e in zip(params, expected):
            np.testing.assert_array_equal(p, e)
        unwritten = be.empty((3,), np.float32)
        with pytest.raises(KernelLaunchError, match=r"initcheck: read of uninitialized global memory at "
                           r"elementwise\.cu:\d+ .* element 0 of argument 'grad\[1\]' \(float32, shape \(3,\), "
                           r"reached through an address stored in an argument\)"):
            _sgd_step(be, params, [grads[0], unwritten], 0.5)
