"""The cupy loader's choice of binary: shipped, cached, or compiled now (no GPU needed: the device's
compute capability and the compiler are passed in)."""

from __future__ import annotations

import json
import time

import pytest

from gpuconv.backend import compile_notice, kernel_binaries
from gpuconv.backend.aot import MANIFEST, pick_binary, program_hash, with_defines
from gpuconv.backend.kernel_source import kernels_dir, read_source

SHIPPED = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "compute_90")


@pytest.mark.parametrize("capability, expected", [
    ((7, 5), "sm_75"), ((8, 0), "sm_80"), ((8, 6), "sm_86"), ((8, 7), "sm_86"), ((8, 9), "sm_89"),
    ((9, 0), "sm_90"), ((10, 0), "compute_90"), ((12, 0), "compute_90"), ((7, 0), None), ((6, 1), None),
])
def test_pick_binary_uses_same_major_cubins_then_ptx(capability, expected):
    assert pick_binary(SHIPPED, capability) == expected


def test_pick_binary_never_picks_a_newer_minor_or_newer_ptx():
    assert pick_binary(["sm_86"], (8, 0)) is None
    assert pick_binary(["compute_90"], (8, 9)) is None


class FakeCompiler:
    def __init__(self, seconds: float = 0.0):
        self.calls = []
        self.seconds = seconds

    def __call__(self, program, name, arch, options):
        self.calls.append((name, arch, program))
        time.sleep(self.seconds)
        return b"CUBIN:" + arch.encode()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUCONV_KERNEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A fake wheel folder of binaries for pool.cu, with today's source hash in its manifest."""
    folder = tmp_path / "bin"
    folder.mkdir()
    name, text = read_source("pool.cu")
    binaries = {arch: f"pool.{arch}.bin" for arch in SHIPPED}
    for file_name in binaries.values():
        (folder / file_name).write_bytes(b"shipped")
    manifest = {"kernels": {"pool.cu": {"hash": program_hash(with_defines(name, text, None),
                                                             kernels_dir().glob("*.cuh")),
                                        "binaries": binaries}}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(kernel_binaries, "shipped_dir", lambda: folder)
    kernel_binaries._manifest.cache_clear()
    yield folder
    kernel_binaries._manifest.cache_clear()


def test_a_shipped_binary_is_preferred(shipped, cache):
    compiler = FakeCompiler()
    assert kernel_binaries.binary_path("pool.cu", None, (8, 7), compiler) == shipped / "pool.sm_86.bin"
    assert kernel_binaries.binary_path("pool.cu", {}, (9, 0), compiler) == shipped / "pool.sm_90.bin"
    assert compiler.calls == []


@pytest.mark.parametrize("why, defines, capability", [
    ("another architecture", None, (7, 0)),
    ("non-default defines", {"GC_TEST": 1}, (9, 0)),
])
def test_compiles_into_the_cache_when_no_shipped_binary_fits(shipped, cache, capsys, monkeypatch, why, defines,
                                                             capability):
    monkeypatch.setattr(compile_notice, "NOTICE_AFTER_SECONDS", 0.01)
    compiler = FakeCompiler(seconds=0.5)  # a compile slower than the notice threshold
    path = kernel_binaries.binary_path("pool.cu", defines, capability, compiler)
    arch = f"sm_{capability[0]}{capability[1]}"
    assert path.parent == cache and path.name.endswith(f".{arch}.cubin")
    assert path.read_bytes() == b"CUBIN:" + arch.encode()
    assert [(name, a) for name, a, _ in compiler.calls] == [("pool.cu", arch)]
    assert compiler.calls[0][2] == with_defines("pool.cu", read_source("pool.cu")[1], defines)
    assert f"compiling pool.cu for {arch}" in capsys.readouterr().err
    # A second process (or call) finds it in the cache and compiles nothing.
    again = FakeCompiler()
    assert kernel_binaries.binary_path("pool.cu", defines, capability, again) == path
    assert again.calls == [] and capsys.readouterr().err == ""


def test_a_missing_or_stale_shipped_binary_falls_back_to_compiling(shipped, cache):
    manifest = json.loads((shipped / MANIFEST).read_text())
    manifest["kernels"]["pool.cu"]["hash"] = "0" * 64  # built from other sources
    (shipped / MANIFEST).write_text(json.dumps(manifest))
    kernel_binaries._manifest.cache_clear()
    compiler = FakeCompiler()
    path = kernel_binaries.binary_path("pool.cu", None, (9, 0), compiler)
    assert path.parent == cache and len(compiler.calls) == 1
    # A file the shipped manifest does not list (as in a source checkout, which has no binaries) compiles too.
    compiler = FakeCompiler()
    assert kernel_binaries.binary_path("im2col.cu", None, (9, 0), compiler).parent == cache
    assert [name for name, _, _ in compiler.calls] == ["im2col.cu"]


def test_other_defines_or_sources_get_their_own_cache_entry(cache):
    compiler = FakeCompiler()
    a = kernel_binaries.binary_path("im2col.cu", None, (9, 0), compiler)
    b = kernel_binaries.binary_path("im2col.cu", {"GC_TEST": 2}, (9, 0), compiler)
    c = kernel_binaries.binary_path("im2col.cu", None, (8, 6), compiler)
    assert len({a, b, c}) == 3 and len(compiler.calls) == 3


def test_a_failed_compile_leaves_no_file(cache):
    def failing(program, name, arch, options):
        raise RuntimeError("NVRTC said no")

    with pytest.raises(RuntimeError, match="NVRTC said no"):
        kernel_binaries.binary_path("im2col.cu", None, (9, 0), failing)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GPUCONV_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kernel_binaries.cache_dir() == tmp_path / "gpuconv" / "kernels"
    monkeypatch.setenv("GPUCONV_KERNEL_CACHE", str(tmp_path / "mine"))
    assert kernel_binaries.cache_dir() == tmp_path / "mine"
