"""Package layout that pyproject.toml cannot express: kernels/ (at the top of the repo, beside
gpuconv/) ships inside the wheel as gpuconv/_kernels, so a non-editable install finds the .cu
sources at run time (gpuconv/backend/kernel_source.py looks there first)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["gpuconv", "gpuconv.*"]) + ["gpuconv._kernels", "gpuconv._kernels.emu"],
    package_dir={"gpuconv._kernels": "kernels"},
    package_data={"gpuconv._kernels": ["*.cu", "*.cuh"], "gpuconv._kernels.emu": ["*.h"]},
    include_package_data=False,
)
