"""The Wav2Lip generator: a face encoder, a mel encoder and a U-Net decoder (Prajwal et al., 2020),
and the rule its inputs follow, which training and inference share.
"""
from typing import List, Sequence

import cv2
import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from ...modules.conv import ConvBNRelu as C
from ...modules.conv import Conv2dTransposeRelu as T
from ...modules.conv import build_audio_encoder, fold_time_into_batch
from .builder import GENERATORS

FACE_SIZE = 96  # the side of the square faces the generator takes and draws
MEL_STEP_SIZE = 16  # mel steps per window: 0.2 s of audio, 5 video frames at 25 fps
# The first face row `decode_lower` draws. The default "mouth" blend reads the generated face
# only from row 47 on (`ppgan.utils.blend.first_face_row`); three rows are spare. Decoding from
# here skips the upper half of the decoder's largest blocks: the generator ran 1.3-1.4 times as
# fast (README.md, "The lower-face decoder").
LOWER_FIRST_ROW = 44
# Each of the decoder's upsampling blocks: a transposed convolution (3x3, stride 2) followed by
# this many 3x3 convolutions, each of which spoils one row at the top of a cut-off input.
_CONVS_AFTER_UPSAMPLING = 2

# The inputs as exported for Paddle Inference; the leading None makes the batch size dynamic, so
# one exported model serves any batch.
AUDIO_SPEC = InputSpec([None, 1, 80, MEL_STEP_SIZE], "float32", "audio")
FACE_SPEC = InputSpec([None, 6, FACE_SIZE, FACE_SIZE], "float32", "face")
# The face encoder's outputs, the decoder's skip inputs: (channels, side) from 96x96 to 1x1.
SKIP_SPECS = [InputSpec([None, channels, side, side], "float32", f"skip{i}")
              for i, (channels, side) in enumerate([(16, 96), (32, 48), (64, 24), (128, 12),
                                                    (256, 6), (512, 3), (512, 1)])]


def face_pixels(crops: Sequence[np.ndarray], size: int = FACE_SIZE) -> np.ndarray:
    """BGR uint8 face crops of any size -> (N, size, size, 3) float32 BGR in [0, 1]."""
    return np.stack([cv2.resize(crop, (size, size)) for crop in crops]).astype(np.float32) / 255.0


