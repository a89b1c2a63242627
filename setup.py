"""Package layout and build steps that pyproject.toml cannot express.

- kernels/ (at the top of the repo, beside gpuconv/) ships inside the wheel as gpuconv/_kernels, so a
  non-editable install finds the .cu sources at run time (gpuconv/backend/kernel_source.py looks there
  first).
- A wheel also ships every kernels/*.cu file compiled by NVRTC to CUBIN for each supported GPU
  architecture, plus PTX for newer GPUs, in gpuconv/_kernels/bin (gpuconv/backend/aot.py), so a first
  use on a GPU compiles nothing. ``GPUCONV_AOT=0`` builds a wheel without them. Editable installs
  skip this step: the cupy loader compiles each file on first use into gpuconv's cache.
"""

import importlib.util
import os
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _aot_module():
    # By file path: importing the gpuconv package would need NumPy, which the build environment lacks.
    spec = importlib.util.spec_from_file_location("_gpuconv_aot", HERE / "gpuconv" / "backend" / "aot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithKernelBinaries(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False) or os.environ.get("GPUCONV_AOT", "1") == "0":
            return
        _aot_module().build_binaries(HERE / "kernels", Path(self.build_lib) / "gpuconv" / "_kernels" / "bin",
                                     log=self.announce_info)

    def announce_info(self, message: str) -> None:
        self.announce(message, level=2)


setup(
    packages=find_packages(include=["gpuconv", "gpuconv.*"]) + ["gpuconv._kernels", "gpuconv._kernels.emu"],
    package_dir={"gpuconv._kernels": "kernels"},
    package_data={"gpuconv._kernels": ["*.cu", "*.cuh"], "gpuconv._kernels.emu": ["*.h"]},
    include_package_data=False,
    cmdclass={"build_py": BuildPyWithKernelBinaries},
)
