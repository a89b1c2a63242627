"""Layers and models: ``gpuconv.nn``, PyTorch's names, arguments and defaults.

Modules implement ``forward`` only; autograd derives the backward: ``loss = crit(model(x), t)``,
``loss.backward()`` fills each parameter's ``.grad``.
"""

from . import (activation, container, conv, conv_transpose, fuse, linear, loss, group_norm, misc, module, norm,
               parameter, pooling, resnet_blocks, upsample, sync_batchnorm)
from . import init, parallel

# Each module lists its public names in its __all__: a new layer is added there, not here.
__all__: list[str] = ["init", "parallel"]
for _module in (activation, container, conv, conv_transpose, fuse, linear, loss, group_norm, misc, module, norm,
                parameter, pooling, resnet_blocks, upsample, sync_batchnorm):
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
del _module, _name
