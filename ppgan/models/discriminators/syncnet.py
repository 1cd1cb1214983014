"""SyncNetColor: the lip-sync expert that scores whether a mel window matches 5 mouth crops."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...modules.conv import ConvBNRelu as C
from ...modules.conv import build_audio_encoder
from .builder import DISCRIMINATORS


def _residuals(channels: int, count: int):
    return [C(channels, channels, 3, 1, 1, residual=True) for _ in range(count)]


@DISCRIMINATORS.register()
class SyncNetColor(nn.Layer):
    """Embeds 5 lower-half faces (B,15,48,96) and a mel window (B,1,80,16) into unit 512-d vectors.

    The last layer is a ReLU, so embeddings are non-negative and their cosine lies in [0, 1],
    which is what lets the references train it with BCE on the cosine.
    """

    def __init__(self):
        super().__init__()
        self.face_encoder = nn.Sequential(
            C(15, 32, 7, 1, 3),
            C(32, 64, 5, (1, 2), 1), *_residuals(64, 2),  # 46x47
            C(64, 128, 3, 2, 1), *_residuals(128, 3),  # 23x24
            C(128, 256, 3, 2, 1), *_residuals(256, 2),  # 12x12
            C(256, 512, 3, 2, 1), *_residuals(512, 2),  # 6x6
            C(512, 512, 3, 2, 1),  # 3x3
            C(512, 512, 3, 1, 0),  # 1x1
            C(512, 512, 1, 1, 0),
        )
        self.audio_encoder = build_audio_encoder(final_residuals=2)

    def forward(self, audio_sequences: paddle.Tensor, face_sequences: paddle.Tensor):
        """Returns (audio_embedding, face_embedding), each (B, 512)."""
        face_embedding = self.face_encoder(face_sequences).flatten(1)
        audio_embedding = self.audio_encoder(audio_sequences).flatten(1)
        return F.normalize(audio_embedding, p=2, axis=1), F.normalize(face_embedding, p=2, axis=1)
