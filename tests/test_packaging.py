"""The wheel ships the kernels: a non-editable install, used from outside the repo, finds and runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gpuconv.backend.emulated_backend import unavailable_reason

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


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")
def test_installed_package_runs_im2col_on_the_emulator_from_outside_the_repo(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
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
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GPUCONV_BACKEND")}
    env.update(PYTHONPATH=str(target), GPUCONV_EMU_CACHE=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    kernels_path, status = run.stdout.split()
    assert Path(kernels_path) == target / "gpuconv" / "_kernels"
    assert status == "ok"


def test_installed_package_provides_the_gpuconv_bench_command(wheel, tmp_path):
    entry_points = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert "gpuconv-bench = gpuconv.bench.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
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