def face_input(target: np.ndarray, reference: np.ndarray, channel_axis: int) -> np.ndarray:
    """The generator's 6-channel face input: [`target` with its lower half zeroed (the mouth
    the generator must draw), `reference` (a face showing who it is)], concatenated on
    `channel_axis`. Both are `face_pixels` values with channels on that axis and rows and
    columns last, e.g. (B, 3, H, W) or (3, T, H, W)."""
    masked = target.copy()
    masked[..., target.shape[-2] // 2:, :] = 0
    return np.concatenate([masked, reference], axis=channel_axis)


def frame_faces(frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
    """The generator's face input (B,6,96,96) for the faces in `boxes`: each face is its own
    reference, as at inference the mouth is all that changes."""
    faces = face_pixels([f[y1:y2, x1:x2] for f, (x1, y1, x2, y2) in zip(frames, boxes)])
    faces = faces.transpose(0, 3, 1, 2)
    return face_input(faces, faces, channel_axis=1)


def _decoder_first_rows(first_row: int) -> List[int]:
    """Per decoder block, the first row of its output (at its own size) that `first_row` of the
    face depends on. A stride-2 transposed convolution (3x3, padding 1, output padding 1) given
    its input from row i draws rows from 2i exactly; each 3x3 convolution after it spoils one
    more at the top. The output block's 3x3 convolution needs one row above `first_row`."""
    rows = [0] * 7
    rows[6] = max(first_row - 1, 0)
    for block in range(6, 2, -1):  # blocks 3..6 upsample; the chain reaches row 0 before 3
        rows[block - 1] = max((rows[block] - _CONVS_AFTER_UPSAMPLING) // 2, 0)
    return rows


def _residuals(channels: int, count: int):
    return [C(channels, channels, 3, 1, 1, residual=True) for _ in range(count)]


@GENERATORS.register()
class Wav2Lip(nn.Layer):
    """Generates the lower face from a mel window and a 6-channel face input.

    Inputs: mel (B,1,80,16) and faces (B,6,96,96), or with T frames (B,T,1,80,16) and
    (B,6,T,96,96). The face channels are [target with its lower half zeroed, reference], BGR in
    [0, 1]. Output: (B,3,96,96), or (B,3,T,96,96).
    """

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.LayerList([
            nn.Sequential(C(6, 16, 7, 1, 3)),  # 96
            nn.Sequential(C(16, 32, 3, 2, 1), *_residuals(32, 2)),  # 48
            nn.Sequential(C(32, 64, 3, 2, 1), *_residuals(64, 3)),  # 24
            nn.Sequential(C(64, 128, 3, 2, 1), *_residuals(128, 2)),  # 12
            nn.Sequential(C(128, 256, 3, 2, 1), *_residuals(256, 2)),  # 6
            nn.Sequential(C(256, 512, 3, 2, 1), *_residuals(512, 1)),  # 3
            nn.Sequential(C(512, 512, 3, 1, 0), C(512, 512, 1, 1, 0)),  # 1
        ])
        self.audio_encoder = build_audio_encoder(final_residuals=1)
        # Each decoder block's input is the previous output concatenated with the matching skip.
        self.face_decoder_blocks = nn.LayerList([
            nn.Sequential(C(512, 512, 1, 1, 0)),  # 1
            nn.Sequential(T(1024, 512, 3, 1, 0), *_residuals(512, 1)),  # 3
            nn.Sequential(T(1024, 512, 3, 2, 1, 1), *_residuals(512, 2)),  # 6
            nn.Sequential(T(768, 384, 3, 2, 1, 1), *_residuals(384, 2)),  # 12
            nn.Sequential(T(512, 256, 3, 2, 1, 1), *_residuals(256, 2)),  # 24
            nn.Sequential(T(320, 128, 3, 2, 1, 1), *_residuals(128, 2)),  # 48
            nn.Sequential(T(160, 64, 3, 2, 1, 1), *_residuals(64, 2)),  # 96
        ])
        self.output_block = nn.Sequential(
            C(80, 32, 3, 1, 1), nn.Conv2D(32, 3, 1, 1, 0), nn.Sigmoid())

    def encode_face(self, faces: paddle.Tensor) -> List[paddle.Tensor]:
        """The face encoder's seven outputs (96x96 down to 1x1), the decoder's skip inputs.

        For a photo they are the same for every frame: compute them once and decode many."""
        skips = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        return skips

    def decode(self, audio: paddle.Tensor, skips: Sequence[paddle.Tensor],
               first_row: int = 0) -> paddle.Tensor:
        """Mel windows (B,1,80,16) and `encode_face`'s outputs -> faces (B,3,96,96), or with
        `first_row` only their rows from there on (B,3,96-first_row,96), the same values
        computed on the rows they depend on alone."""
        if first_row == 0:  # the network as the paper draws it, the reference
            x = self.audio_encoder(audio)
            for i, block in enumerate(self.face_decoder_blocks):
                x = paddle.concat([block(x), skips[-1 - i]], axis=1)
            return self.output_block(x)
        x, top = self.audio_encoder(audio), 0  # top: the full-size row of x's first row
        for block, skip, row in zip(self.face_decoder_blocks, reversed(skips),
                                    _decoder_first_rows(first_row)):
            drawn = block(x)  # its rows from 2 * top on: blocks given top > 0 all upsample by 2
            x = paddle.concat([drawn[:, :, row - 2 * top:], skip[:, :, row:]], axis=1)
            top = row
        return self.output_block(x)[:, :, first_row - top:]

    def decode_lower(self, audio: paddle.Tensor, skips: Sequence[paddle.Tensor]) -> paddle.Tensor:
        """`decode`'s rows from LOWER_FIRST_ROW on: (B,3,96-LOWER_FIRST_ROW,96)."""
        return self.decode(audio, skips, LOWER_FIRST_ROW)

    def forward(self, audio_sequences: paddle.Tensor, face_sequences: paddle.Tensor) -> paddle.Tensor:
        has_time = len(face_sequences.shape) > 4
        if has_time:
            batch = face_sequences.shape[0]
            audio_sequences = fold_time_into_batch(audio_sequences, 1)
            face_sequences = fold_time_into_batch(face_sequences, 2)

        x = self.decode(audio_sequences, self.encode_face(face_sequences))

        if has_time:  # (T*B, 3, H, W) -> (B, 3, T, H, W)
            x = x.reshape([-1, batch] + x.shape[1:]).transpose([1, 2, 0, 3, 4])
        return x
