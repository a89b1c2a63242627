"""The emulated backend's library cache: it never loads a library someone else could have written
or one that is damaged (it compiles it again), works around an unusable cache folder, removes the
build folders of killed compiles, and names a full disk. A tiny kernel keeps each compile short."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from gpuconv.backend import cache_folder, cache_sweep, cache_trust
from gpuconv.backend.emulated import loader as emulated_loader
from gpuconv.backend.disk_full import NoSpaceError
from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.emulated.loader import EmulatedModule

pytestmark = [pytest.mark.skipif(unavailable_reason() is not None,
                                 reason=f"emulator unavailable: {unavailable_reason()}"),
              pytest.mark.usefixtures("fresh_cache_decisions")]

KERNEL = """\
extern "C" __global__ void add_one(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}
"""
# A library whose constructor leaves a mark: what an attacker would plant.
PLANTED = """\
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE* f = fopen(MARK, "w");
    if (f) { fputs("ran", f); fclose(f); }
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The kernel's source and one trusted build of it (library and digest), made once."""
    root = tmp_path_factory.mktemp("emu-cache")
    source = root / "add_one.cu"
    source.write_text(KERNEL)
    pristine = root / "pristine"
    previous = os.environ.get(emulated_loader.CACHE_ENV)
    os.environ[emulated_loader.CACHE_ENV] = str(pristine)
    try:
        cache_folder.forget_decisions()
        EmulatedModule(source)
    finally:
        cache_folder.forget_decisions()
        if previous is None:
            del os.environ[emulated_loader.CACHE_ENV]
        else:
            os.environ[emulated_loader.CACHE_ENV] = previous
    (library,) = pristine.glob("*.so")
    return source, library


@pytest.fixture
def cache(tmp_path, monkeypatch, built):
    """A cache folder of the user's holding a copy of the trusted build; (folder, library path)."""
    folder = tmp_path / "emu"
    folder.mkdir(mode=0o700)
    _, library = built
    for path in (library, cache_trust.digest_path(library)):
        shutil.copy2(path, folder / path.name)
    monkeypatch.setenv(emulated_loader.CACHE_ENV, str(folder))
    return folder, folder / library.name


def _works(source) -> None:
    x = np.arange(5, dtype=np.float32)
    EmulatedModule(source).get_function("add_one")((1,), (32,), (x, np.int32(5)))
    np.testing.assert_array_equal(x, np.arange(1, 6, dtype=np.float32))


def _plant(library: Path, mark: Path) -> None:
    """Replaces ``library`` with one whose constructor writes ``mark``, plus a matching digest."""
    c_file = library.with_name("planted.c")
    c_file.write_text(PLANTED)
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARK="{mark}"', str(c_file), "-o", str(library)], check=True)
    c_file.unlink()
    cache_trust.record_digest(library)


def _counting_compiles(monkeypatch) -> list[str]:
    calls = []
    real = EmulatedModule._compile

    def counting(*args):
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(EmulatedModule, "_compile", staticmethod(counting))
    return calls


