"""The BlazeFace front model (128x128 input): raw box regressions and scores for 896 anchors.

Layer names and shapes follow PaddleGAN's `BlazeFace`, so its released `blazeface.pdparams`
(a flat dict: `backbone1.0.weight`, ..., `regressor_16.bias`, 74 tensors) loads as is.
Decoding, thresholds and NMS live in `detect.py`; this module is only the network.
"""
from typing import List

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

INPUT_SIZE = 128
NUM_ANCHORS = 896  # 16*16*2 from the 88-channel map + 8*8*6 from the 96-channel map
NUM_COORDS = 16  # box centre x/y, w/h, then 6 keypoints (x, y)

# (in_channels, out_channels, stride) of the blocks before and after the 16x16 -> 8x8 step.
_BACKBONE1_BLOCKS = [(24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2),
                     (48, 56, 1), (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1)]
_BACKBONE2_BLOCKS = [(88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1)]


class BlazeBlock(nn.Layer):
    """Depthwise 3x3 then pointwise 1x1, added to a (max-pooled, zero-channel-padded) skip, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        # The TFLite original uses 'SAME' padding; for stride 2 on even sizes that is one row/column
        # at the bottom/right only (the reference pads 2 there, but the 2nd one is never read).
        padding = [0, 1, 0, 1] if stride == 2 else 1
        self.convs = nn.Sequential(
            nn.Conv2D(in_channels, in_channels, 3, stride=stride, padding=padding, groups=in_channels),
            nn.Conv2D(in_channels, out_channels, 1),
        )
        self.act = nn.ReLU()
        self.max_pool = nn.MaxPool2D(kernel_size=2, stride=2) if stride == 2 else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        skip = self.max_pool(x) if self.max_pool is not None else x
        if self.extra_channels > 0:
            # Widening blocks have no projection: the new channels of the skip are zeros.
            skip = F.pad(skip, [0, 0, 0, self.extra_channels, 0, 0, 0, 0])
        return self.act(self.convs(x) + skip)


def _head_output(layer: nn.Layer, features: paddle.Tensor, per_anchor: int) -> paddle.Tensor:
    """(N, C, H, W) head output -> (N, H*W*anchors_per_cell, per_anchor), anchors fastest per cell.

    This order (row, column, anchor) is the order `anchors.generate_anchors` produces.
    """
    out = layer(features).transpose([0, 2, 3, 1])
    return out.reshape([out.shape[0], -1, per_anchor])


class BlazeFace(nn.Layer):
    """BlazeFace front model. `forward` takes (N, 3, 128, 128) pixels in [-1, 1] and returns
    `[raw_boxes (N, 896, 16), raw_scores (N, 896, 1)]`, the order of PaddleGAN's net."""

    def __init__(self):
        super().__init__()
        # The first conv's 'SAME' padding for 128 -> 64 with a 5x5 kernel: 1 before, 2 after.
        self.backbone1 = nn.Sequential(
            nn.Conv2D(3, 24, 5, stride=2, padding=[1, 2, 1, 2]), nn.ReLU(),
            *[BlazeBlock(i, o, s) for i, o, s in _BACKBONE1_BLOCKS])
        self.backbone2 = nn.Sequential(*[BlazeBlock(i, o, s) for i, o, s in _BACKBONE2_BLOCKS])
        # PaddleGAN's (and the PyTorch port's) names: `_8` heads read the 16x16 map, `_16` the 8x8.
        self.classifier_8 = nn.Conv2D(88, 2, 1)
        self.classifier_16 = nn.Conv2D(96, 6, 1)
        self.regressor_8 = nn.Conv2D(88, 2 * NUM_COORDS, 1)
        self.regressor_16 = nn.Conv2D(96, 6 * NUM_COORDS, 1)

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        fine = self.backbone1(x)  # (N, 88, 16, 16)
        coarse = self.backbone2(fine)  # (N, 96, 8, 8)
        scores = paddle.concat([_head_output(self.classifier_8, fine, 1),
                                _head_output(self.classifier_16, coarse, 1)], axis=1)
        boxes = paddle.concat([_head_output(self.regressor_8, fine, NUM_COORDS),
                               _head_output(self.regressor_16, coarse, NUM_COORDS)], axis=1)
        return [boxes, scores]

