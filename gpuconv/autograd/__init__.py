"""Define-by-run automatic differentiation, PyTorch's model: ``gpuconv.Tensor`` records the ops on it,
``loss.backward()`` computes the gradients of every leaf that requires grad.

- :class:`Function` adds an op with its own kernel (static ``forward(ctx, ...)``/``backward(ctx, ...)``).
- :func:`grad` returns gradients without touching ``.grad``; :func:`backward` is ``Tensor.backward``
  for several outputs.
- :func:`gradcheck` checks a function's gradients against central finite differences in float64.
- ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``: grad mode, per thread.

First-order only: backward is not itself recorded, so ``create_graph=True`` (higher-order gradients)
raises NotImplementedError.
"""

from ..grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .functions import Function, FunctionCtx, backward, grad
from .gradcheck import GradcheckError, gradcheck
from .graph import Node
from .tensor import Tensor

__all__ = ["Function", "FunctionCtx", "GradcheckError", "Node", "Tensor", "backward", "enable_grad", "grad",
           "gradcheck", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled"]
