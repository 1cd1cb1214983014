"""Wav2LipDiscQual: the visual-quality discriminator of Wav2Lip-HQ (lower half of each face)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...modules.conv import NonNormConv2d as N
from ...modules.conv import fold_time_into_batch
from .builder import DISCRIMINATORS


@DISCRIMINATORS.register()
class Wav2LipDiscQual(nn.Layer):
    """Scores faces (B,3,T,96,96) or (B,3,96,96) as real; one probability per face, (B*T, 1)."""

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.LayerList([
            nn.Sequential(N(3, 32, 7, 1, 3)),  # 48x96
            nn.Sequential(N(32, 64, 5, (1, 2), 2), N(64, 64, 5, 1, 2)),  # 48x48
            nn.Sequential(N(64, 128, 5, 2, 2), N(128, 128, 5, 1, 2)),  # 24
            nn.Sequential(N(128, 256, 5, 2, 2), N(256, 256, 5, 1, 2)),  # 12
            nn.Sequential(N(256, 512, 3, 2, 1), N(512, 512, 3, 1, 1)),  # 6
            nn.Sequential(N(512, 512, 3, 2, 1), N(512, 512, 3, 1, 1)),  # 3
            nn.Sequential(N(512, 512, 3, 1, 0), N(512, 512, 1, 1, 0)),  # 1
        ])
        self.binary_pred = nn.Sequential(nn.Conv2D(512, 1, 1, 1, 0), nn.Sigmoid())

    @staticmethod
    def to_2d(face_sequences: paddle.Tensor) -> paddle.Tensor:
        """(B,3,T,H,W) -> (T*B,3,H,W), time-major as the references."""
        if len(face_sequences.shape) == 4:
            return face_sequences
        return fold_time_into_batch(face_sequences, 2)

    @staticmethod
    def get_lower_half(face_sequences: paddle.Tensor) -> paddle.Tensor:
        return face_sequences[:, :, face_sequences.shape[2] // 2:]

    def forward(self, face_sequences: paddle.Tensor) -> paddle.Tensor:
        x = self.get_lower_half(self.to_2d(face_sequences))
        for block in self.face_encoder_blocks:
            x = block(x)
        return self.binary_pred(x).reshape([x.shape[0], -1])

    def perceptual_forward(self, fake_face_sequences: paddle.Tensor) -> paddle.Tensor:
        """The generator's adversarial loss: BCE of the fakes' scores against 'real'."""
        pred = self.forward(fake_face_sequences)
        return F.binary_cross_entropy(pred, paddle.ones_like(pred))
