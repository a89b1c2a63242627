"""Which cache folders and files gpuconv trusts (gpuconv.backend.cache_trust / cache_folder), the
CUBIN cache's digest check, the sweep of stale temporary entries, the full-disk message, and the
autotuner's lock and cache file. "Another user" is played by patching ``cache_trust.current_uid``
(the tests may run as root, which owns every file it creates) or by a loose file mode."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
import warnings

import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend import cache_folder, cache_sweep, cache_trust, kernel_binaries
from gpuconv.backend.disk_full import NoSpaceError
from gpuconv.functional import conv_tune

OTHER_UID = 4242
pytestmark = pytest.mark.usefixtures("fresh_cache_decisions")


@pytest.fixture
def kernel_cache(tmp_path, monkeypatch):
    folder = tmp_path / "kernels"
    monkeypatch.setenv(kernel_binaries.CACHE_ENV, str(folder))
    return folder


class FakeCompiler:
    def __init__(self):
        self.calls = 0

    def __call__(self, program, name, arch, options):
        self.calls += 1
        return b"CUBIN:" + arch.encode()


def _cubin(compiler):
    return kernel_binaries.binary_path("im2col.cu", None, (7, 0), compiler)


def _refusals(caught, text="") -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning) and text in str(w.message)]


# --- folders -----------------------------------------------------------------------------------


def test_a_missing_cache_folder_is_created_private(kernel_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel_binaries.cache_dir() == kernel_cache
    assert kernel_cache.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_a_folder_others_can_write_is_refused_with_one_warning(kernel_cache, mode):
    kernel_cache.mkdir()
    kernel_cache.chmod(mode)
    with pytest.warns(RuntimeWarning, match=r"writable by group or others.*private folder") as caught:
        first = kernel_binaries.cache_dir()
        cache_folder.forget_decisions()  # even when checked again, it warns once per process
        second = kernel_binaries.cache_dir()
    assert len(_refusals(caught, "cache folder")) == 1
    for private in (first, second):
        assert private != kernel_cache and private.stat().st_mode & 0o777 == 0o700
    compiler = FakeCompiler()
    assert _cubin(compiler).parent == second and list(kernel_cache.iterdir()) == []


def test_a_folder_of_another_user_is_refused(kernel_cache, monkeypatch):
    kernel_cache.mkdir(mode=0o700)
    monkeypatch.setattr(cache_trust, "current_uid", lambda: OTHER_UID)
    with pytest.warns(RuntimeWarning, match=rf"owned by uid {os.geteuid()}, not by this user \(uid {OTHER_UID}\)"):
        assert kernel_binaries.cache_dir() != kernel_cache


def test_a_folder_above_that_others_can_write_is_refused_unless_sticky(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv(kernel_binaries.CACHE_ENV, str(shared / "mine"))
    shared.chmod(0o777)  # anyone could rename "mine" away and put their own folder there
    with pytest.warns(RuntimeWarning, match=rf"{shared}, a folder above cache folder .* writable by group or others"):
        assert kernel_binaries.cache_dir() != shared / "mine"
    cache_folder.forget_decisions()
    shared.chmod(0o1777)  # like /tmp: others cannot rename or delete what is ours
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel_binaries.cache_dir() == shared / "mine"


@pytest.mark.parametrize("where", ["a regular file", "under /proc", "read-only (/sys)"])
def test_an_unusable_location_means_a_private_folder_not_a_failure(tmp_path, monkeypatch, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    path = {"a regular file": blocker, "under /proc": "/proc/gpuconv-test-cache",
            "read-only (/sys)": "/sys/gpuconv-test-cache"}[where]
    monkeypatch.setenv(kernel_binaries.CACHE_ENV, str(path))
    compiler = FakeCompiler()
    with pytest.warns(RuntimeWarning, match=r"cannot create cache folder .*private folder"):
        cubin = _cubin(compiler)
    assert compiler.calls == 1 and cubin.read_bytes() == b"CUBIN:sm_70"  # compiled and kept, not thrown away
    assert _cubin(compiler) == cubin and compiler.calls == 1


def test_a_folder_the_user_cannot_write_is_found_before_compiling(kernel_cache, monkeypatch):
    kernel_cache.mkdir(mode=0o700)
    real_mkstemp = cache_folder.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):  # root ignores file modes: play a read-only mount
        if str(dir) == str(kernel_cache):
            raise PermissionError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(cache_folder.tempfile, "mkstemp", read_only)
    with pytest.warns(RuntimeWarning, match=r"cannot write in cache folder .*Read-only file system"):
        assert kernel_binaries.cache_dir() != kernel_cache


# --- cached binaries (CUBIN cache) -------------------------------------------------------------


def test_a_compiled_cubin_gets_a_digest_and_is_reused(kernel_cache):
    compiler = FakeCompiler()
    cubin = _cubin(compiler)
    digest = cache_trust.digest_path(cubin)
    assert digest.read_text().strip() == hashlib.sha256(cubin.read_bytes()).hexdigest()
    assert cubin.stat().st_mode & 0o022 == 0 and digest.stat().st_mode & 0o077 == 0
    assert _cubin(compiler) == cubin and compiler.calls == 1


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_a_damaged_cubin_is_compiled_again_never_returned(kernel_cache, damage):
    compiler = FakeCompiler()
    cubin = _cubin(compiler)
    cubin.write_bytes({"garbage": os.urandom(64), "empty": b"", "truncated": b"CUB"}[damage])
    with pytest.warns(RuntimeWarning, match="does not match its recorded digest"):
        assert _cubin(compiler) == cubin
    assert compiler.calls == 2 and cubin.read_bytes() == b"CUBIN:sm_70"


@pytest.mark.parametrize("plant", ["no digest", "another user's", "world-writable", "a link"])
def test_a_planted_cubin_is_never_returned(kernel_cache, tmp_path, monkeypatch, plant):
    compiler = FakeCompiler()
    cubin = _cubin(compiler)  # learns the name; the folder is the user's and decided
    evil = tmp_path / "evil.cubin"
    evil.write_bytes(b"EVIL")
    if plant == "a link":
        cubin.unlink()
        cubin.symlink_to(evil)
    else:
        cubin.write_bytes(b"EVIL")
        if plant == "no digest":
            cache_trust.digest_path(cubin).unlink()
        else:
            cache_trust.record_digest(cubin)  # a planter who also wrote a matching digest
    if plant == "world-writable":
        cubin.chmod(0o666)
    if plant == "another user's":
        owner = cache_trust.current_uid()
        monkeypatch.setattr(cache_trust, "current_uid", lambda: owner + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _cubin(compiler) == cubin
    assert cubin.read_bytes() == b"CUBIN:sm_70" and evil.read_bytes() == b"EVIL" and compiler.calls == 2
    assert len(_refusals(caught, str(cubin))) == (0 if plant == "no digest" else 1)


# --- stale temporary entries, full disk --------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_build_folders_and_temporary_files_are_swept(tmp_path):
    tag, dead = cache_sweep.host_tag(), _dead_pid()
    killed = tmp_path / f".build-{tag}-{dead}-abc"
    killed.mkdir()
    (killed / "module.o").write_bytes(b"x" * 1000)
    half_written = tmp_path / f".tmp-{tag}-{dead}-def.part"
    half_written.write_bytes(b"half")
    running = tmp_path / f".build-{tag}-{os.getpid()}-ghi"
    running.mkdir()
    elsewhere = tmp_path / f".build-{'0' * 8 if tag != '0' * 8 else '1' * 8}-{dead}-jkl"  # another host's
    elsewhere.mkdir()
    ancient = tmp_path / ".build-old_style"  # no pid in the name: judged by age
    ancient.mkdir()
    old = time.time() - cache_sweep.STALE_AFTER_SECONDS - 60
    os.utime(ancient, (old, old))
    keep = tmp_path / "pool-0123.so"
    keep.write_bytes(b"so")
    removed = cache_sweep.sweep_stale(tmp_path)
    assert sorted(removed) == sorted([killed, half_written, ancient])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, elsewhere.name, keep.name])


def test_a_cubin_compile_sweeps_what_killed_writers_left(kernel_cache):
    kernel_cache.mkdir(mode=0o700)
    killed = kernel_cache / f".tmp-{cache_sweep.host_tag()}-{_dead_pid()}-x.part"
    killed.write_bytes(b"half")
    _cubin(FakeCompiler())
    assert not killed.exists()


def test_a_full_disk_while_writing_a_cubin_says_so(kernel_cache, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) + ".part")

    monkeypatch.setattr(kernel_binaries, "write_atomically", full)
    with pytest.raises(NoSpaceError, match=f"no space left on device in {kernel_cache} while writing the compiled "
                                           "im2col.cu"):
        _cubin(FakeCompiler())


# --- the autotuner's files ---------------------------------------------------------------------


@pytest.fixture
def tune_cache(tmp_path, monkeypatch):
    folder = tmp_path / "tune"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv(conv_tune.CACHE_ENV, str(folder))
    monkeypatch.setattr(conv_tune, "_warned", set())
    conv_tune.forget()
    yield folder
    conv_tune.forget()


def _tune_once(rng):
    timer = lambda run, label: {"im2col": 1.0, "direct": 2.0, "implicit_gemm": 4.0}[label]  # noqa: E731
    x, w = rng.standard_normal((1, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
    with gpuconv.backend("numpy"), conv_tune.inject_timer("Fake GPU", timer), gpuconv.flags(conv_benchmark=True):
        F.conv2d(x, w)


def test_the_autotuner_lock_does_not_follow_a_planted_link(tune_cache, tmp_path, rng):
    target = tmp_path / "victim-file"
    lock = conv_tune.cache_path().with_name(conv_tune.cache_path().name + ".lock")
    lock.symlink_to(target)
    with pytest.warns(RuntimeWarning, match="cannot write the conv autotuner cache"):
        _tune_once(rng)
    assert not target.exists() and lock.is_symlink()


def test_the_autotuner_refuses_a_lock_of_another_user(tune_cache, monkeypatch, rng):
    lock = conv_tune.cache_path().with_name(conv_tune.cache_path().name + ".lock")
    lock.write_text("")
    lock.chmod(0o666)
    with pytest.warns(RuntimeWarning, match="refusing the autotuner's lock file: .*writable by group or others"):
        _tune_once(rng)
    assert not conv_tune.cache_path().exists()


def test_the_autotuner_ignores_a_cache_file_others_could_have_written(tune_cache, rng):
    path = conv_tune.cache_path()
    planted = {"format": 1, "entries": {"planted": "direct"}}
    path.write_text(json.dumps(planted))
    path.chmod(0o666)
    with pytest.warns(RuntimeWarning, match=r"writable by group or others \(mode 666\); the conv autotuner ignores it"):
        _tune_once(rng)
    entries = json.loads(path.read_text())["entries"]
    assert "planted" not in entries and list(entries.values()) == ["im2col"]  # replaced by one of ours
    assert path.stat().st_mode & 0o077 == 0


def test_a_deeply_nested_autotuner_cache_is_corrupt_not_a_recursion_error(tune_cache, rng):
    path = conv_tune.cache_path()
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.warns(RuntimeWarning, match="corrupt conv autotuner cache .*RecursionError"):
        _tune_once(rng)
    assert list(json.loads(path.read_text())["entries"].values()) == ["im2col"]  # rewritten
