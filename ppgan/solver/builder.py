"""OPTIMIZERS and LRSCHEDULERS registries, built from the `optimizer` / `lr_scheduler` sections."""
import copy
from typing import Any, Dict, List, Optional

import paddle

from ..utils.registry import Registry

OPTIMIZERS = Registry("OPTIMIZER")
LRSCHEDULERS = Registry("LRSCHEDULER")

for _optimizer in (paddle.optimizer.Adam, paddle.optimizer.AdamW, paddle.optimizer.SGD,
                   paddle.optimizer.Momentum, paddle.optimizer.RMSProp):
    OPTIMIZERS.register(_optimizer)

for _scheduler in (paddle.optimizer.lr.MultiStepDecay, paddle.optimizer.lr.StepDecay,
                   paddle.optimizer.lr.CosineAnnealingDecay, paddle.optimizer.lr.PiecewiseDecay):
    LRSCHEDULERS.register(_scheduler)


def build_lr_scheduler(cfg: Dict[str, Any], iters_per_epoch: Optional[int] = None):
    """A scheduler from its section; an `iters_per_epoch` key is filled with the real value."""
    kwargs = copy.deepcopy(dict(cfg))
    cls = LRSCHEDULERS.get(kwargs.pop("name"))
    if "iters_per_epoch" in kwargs and iters_per_epoch is not None:
        # PaddleGAN's configs say "will get from real dataset": the train loader's length.
        kwargs["iters_per_epoch"] = iters_per_epoch
    return cls(**kwargs)


def build_optimizer(cfg: Dict[str, Any], lr_scheduler, parameters: List[paddle.Tensor]):
    """An optimizer from its section (without `net_names`) over `parameters`."""
    kwargs = copy.deepcopy(dict(cfg))
    kwargs.pop("net_names", None)
    cls = OPTIMIZERS.get(kwargs.pop("name"))
    if cls in (paddle.optimizer.Adam, paddle.optimizer.AdamW):
        # The same update, one fused kernel for all parameters. Per-parameter Adam kernels on
        # the CPU leave the math library's worker threads fighting each other, which slows the
        # next forward/backward several times over (README.md's training figures).
        kwargs.setdefault("use_multi_tensor", True)
    return cls(learning_rate=lr_scheduler, parameters=parameters, **kwargs)
