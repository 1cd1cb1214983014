"""Wav2LipModelHq: Wav2Lip plus the visual-quality discriminator (`hq_wav2lip_train.py`).

Generator step:
    loss = syncnet_wt * sync + disc_wt * perceptual + (1 - syncnet_wt - disc_wt) * l1
with `perceptual` = BCE(netDH(generated), real). Discriminator step: BCE(netDH(gt), real) +
BCE(netDH(generated.detach()), fake). The original switches syncnet_wt to 0.03 here (PaddleGAN
uses 0.01 for both models); the switch value is the `syncnet_wt_switch` key.
"""
from typing import Any, Dict, Optional, Tuple

import paddle
import paddle.nn.functional as F

from ..modules.init import init_weights
from .builder import MODELS
from .discriminators.builder import build_discriminator
from .wav2lip_model import Wav2LipModel


@MODELS.register()
class Wav2LipModelHq(Wav2LipModel):
    """`netG` against the frozen expert `netDS` and the trained quality discriminator `netDH`."""

    expert_name = "netDS"

    def __init__(self, generator: Dict[str, Any], discriminator_sync: Dict[str, Any],
                 discriminator_hq: Dict[str, Any], syncnet_wt: float = 0.0,
                 disc_wt: float = 0.07, syncnet_wt_switch: float = 0.03,
                 sync_threshold: float = 0.75, max_eval_steps: Optional[int] = None,
                 syncnet_T: int = 5, expert_bn_train_mode: bool = True,
                 syncnet_path: Optional[str] = None, init_type: str = "kaiming",
                 init_gain: float = 0.02):
        super().__init__(generator, discriminator_sync, syncnet_wt=syncnet_wt,
                         syncnet_wt_switch=syncnet_wt_switch, sync_threshold=sync_threshold,
                         max_eval_steps=max_eval_steps, syncnet_T=syncnet_T,
                         expert_bn_train_mode=expert_bn_train_mode, syncnet_path=syncnet_path,
                         init_type=init_type, init_gain=init_gain)
        self.nets["netDH"] = build_discriminator(discriminator_hq)
        init_weights(self.nets["netDH"], init_type, float(init_gain))
        self.disc_wt = float(disc_wt)

    # -------------------------------------------------------------------------------- losses
    def generator_losses(self) -> Dict[str, paddle.Tensor]:
        losses = super().generator_losses()
        if self.disc_wt > 0:
            # The unwrapped net: under DataParallel, this forward must not arm the
            # discriminator's gradient all-reduce (its parameters are frozen for this step).
            losses["perceptual_loss"] = self.net("netDH").perceptual_forward(self.g)
        return losses

    def generator_objective(self, losses: Dict[str, paddle.Tensor]) -> paddle.Tensor:
        objective = (1 - self.syncnet_wt - self.disc_wt) * losses["l1_loss"]
        if "sync_loss" in losses:
            objective = objective + self.syncnet_wt * losses["sync_loss"]
        if "perceptual_loss" in losses:
            objective = objective + self.disc_wt * losses["perceptual_loss"]
        return objective

    def discriminator_losses(self, real: paddle.Tensor, fake: paddle.Tensor
                             ) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """(BCE(D(real), 1), BCE(D(fake), 0)), each averaged over its own faces as the reference.

        Real and fake faces go through the discriminator as one batch: it has no normalisation
        layer, so each face's score is what a separate pass would give, and one forward/backward
        keeps the DataParallel gradient all-reduce to a single round.
        """
        netDH = self.net("netDH")
        real_2d, fake_2d = netDH.to_2d(real), netDH.to_2d(fake)
        scores = self.nets["netDH"](paddle.concat([real_2d, fake_2d], axis=0)).astype("float32")
        real_scores, fake_scores = scores[:real_2d.shape[0]], scores[real_2d.shape[0]:]
        return (F.binary_cross_entropy(real_scores, paddle.ones_like(real_scores)),
                F.binary_cross_entropy(fake_scores, paddle.zeros_like(fake_scores)))

    # ---------------------------------------------------------------------------- iterations
    def train_iter(self) -> None:
        self.set_requires_grad(self.nets["netDH"], False)
        super().train_iter()  # the generator step
        self.set_requires_grad(self.nets["netDH"], True)
        self._discriminator_step()

    def _discriminator_step(self) -> None:
        opt_name, optimizer = self.optimizer_for("netDH")
        optimizer.clear_grad()
        with self.autocast():
            # The faces generated before the generator's update, as the reference.
            real_loss, fake_loss = self.discriminator_losses(self.y, self.g.detach())
        self.backward_step(real_loss + fake_loss, opt_name)
        self.losses["disc_real_loss"] = real_loss.item()
        self.losses["disc_fake_loss"] = fake_loss.item()

    def evaluation_losses(self) -> Dict[str, paddle.Tensor]:
        losses = super().evaluation_losses()
        losses["perceptual_loss"] = self.net("netDH").perceptual_forward(self.g)
        losses["disc_real_loss"], losses["disc_fake_loss"] = self.discriminator_losses(self.y, self.g)
        return losses
