from .builder import LRSCHEDULERS, OPTIMIZERS, build_lr_scheduler, build_optimizer
from .lr_scheduler import LinearDecay
