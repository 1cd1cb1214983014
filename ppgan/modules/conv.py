"""The three conv blocks every Wav2Lip network is built from (RW `models/conv.py`)."""
import paddle
import paddle.nn as nn


class ConvBNRelu(nn.Layer):
    """Conv2D -> BatchNorm2D -> ReLU, with an optional identity residual added before the ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, residual: bool = False):
        super().__init__()
        # Paddle's momentum 0.9 is PyTorch's 0.1: the running statistics update identically.
        self.conv_block = nn.Sequential(
            nn.Conv2D(cin, cout, kernel_size, stride, padding),
            nn.BatchNorm2D(cout, momentum=0.9, epsilon=1e-5),
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class NonNormConv2d(nn.Layer):
    """Conv2D -> LeakyReLU(0.01), no normalisation (the quality discriminator's block)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2D(cin, cout, kernel_size, stride, padding))
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.conv_block(x))


class Conv2dTransposeRelu(nn.Layer):
    """Conv2DTranspose -> BatchNorm2D -> ReLU (the generator's upsampling block)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding: int = 0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2DTranspose(cin, cout, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2D(cout, momentum=0.9, epsilon=1e-5),
        )
        self.act = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.conv_block(x))


def build_audio_encoder(final_residuals: int) -> nn.Sequential:
    """The mel encoder shared by the generator (1 residual at 256 channels) and SyncNet (2).

    Maps a (B, 1, 80, 16) mel window to a (B, 512, 1, 1) embedding.
    """
    return nn.Sequential(
        ConvBNRelu(1, 32, 3, 1, 1),
        ConvBNRelu(32, 32, 3, 1, 1, residual=True),
        ConvBNRelu(32, 32, 3, 1, 1, residual=True),
        ConvBNRelu(32, 64, 3, (3, 1), 1),
        ConvBNRelu(64, 64, 3, 1, 1, residual=True),
        ConvBNRelu(64, 64, 3, 1, 1, residual=True),
        ConvBNRelu(64, 128, 3, 3, 1),
        ConvBNRelu(128, 128, 3, 1, 1, residual=True),
        ConvBNRelu(128, 128, 3, 1, 1, residual=True),
        ConvBNRelu(128, 256, 3, (3, 2), 1),
        *[ConvBNRelu(256, 256, 3, 1, 1, residual=True) for _ in range(final_residuals)],
        ConvBNRelu(256, 512, 3, 1, 0),
        ConvBNRelu(512, 512, 1, 1, 0),
    )


def fold_time_into_batch(x: paddle.Tensor, time_axis: int) -> paddle.Tensor:
    """(B, ..., T, ...) -> (T*B, ...), time-major as the references' `torch.cat` over T."""
    x = paddle.moveaxis(x, time_axis, 0)
    return x.reshape([-1] + list(x.shape[2:]))
