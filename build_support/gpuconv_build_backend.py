"""gpuconv's PEP 517 build backend: setuptools', with NVRTC added to the build environment of a wheel.

A wheel ships every kernels/*.cu file precompiled (setup.py), which needs NVRTC at build time; an
editable install does not (its kernels compile on first use), so only wheel builds ask for it.
"""

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the rest of the PEP 517 interface, unchanged)

NVRTC_REQUIREMENT = "nvidia-cuda-nvrtc-cu12"


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + [NVRTC_REQUIREMENT]