def test_a_trusted_intact_library_is_loaded_without_compiling(built, cache, monkeypatch):
    compiles = _counting_compiles(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _works(built[0])
    assert compiles == []


def test_a_library_planted_in_a_world_writable_folder_never_runs(built, cache, tmp_path, monkeypatch):
    folder, library = cache
    mark = tmp_path / "constructor-ran"
    _plant(library, mark)
    folder.chmod(0o777)  # anyone could have put it there
    compiles = _counting_compiles(monkeypatch)
    with pytest.warns(RuntimeWarning, match=r"cache folder .* writable by group or others.*private folder"):
        _works(built[0])
    assert not mark.exists() and compiles == ["add_one.cu"]


def test_a_library_of_another_user_never_runs(built, cache, tmp_path, monkeypatch):
    folder, library = cache
    mark = tmp_path / "constructor-ran"
    _plant(library, mark)
    emulated_loader.cache_dir()  # the folder is the user's: decided before "another user" wrote the file
    me = cache_trust.current_uid()
    monkeypatch.setattr(cache_trust, "current_uid", lambda: me + 1)
    compiles = _counting_compiles(monkeypatch)
    with pytest.warns(RuntimeWarning, match=rf"{library.name} is owned by uid {me}, not by this user.*compiling it again"):
        _works(built[0])
    assert not mark.exists() and compiles == ["add_one.cu"]


def test_a_group_writable_library_is_refused(built, cache, tmp_path, monkeypatch):
    _, library = cache
    mark = tmp_path / "constructor-ran"
    _plant(library, mark)
    library.chmod(0o775)
    compiles = _counting_compiles(monkeypatch)
    with pytest.warns(RuntimeWarning, match="writable by group or others .*compiling it again"):
        _works(built[0])
    assert not mark.exists() and compiles == ["add_one.cu"]
    assert library.stat().st_mode & 0o022 == 0


@pytest.mark.parametrize("damage", ["random bytes", "empty", "truncated to 10 KiB"])
def test_a_damaged_library_is_rebuilt(built, cache, monkeypatch, damage):
    _, library = cache
    data = library.read_bytes()
    library.write_bytes({"random bytes": os.urandom(len(data)), "empty": b"",
                         "truncated to 10 KiB": data[:10 * 1024]}[damage])
    compiles = _counting_compiles(monkeypatch)
    with pytest.warns(RuntimeWarning, match="does not match its recorded digest"):
        _works(built[0])  # before: invalid ELF header / file too short / SIGBUS
    assert compiles == ["add_one.cu"] and cache_trust.binary_problem(library) is None


def test_a_library_without_a_digest_is_rebuilt_quietly(built, cache, monkeypatch):
    _, library = cache
    cache_trust.digest_path(library).unlink()  # a cache written before digests were recorded
    compiles = _counting_compiles(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _works(built[0])
    assert compiles == ["add_one.cu"] and cache_trust.binary_problem(library) is None


@pytest.mark.parametrize("where", ["a regular file", "under /proc", "read-only (/sys)"])
def test_an_unusable_cache_location_leaves_the_backend_usable(built, tmp_path, monkeypatch, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    path = {"a regular file": blocker, "under /proc": "/proc/gpuconv-test-emu",
            "read-only (/sys)": "/sys/gpuconv-test-emu"}[where]
    monkeypatch.setenv(emulated_loader.CACHE_ENV, str(path))
    with pytest.warns(RuntimeWarning, match="cannot create cache folder .*private folder"):
        _works(built[0])


def test_a_killed_compile_leaves_nothing_for_long(built, tmp_path, monkeypatch):
    """A compile killed with SIGKILL leaves its .build-* folder; the next compile removes it."""
    folder = tmp_path / "emu"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time
        from gpuconv.backend.emulated import loader as emulated_loader
        from gpuconv.backend.emulated.loader import EmulatedModule
        real_run = emulated_loader.subprocess.run
        def slow_run(cmd, **kwargs):
            if "-c" in cmd:  # the compile step (not `g++ --version`)
                print("compiling", flush=True)
                time.sleep(60)  # killed here, its build folder in place
            return real_run(cmd, **kwargs)
        emulated_loader.subprocess.run = slow_run
        EmulatedModule({str(built[0])!r})
        """)], env=dict(os.environ, **{emulated_loader.CACHE_ENV: str(folder)}, PYTHONPATH=str(Path(__file__).parent.parent)),
        stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "compiling"
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = list(folder.glob(".build-*"))
    assert len(left) == 1 and left[0].is_dir()
    monkeypatch.setenv(emulated_loader.CACHE_ENV, str(folder))
    _works(built[0])
    assert list(folder.glob(".build-*")) == []


def test_a_live_compiles_build_folder_is_left_alone(built, tmp_path, monkeypatch):
    folder = tmp_path / "emu"
    folder.mkdir(mode=0o700)
    running = folder / f"{cache_sweep.temp_prefix('build')}other-thread"
    running.mkdir()
    monkeypatch.setenv(emulated_loader.CACHE_ENV, str(folder))
    _works(built[0])
    assert running.is_dir()


@pytest.mark.parametrize("how", ["the compiler says so", "a write fails"])
def test_a_full_disk_is_not_reported_as_a_compiler_failure(built, tmp_path, monkeypatch, how):
    folder = tmp_path / "emu"
    monkeypatch.setenv(emulated_loader.CACHE_ENV, str(folder))
    if how == "the compiler says so":
        def full(cmd, **kwargs):
            return subprocess.CompletedProcess(cmd, 1, "", f"cc1plus: fatal error: error writing to {folder}/"
                                                            ".build-x/ccA.s: No space left on device\n")
        monkeypatch.setattr(emulated_loader.subprocess, "run", full)
        expected = f"no space left on device in {folder}/.build-x while compiling add_one.cu"
    else:
        def full(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / ".build-y" / "add_one.cu"))
        monkeypatch.setattr(Path, "write_text", full)
        expected = f"no space left on device in {folder}/.build-y while compiling add_one.cu"
    with pytest.raises(NoSpaceError, match=expected):
        EmulatedModule(built[0])
    assert not list(folder.glob(".build-*"))
