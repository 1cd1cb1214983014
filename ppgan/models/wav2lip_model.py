"""Wav2LipModel: the generator trained with L1 and a frozen lip-sync expert (`wav2lip_train.py`).

    loss = syncnet_wt * sync_loss + (1 - syncnet_wt) * l1_loss

`sync_loss` is the expert's BCE of "in sync" for the generated lower halves against the mel
window. `syncnet_wt` starts at the config's value (0.0 in the references) and is switched to
`syncnet_wt_switch` once the validation sync loss falls below `sync_threshold`; it is part of the
checkpoint, so a resumed run keeps it (the references forget it).
"""
import logging
from typing import Any, Dict, Optional, Set, Tuple

import paddle
import paddle.nn.functional as F

from ..modules.init import init_weights
from ..utils.download import resolve_weights
from ..utils.weights import load_weights
from .base_model import BaseModel, to_tensor
from .builder import MODELS
from .discriminators.builder import build_discriminator
from .generators.builder import build_generator
from .syncnet_model import cosine_bce

logger = logging.getLogger(__name__)

SYNCNET_URL = "https://paddlegan.bj.bcebos.com/models/syncnet.pdparams"


def expert_input(faces: paddle.Tensor, syncnet_T: int) -> paddle.Tensor:
    """(B, 3, T, H, W) generated faces -> (B, 3T, H - H//2, W): lower halves, frame-major channels.

    The references' `torch.cat([g[:, :, i] for i in range(T)], dim=1)` after cropping rows H//2..
    """
    if faces.shape[2] != syncnet_T:
        raise ValueError(f"the batch has {faces.shape[2]} frames per window, the model expects "
                         f"syncnet_T = {syncnet_T}: set the same syncnet_T in model and dataset")
    lower = faces[:, :, :, faces.shape[3] // 2:]
    batch, channels, frames, height, width = lower.shape
    return lower.transpose([0, 2, 1, 3, 4]).reshape([batch, frames * channels, height, width])


@MODELS.register()
class Wav2LipModel(BaseModel):
    """`netG` (Wav2Lip) trained against `netD` (the frozen SyncNetColor expert)."""

    expert_name = "netD"
    GENERATES_IMAGES = True

    def __init__(self, generator: Dict[str, Any], discriminator: Dict[str, Any],
                 syncnet_wt: float = 0.0, syncnet_wt_switch: float = 0.01,
                 sync_threshold: float = 0.75, max_eval_steps: Optional[int] = None,
                 syncnet_T: int = 5, expert_bn_train_mode: bool = True,
                 syncnet_path: Optional[str] = None, init_type: str = "normal",
                 init_gain: float = 0.02):
        super().__init__()
        self.nets["netG"] = build_generator(generator)
        # The expert is not initialised: its weights are loaded (prepare) before it is used.
        init_weights(self.nets["netG"], init_type, float(init_gain))
        self.nets[self.expert_name] = build_discriminator(discriminator)
        self.frozen_nets.add(self.expert_name)
        self.set_requires_grad(self.nets[self.expert_name], False)
        self.syncnet_wt = float(syncnet_wt)
        self.syncnet_wt_switch = float(syncnet_wt_switch)
        self.sync_threshold = float(sync_threshold)
        self.max_eval_steps = max_eval_steps
        self.syncnet_T = int(syncnet_T)
        self.expert_bn_train_mode = bool(expert_bn_train_mode)
        self.syncnet_path = syncnet_path
        self._expert_ready = False

    # ------------------------------------------------------------------------------- set-up
    def prepare(self, loaded_nets: Set[str]) -> None:
        """Load the expert from `syncnet_path` (or download it) unless a checkpoint provided it."""
        if self._expert_ready or self.expert_name in loaded_nets:
            self._expert_ready = True
            return
        path = resolve_weights(self.syncnet_path, SYNCNET_URL)
        load_weights(self.net(self.expert_name), path)
        logger.info("lip-sync expert %s loaded from %s", self.expert_name, path)
        self._expert_ready = True

    def _set_expert_mode(self) -> None:
        # Both references leave the expert in train mode (batch statistics in its BatchNorm,
        # running statistics updated); `expert_bn_train_mode: false` uses the stored ones instead.
        expert = self.nets[self.expert_name]
        expert.train() if self.expert_bn_train_mode else expert.eval()

    def setup_input(self, batch: Dict[str, Any]) -> None:
        self.x = to_tensor(batch["x"])
        self.indiv_mels = to_tensor(batch["indiv_mels"])
        self.mel = to_tensor(batch["mel"])
        self.y = to_tensor(batch["y"])

    # -------------------------------------------------------------------------------- losses
    def forward(self) -> None:
        self.g = self.nets["netG"](self.indiv_mels, self.x)

    def sync_loss(self, mel: paddle.Tensor, faces: paddle.Tensor) -> paddle.Tensor:
        """The expert's BCE of "in sync" for these faces with this mel window."""
        audio_embedding, face_embedding = self.nets[self.expert_name](
            mel, expert_input(faces, self.syncnet_T))
        return cosine_bce(audio_embedding, face_embedding, paddle.ones([faces.shape[0], 1]))

    def generator_losses(self) -> Dict[str, paddle.Tensor]:
        """The terms of the generator's objective; the sync term only when its weight is > 0."""
        losses = {"l1_loss": F.l1_loss(self.g.astype("float32"), self.y)}
        if self.syncnet_wt > 0:
            losses["sync_loss"] = self.sync_loss(self.mel, self.g)
        return losses

    def generator_objective(self, losses: Dict[str, paddle.Tensor]) -> paddle.Tensor:
        objective = (1 - self.syncnet_wt) * losses["l1_loss"]
        if "sync_loss" in losses:
            objective = objective + self.syncnet_wt * losses["sync_loss"]
        return objective

    # ---------------------------------------------------------------------------- iterations
    def train_iter(self) -> None:
        self._set_expert_mode()
        opt_name, optimizer = self.optimizer_for("netG")
        optimizer.clear_grad()
        with self.autocast():
            self.forward()
            losses = self.generator_losses()
            objective = self.generator_objective(losses)
        self.backward_step(objective, opt_name)
        self.losses = {name: value.item() for name, value in losses.items()}
        self._keep_visuals()

    def _keep_visuals(self) -> None:
        self.visual_items = {"reference": self.x[:, 3:], "input": self.x[:, :3],
                             "generated": self.g.detach(), "ground_truth": self.y}

    def evaluation_losses(self) -> Dict[str, paddle.Tensor]:
        return {"l1_loss": F.l1_loss(self.g.astype("float32"), self.y),
                "sync_loss": self.sync_loss(self.mel, self.g)}

    def test_iter(self) -> None:
        self.nets["netG"].eval()
        self._set_expert_mode()
        with paddle.no_grad(), self.autocast():
            self.forward()
            losses = self.evaluation_losses()
        self.accumulate_eval(**{name: value.item() for name, value in losses.items()})
        self._keep_visuals()
        self.nets["netG"].train()

    def eval_images(self) -> Tuple[paddle.Tensor, paddle.Tensor]:
        return self.g, self.y

    def on_eval_end(self, results: Dict[str, float]) -> None:
        """The references' switch: once the eval sync loss is below the threshold, use the expert."""
        if results["sync_loss"] < self.sync_threshold and self.syncnet_wt != self.syncnet_wt_switch:
            logger.info("eval sync loss %.4f < %.2f: syncnet_wt %g -> %g", results["sync_loss"],
                        self.sync_threshold, self.syncnet_wt, self.syncnet_wt_switch)
            self.syncnet_wt = self.syncnet_wt_switch

    def runtime_state(self) -> Dict[str, Any]:
        return {"syncnet_wt": self.syncnet_wt}

    def set_runtime_state(self, state: Dict[str, Any]) -> None:
        self.syncnet_wt = float(state.get("syncnet_wt", self.syncnet_wt))

    def log_values(self) -> Dict[str, float]:
        return {**self.losses, "syncnet_wt": self.syncnet_wt}
