"""The wheel ships the kernels, as sources and as NVRTC binaries for every supported GPU: a non-editable
install, used from outside the repo, finds and runs them, and its loader picks the shipped binaries."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gpuconv.backend.aot import CUBIN_ARCHITECTURES, MANIFEST, PTX_ARCHITECTURE
from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.signature import parse_signatures

from .elf_symbols import function_symbols

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (in gpuconv[test])")
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build writes build/ and *.egg-info into the checkout, and two
    # test processes building at once would trip over each other there.
    source = out / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info",
                                                                 "__pycache__", "benchmarks", "examples"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out),
         str(source)], capture_output=True, text=True, check=False, cwd=str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("gpuconv-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contains_every_module_and_kernel_source(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"gpuconv/_kernels/{p.name}" for p in (REPO / "kernels").glob("*.cu*")}
    expected.add("gpuconv/_kernels/emu/cuda_emu.h")
    expected |= {p.relative_to(REPO).as_posix() for p in (REPO / "gpuconv").rglob("*.py")}
    assert expected <= names, sorted(expected - names)


def test_wheel_ships_a_binary_per_kernel_file_and_architecture_with_every_entry_point(wheel):
    archive = zipfile.ZipFile(wheel)
    manifest = json.loads(archive.read(f"gpuconv/_kernels/bin/{MANIFEST}"))["kernels"]
    sources = sorted((REPO / "kernels").glob("*.cu"))
    assert sorted(manifest) == [p.name for p in sources]
    for source in sources:
        entry_points = set(parse_signatures(source.read_text(), source.name))
        assert entry_points, source.name
        binaries = manifest[source.name]["binaries"]
        assert sorted(binaries) == sorted((*CUBIN_ARCHITECTURES, PTX_ARCHITECTURE))
        for arch in CUBIN_ARCHITECTURES:
            cubin = archive.read(f"gpuconv/_kernels/bin/{binaries[arch]}")
            missing = entry_points - function_symbols(cubin)
            assert not missing, f"{binaries[arch]} lacks {sorted(missing)}"
        ptx = archive.read(f"gpuconv/_kernels/bin/{binaries[PTX_ARCHITECTURE]}").decode()
        assert f".target sm_{PTX_ARCHITECTURE.split('_')[1]}" in ptx
        missing = {name for name in entry_points if f".entry {name}(" not in ptx}
        assert not missing, f"{binaries[PTX_ARCHITECTURE]} lacks {sorted(missing)}"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    return target


def _run_installed(installed: Path, tmp_path: Path, script: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GPUCONV_BACKEND")}
    env.update(PYTHONPATH=str(installed), GPUCONV_EMU_CACHE=str(tmp_path / "emu"),
               GPUCONV_KERNEL_CACHE=str(tmp_path / "kernels"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")
def test_installed_package_runs_im2col_on_the_emulator_from_outside_the_repo(installed, tmp_path):
    script = (
        "import numpy as np, gpuconv, gpuconv.functional as F\n"
        "from gpuconv.backend.kernel_source import kernels_dir\n"
        "print(kernels_dir())\n"
        "x = np.random.default_rng(0).standard_normal((2, 3, 6, 5))\n"
        "expected = F.im2col(x, 3, padding=1)\n"
        "with gpuconv.backend('emulated'):\n"
        "    got = F.im2col(x, 3, padding=1)\n"
        "assert np.array_equal(got, expected)\n"
        "print('ok')\n")
    kernels_path, status = _run_installed(installed, tmp_path, script).split()
    assert Path(kernels_path) == installed / "gpuconv" / "_kernels"
    assert status == "ok"


def test_installed_loader_picks_the_shipped_binaries_and_compiles_only_for_older_gpus(installed, tmp_path):
    # The manifest's hashes were computed at build time from the repo's sources; the loader recomputes
    # them from the installed sources, so this also proves the two computations agree.
    script = (
        "from gpuconv.backend.kernel_binaries import binary_path\n"
        "def compiler(program, name, arch, options):\n"
        "    print('compiled', name, arch)\n"
        "    return b'fake cubin'\n"
        "for capability in [(7, 5), (8, 6), (8, 7), (9, 0), (12, 0), (7, 0)]:\n"
        "    print(capability[0], capability[1], binary_path('pool.cu', None, capability, compiler).name)\n")
    lines = _run_installed(installed, tmp_path, script).splitlines()
    assert lines[:6] == ["7 5 pool.sm_75.cubin", "8 6 pool.sm_86.cubin", "8 7 pool.sm_86.cubin",
                         "9 0 pool.sm_90.cubin", f"12 0 pool.{PTX_ARCHITECTURE}.ptx", "compiled pool.cu sm_70"]
    assert re.fullmatch(r"7 0 pool-[0-9a-f]{24}\.sm_70\.cubin", lines[6]), lines[6]
    assert len(lines) == 7


def test_installed_package_provides_the_gpuconv_bench_command(wheel, installed, tmp_path):
    entry_points = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert "gpuconv-bench = gpuconv.bench.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    target = installed
    command = target / "bin" / "gpuconv-bench"
    assert command.is_file()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GPUCONV_BACKEND")}
    env.update(PYTHONPATH=str(target))
    run = subprocess.run([str(command), "conv", "--shape", "1,2,5,5,2,3,3,1,1", "--backend", "numpy", "--no-torch",
                          "--repeats", "1", "--format", "json"], capture_output=True, text=True, cwd=tmp_path, env=env,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    from gpuconv.bench.schema import validate

    assert validate(report) == []
    assert [r["status"] for r in report["rows"]] == ["ok"] * 3
    # The command ran the installed copy, not the checkout.
    where = subprocess.run([sys.executable, "-c", "import gpuconv.bench; print(gpuconv.bench.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert Path(where.stdout.strip()).is_relative_to(target)
