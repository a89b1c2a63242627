"""How much memory will training this model take: the model's own training step run on shapes only
(nothing computed), checked against measured peaks.

    report = gpuconv.memory.estimate(model, (32, 3, 224, 224), optimizer=opt)
    print(report)            # per-layer rows and params / grads / optimizer_state / ... / peak
    measured = gpuconv.memory.compare(model, (32, 3, 224, 224), optimizer=opt)
"""

from .estimate import estimate
from .measure import Comparison, MeasuredPeak, compare, measure, train_step
from .report import MemoryReport, human
from .summary import suggest_batch_size, summary
from .limits import get_host_limit, set_host_limit

__all__ = ["Comparison", "MeasuredPeak", "MemoryReport", "compare", "estimate", "human", "measure",
           "get_host_limit", "set_host_limit", "suggest_batch_size", "summary", "train_step"]
