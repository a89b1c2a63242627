"""help(gpuconv) introduces the package without private names; nn.Conv2d's docstring names every
convolution algorithm."""

from __future__ import annotations

import pydoc
import re

import gpuconv
from gpuconv import nn
from gpuconv.functional import conv_algo


def _help_text(obj) -> str:
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)


def test_help_introduces_backends_and_main_modules():
    doc = gpuconv.__doc__
    for backend in ("numpy", "cupy", "emulated", "auto"):
        assert re.search(rf"^\s+{backend}\s", doc, flags=re.MULTILINE), f"backend {backend} not introduced"
    for module in ("gpuconv.functional", "gpuconv.nn", "gpuconv.optim", "gpuconv.models", "gpuconv.memory"):
        assert module in doc, module


def test_help_lists_no_private_names():
    text = _help_text(gpuconv)
    listed = re.findall(r"^    (\w+)", text, flags=re.MULTILINE)  # entries of SUBMODULES, FUNCTIONS, DATA, ...
    private = [name for name in listed if name.startswith("_") and not name.startswith("__")]
    assert not private, private
    assert "SUBMODULES" not in text or "_backend" not in text


def test_conv2d_docstring_names_every_algorithm():
    for algo in conv_algo.ALGOS:
        assert f'"{algo}"' in nn.Conv2d.__doc__, algo


def test_functional_and_nn_export_what_their_modules_list():
    """gpuconv.functional and gpuconv.nn take their public names from their modules' __all__, and a star
    import gets every one of them (it raised AttributeError while nn.__all__ named a missing "add")."""
    import gpuconv.functional as F

    for package in (F, nn):
        namespace: dict = {}
        exec(f"from {package.__name__} import *", namespace)
        assert set(package.__all__) <= set(namespace), package.__name__
        assert len(package.__all__) == len(set(package.__all__)), package.__name__
    assert "max_pool2d" in F.__all__ and "MaxPool2d" in nn.__all__ and "init" in nn.__all__
    assert not any(name.startswith("_") for name in F.__all__ + nn.__all__)
