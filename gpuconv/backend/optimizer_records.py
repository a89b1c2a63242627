"""The records a fused optimizer step (``multi_tensor_step``, gpuconv/optim/optimizer.py's
``OptimizerPrimitives``) takes: one :class:`TensorRow` per parameter, and per update a record of
its launch scalars whose fields are the kernel's parameters in order (kernels/elementwise.cu), so
an optimizer names what it passes and a row or argument out of place is a TypeError, not a silent
swap. They live here, below both the optimizers and the backends that read them."""

from __future__ import annotations

from typing import Any, NamedTuple


class TensorRow(NamedTuple):
    """One parameter of a fused step: C-contiguous arrays of one dtype and shape (an unused state is
    None), ``flags`` (bits the update reads, e.g. SGD's "the momentum buffer holds a step") and two
    per-tensor scalars (Adam's -step size and sqrt of the second bias correction, Adagrad's -lr)."""

    param: Any
    grad: Any
    state0: Any = None
    state1: Any = None
    state2: Any = None
    flags: int = 0
    scalar0: float = 0.0
    scalar1: float = 0.0

    @property
    def arrays(self) -> tuple[Any, Any, Any, Any, Any]:
        """The five array columns of the kernel's table, in order (param, grad, state0-2)."""
        return self.param, self.grad, self.state0, self.state1, self.state2


class SgdStepArgs(NamedTuple):
    neg_lr: Any
    momentum: Any
    one_minus_dampening: Any
    weight_decay: Any
    use_momentum: Any
    use_weight_decay: Any
    nesterov: Any
    maximize: Any


class AdamStepArgs(NamedTuple):
    w1: Any
    one_minus_w1: Any
    w1_small: Any
    beta2: Any
    one_minus_beta2: Any
    eps: Any
    weight_decay: Any
    decay_factor: Any
    use_weight_decay: Any
    decoupled: Any
    amsgrad: Any
    maximize: Any


class RmspropStepArgs(NamedTuple):
    neg_lr: Any
    alpha: Any
    one_minus_alpha: Any
    w: Any
    one_minus_w: Any
    w_small: Any
    eps: Any
    weight_decay: Any
    momentum: Any
    use_weight_decay: Any
    use_momentum: Any
    centered: Any
    maximize: Any


class AdagradStepArgs(NamedTuple):
    eps: Any
    weight_decay: Any
    use_weight_decay: Any
    maximize: Any


#: The launch-scalar record each update kernel takes.
STEP_ARGS = {"sgd_step": SgdStepArgs, "adam_step": AdamStepArgs, "rmsprop_step": RmspropStepArgs,
             "adagrad_step": AdagradStepArgs}


def check_step_records(op: str, rows: list, args: Any) -> None:
    """TypeError unless ``rows`` are TensorRows and ``args`` is ``op``'s launch record (a positional
    tuple would bind scalars to kernel parameters by position alone)."""
    if op not in STEP_ARGS:
        raise ValueError(f"op must be one of {', '.join(STEP_ARGS)}, got {op!r}")
    if not isinstance(args, STEP_ARGS[op]):
        raise TypeError(f"{op}: args must be a {STEP_ARGS[op].__name__}, got {type(args).__name__}")
    for row in rows:
        if not isinstance(row, TensorRow):
            raise TypeError(f"{op}: rows must be TensorRow records, got {type(row).__name__}")
