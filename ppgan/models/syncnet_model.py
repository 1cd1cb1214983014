"""SyncNetModel: trains the lip-sync expert (the original Wav2Lip's `color_syncnet_train.py`).

Each sample is 5 lower-half face crops stacked on channels (15, 48, 96), a 0.2 s mel window
(1, 80, 16) and a label: 1 when the faces are the window's own frames, 0 when they come from
elsewhere in the clip. The expert embeds both; the loss is the binary cross-entropy of the cosine
of the two embeddings against the label (the embeddings end in a ReLU, so the cosine is in [0, 1]).
"""
import logging
from typing import Any, Dict, Optional

import paddle
import paddle.nn.functional as F

from ..modules.init import init_weights
from .base_model import BaseModel, to_tensor
from .builder import MODELS
from .discriminators.builder import build_discriminator

logger = logging.getLogger(__name__)


def cosine_bce(audio_embedding: paddle.Tensor, face_embedding: paddle.Tensor,
               labels: paddle.Tensor) -> paddle.Tensor:
    """The references' `cosine_loss`: BCE(cosine_similarity(a, v), y), averaged over the batch."""
    cosine = sync_probability(audio_embedding, face_embedding)
    return F.binary_cross_entropy(cosine, labels.astype("float32").reshape(cosine.shape))


def sync_probability(audio_embedding: paddle.Tensor, face_embedding: paddle.Tensor) -> paddle.Tensor:
    """(B, 1) cosine similarities, the expert's "in sync" probability."""
    cosine = F.cosine_similarity(audio_embedding.astype("float32"),
                                 face_embedding.astype("float32"), axis=1)
    # Rounding can put the cosine of unit vectors a hair above 1, which BCE rejects; real values
    # are untouched (ReLU embeddings make it >= 0 in exact arithmetic).
    return paddle.clip(cosine, 0.0, 1.0).unsqueeze(1)


@MODELS.register()
class SyncNetModel(BaseModel):
    """The expert (`netD`, a SyncNetColor) trained alone; eval reports the BCE and accuracy."""

    def __init__(self, discriminator: Dict[str, Any], max_eval_steps: Optional[int] = None,
                 syncnet_T: int = 5, init_type: str = "pytorch", init_gain: float = 0.02):
        super().__init__()
        self.nets["netD"] = build_discriminator(discriminator)
        init_weights(self.nets["netD"], init_type, float(init_gain))
        self.max_eval_steps = max_eval_steps
        self.syncnet_T = syncnet_T

    def setup_input(self, batch: Dict[str, Any]) -> None:
        self.face = to_tensor(batch["face"])
        self.mel = to_tensor(batch["mel"])
        self.label = to_tensor(batch["label"])
        expected = 3 * self.syncnet_T
        if self.face.shape[1] != expected:
            raise ValueError(f"expert input has {self.face.shape[1]} channels, expected 3 x "
                             f"syncnet_T = {expected}: set the same syncnet_T in model and dataset")

    def forward(self) -> paddle.Tensor:
        audio_embedding, face_embedding = self.nets["netD"](self.mel, self.face)
        return cosine_bce(audio_embedding, face_embedding, self.label)

    def train_iter(self) -> None:
        opt_name, optimizer = self.optimizer_for("netD")
        self.nets["netD"].train()
        optimizer.clear_grad()
        with self.autocast():
            loss = self.forward()
        self.backward_step(loss, opt_name)
        self.losses["bce_loss"] = loss.item()

    def test_iter(self) -> None:
        # The reference evaluates the expert in eval mode (running BN statistics).
        self.nets["netD"].eval()
        with paddle.no_grad():
            audio_embedding, face_embedding = self.nets["netD"](self.mel, self.face)
            probability = sync_probability(audio_embedding, face_embedding)
            loss = F.binary_cross_entropy(probability, self.label.astype("float32").reshape(
                probability.shape))
            correct = ((probability > 0.5).astype("float32") == self.label.reshape(
                probability.shape).astype("float32")).astype("float32").mean()
        self.accumulate_eval(bce_loss=loss.item(), accuracy=correct.item())
        self.nets["netD"].train()
