"""gpuconv.models and gpuconv.train are reachable from ``import gpuconv`` alone and imported only on
first use; gpuconv.transforms is reachable too."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gpuconv


def test_submodules_load_on_first_attribute_access():
    code = ("import sys, gpuconv\n"
            "lazy = ('gpuconv.models', 'gpuconv.train')\n"
            "print(sorted(m for m in lazy if m in sys.modules))\n"
            "model = gpuconv.models.resnet18(num_classes=3)\n"
            "print(type(model).__name__, gpuconv.models is sys.modules['gpuconv.models'])\n"
            "print(gpuconv.train.fit.__name__, gpuconv.transforms.Compose.__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["[]", "ResNet True", "fit Compose"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'modelz'"):
        gpuconv.modelz
    assert {"models", "train", "transforms"} <= set(dir(gpuconv))
