"""Learning-rate schedules beyond Paddle's own (which are registered in builder.py)."""
import paddle

from .builder import LRSCHEDULERS


@LRSCHEDULERS.register()
class LinearDecay(paddle.optimizer.lr.LRScheduler):
    """PaddleGAN's LinearDecay: constant until `start_epoch`, then linear to 0 over `decay_epochs`.

    Stepped once per iteration; epochs are `iters_per_epoch` iterations. Unlike PaddleGAN's, an
    `iters_per_epoch` of 0 (fewer clips than the batch size) counts as 1 instead of dividing by
    zero, and the rate stops at 0 instead of turning negative after the decay.
    """

    def __init__(self, learning_rate: float, start_epoch: int, decay_epochs: int,
                 iters_per_epoch: int = 1, last_epoch: int = -1, verbose: bool = False):
        self.start_epoch = int(start_epoch)
        self.decay_epochs = int(decay_epochs)
        self.iters_per_epoch = max(1, int(iters_per_epoch))
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        epoch = self.last_epoch // self.iters_per_epoch
        fraction = max(0, epoch + 1 - self.start_epoch) / float(self.decay_epochs + 1)
        return self.base_lr * max(0.0, 1.0 - fraction)
