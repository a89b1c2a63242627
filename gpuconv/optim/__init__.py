"""Optimizers and learning-rate schedulers with PyTorch's names, options and update formulas.

``opt = gpuconv.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)``; after the backward pass,
``opt.step()`` updates every parameter's ``.data`` in place from its ``.grad``.
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
