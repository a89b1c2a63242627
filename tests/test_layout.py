"""The mirror convention of DESIGN.md section 6: ``kernels/pool.cu`` <-> ``gpuconv/functional/pool.py``
<-> ``tests/test_pool.py``. Every op family (a module or package of gpuconv/functional) has the test
file named after it; every ``kernels/*.cu`` file has the test files that run it. What is no op family
of its own, and the kernels whose tests are not named after them, are listed here with why.

Tests that cross families (robustness, memory, autograd, models, training, the emulator) keep files
of their own; this file only checks that each family's home exists.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONAL = ROOT / "gpuconv" / "functional"
KERNELS = ROOT / "kernels"
TESTS = ROOT / "tests"

# Modules of gpuconv/functional that are no op family: name -> (the family they serve, why). Their
# tests live in that family's files (a private ``_*`` module is no family either: shared helpers).
NOT_A_FAMILY = {
    "conv_algo": ("conv", "which algorithm runs per direction and its workspace: part of conv2d"),
    "conv_algos": ("conv", "the convolution-algorithm registry, one module per algorithm of conv2d"),
    "conv_geometry": ("conv", "conv2d's shape arithmetic and argument checks"),
    "conv_primitives": ("conv", "the backend contract's convolution primitives (a Protocol, no op)"),
    "conv_tune": ("conv", "conv2d's autotuner (tests/test_conv_tune.py)"),
    "pool_integer": ("pool", "max_pool2d on integer images, called by pool.max_pool2d only"),
}

# Kernel files whose tests are not tests/test_<kernel>.py: kernel -> {test file: why}.
KERNEL_TESTS = {
    "conv_direct.cu": {"test_conv.py": "conv2d's algo='direct', every direction"},
    "conv_epilogue.cu": {"test_conv.py": "the bias epilogue of conv2d's im2col algorithm"},
    "elementwise.cu": {
        "test_activation.py": "relu and leaky_relu, their vector path and tail",
        "test_dropout.py": "the dropout mask and its application",
        "test_optim.py": "the fused SGD, Adam, RMSprop and Adagrad steps",
        "test_arith.py": "add, accumulate, fill, the bias add, the step counter, strided copies",
    },
    "reduce.cu": {"test_arith.py": "channel_sum: sum_except_channel and the bias gradients"},
    "softmax.cu": {"test_activation.py": "softmax and log_softmax live in gpuconv/functional/activation.py"},
}


def op_families(functional: Path) -> list[str]:
    """The op families of a gpuconv/functional tree: its public modules (``x.py``) and packages
    (``x/__init__.py``), less the private ``_*`` ones and :data:`NOT_A_FAMILY`."""
    names = {p.stem for p in functional.glob("*.py")} | {p.parent.name for p in functional.glob("*/__init__.py")}
    return sorted(n for n in names if not n.startswith("_") and n not in NOT_A_FAMILY)


def families_without_tests(functional: Path, tests: Path) -> list[str]:
    """The op families of ``functional`` that have no ``tests/test_<family>.py``."""
    return [name for name in op_families(functional) if not (tests / f"test_{name}.py").is_file()]


def kernel_test_files(kernel: str, tests: Path) -> list[str]:
    """The existing test files that run ``kernel`` (``x.cu``): tests/test_x.py and those of :data:`KERNEL_TESTS`."""
    candidates = [f"test_{Path(kernel).stem}.py", *KERNEL_TESTS.get(kernel, {})]
    return [name for name in candidates if (tests / name).is_file()]


def kernels_without_tests(kernels: Path, tests: Path) -> list[str]:
    """The ``*.cu`` files of ``kernels`` that no test file runs, by :func:`kernel_test_files`."""
    return sorted(p.name for p in kernels.glob("*.cu") if not kernel_test_files(p.name, tests))


def test_every_op_family_has_its_test_file():
    assert op_families(FUNCTIONAL), "no op family found: is FUNCTIONAL the package's folder?"
    assert families_without_tests(FUNCTIONAL, TESTS) == [], (
        "name the tests of an op family tests/test_<family>.py, or list the module in NOT_A_FAMILY with why")


def test_modules_that_are_no_family_name_a_family_with_tests():
    families = op_families(FUNCTIONAL)
    for name, (family, why) in NOT_A_FAMILY.items():
        assert why and family in families, f"{name}: {family!r} is no op family of gpuconv/functional"
        assert (TESTS / f"test_{family}.py").is_file(), name


def test_every_kernel_file_has_tests():
    assert list(KERNELS.glob("*.cu")), "no kernel found: is KERNELS the kernels folder?"
    assert kernels_without_tests(KERNELS, TESTS) == [], (
        "name the tests of a kernel tests/test_<kernel>.py, or list them in KERNEL_TESTS with why")


def test_every_listed_kernel_test_exists():
    """A listed test file that was renamed or removed is stale, even where another one still covers the kernel."""
    for kernel, users in KERNEL_TESTS.items():
        assert (KERNELS / kernel).is_file(), f"KERNEL_TESTS names {kernel}, which is not in kernels/"
        for name, why in users.items():
            assert why and (TESTS / name).is_file(), f"{kernel}: {name} does not exist"


def _copy_names(src: Path, dst: Path, pattern: str, leave_out: str = "") -> None:
    """Empty files with the names of ``src``'s files matching ``pattern`` (keeping sub-folders), less ``leave_out``."""
    for path in src.glob(pattern):
        if path.is_file() and path.name != leave_out:
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()


def test_a_family_without_its_test_file_is_reported(tmp_path):
    """The real layout with tests/test_group_norm.py left out, and a new family package and module."""
    functional, tests = tmp_path / "functional", tmp_path / "tests"
    _copy_names(FUNCTIONAL, functional, "*.py")
    _copy_names(FUNCTIONAL, functional, "*/__init__.py")
    _copy_names(TESTS, tests, "test_*.py", leave_out="test_group_norm.py")
    assert families_without_tests(functional, tests) == ["group_norm"]
    (functional / "lp_pool").mkdir()
    (functional / "lp_pool" / "__init__.py").touch()
    (functional / "_private_helper.py").touch()
    (functional / "affine_grid.py").touch()
    assert families_without_tests(functional, tests) == ["affine_grid", "group_norm", "lp_pool"]


def test_a_kernel_without_tests_is_reported(tmp_path):
    """The real layout with tests/test_loss.py left out (loss.cu's mirror), then a listed user of softmax.cu."""
    kernels, tests = tmp_path / "kernels", tmp_path / "tests"
    _copy_names(KERNELS, kernels, "*.cu")
    _copy_names(TESTS, tests, "test_*.py", leave_out="test_loss.py")
    assert kernels_without_tests(kernels, tests) == ["loss.cu"]
    (tests / "test_activation.py").unlink()
    assert kernels_without_tests(kernels, tests) == ["loss.cu", "softmax.cu"]
    (kernels / "new_op.cu").touch()
    assert kernels_without_tests(kernels, tests) == ["loss.cu", "new_op.cu", "softmax.cu"]
