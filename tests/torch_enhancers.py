"""Independent PyTorch versions of the original face restorers, for tests/test_convert_enhancers.py:
GPEN's FullGenerator (yangxy/GPEN, face_model/gpen_model.py), GFPGANv1 (TencentARC/GFPGAN on
BasicSR's StyleGAN2) and GFPGANv1Clean (GFPGAN's clean arch), written from reading those sources,
with their module names so that the state dicts have the released files' keys, and computed in
another way than both the originals and ppgan: resampling as explicit zero insertion and a
depthwise FIR conv, the modulated convs one sample at a time.

Only what restoring a face needs (no training code, no mixing, no truncation).
"""
import math

import torch
import torch.nn as tnn
import torch.nn.functional as TF

SQRT2 = math.sqrt(2)


# ---------------------------------------------------------------------------------------------
# StyleGAN2's ops
# ---------------------------------------------------------------------------------------------
def fir_kernel(taps=(1, 3, 3, 1), gain=1.0):
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k * (gain / k.sum())


def fir(x, kernel, up=1, down=1, pad=(0, 0)):
    """Zero-insert by `up`, pad (before, after) on both axes, convolve every channel with
    `kernel` (a true convolution), keep every `down`-th sample."""
    b, c, h, w = x.shape
    if up > 1:
        spread = x.new_zeros(b, c, h * up, w * up)
        spread[:, :, ::up, ::up] = x
        x = spread
    x = TF.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    taps = kernel.flip(0, 1)[None, None].repeat(c, 1, 1, 1)
    return TF.conv2d(x, taps, groups=c)[:, :, ::down, ::down]


def lrelu(x, bias=None, gain=SQRT2):
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return TF.leaky_relu(x, 0.2) * gain


def modulated_conv(x, weight, styles, demodulate, up=False, padding=0, blur=None):
    """weight [1, out, in, k, k] (already scaled), styles [B, in]: each sample on its own."""
    outs = []
    for xi, si in zip(x, styles):
        w = weight[0] * si.view(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt((w * w).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xi = xi[None]
        if up:  # transposed conv, stride 2, then the blur
            outs.append(blur(TF.conv_transpose2d(xi, w.transpose(0, 1), stride=2)))
        else:
            outs.append(TF.conv2d(xi, w, padding=padding))
    return torch.cat(outs)


class EqualLinear(tnn.Module):
    def __init__(self, cin, cout, lr_mul=1.0, bias_init=0.0, act=False):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = tnn.Parameter(torch.full((cout,), float(bias_init)))
        self.lr_mul, self.act, self.gain = lr_mul, act, lr_mul / math.sqrt(cin)

    def forward(self, x):
        y = x @ (self.weight * self.gain).t()
        return lrelu(y, self.bias * self.lr_mul) if self.act else y + self.bias * self.lr_mul


class EqualConv(tnn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = tnn.Parameter(torch.zeros(cout)) if bias else None
        self.stride, self.padding, self.gain = stride, padding, 1 / math.sqrt(cin * k * k)

    def forward(self, x):
        return TF.conv2d(x, self.weight * self.gain, self.bias, self.stride, self.padding)


class BiasLReLU(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = tnn.Parameter(torch.zeros(c))

    def forward(self, x):
        return lrelu(x, self.bias)


class GainLReLU(tnn.Module):
    def forward(self, x):
        return lrelu(x)


class PixelNorm(tnn.Module):
    def forward(self, z):
        return z / torch.sqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)


class SavedKernel(tnn.Module):
    """GPEN's blurs keep their kernel as a buffer (it is in GPEN's state dicts)."""

    def __init__(self, kernel, pad, up=1, down=1):
        super().__init__()
        self.register_buffer("kernel", kernel)
        self.pad, self.up, self.down = pad, up, down

    def forward(self, x):
        return fir(x, self.kernel, self.up, self.down, self.pad)


class UnsavedKernel:
    """BasicSR's resamplers hold theirs as a plain attribute (not in its state dicts)."""

    def __init__(self, kernel, pad, up=1, down=1):
        self.kernel, self.pad, self.up, self.down = kernel, pad, up, down

    def __call__(self, x):
        return fir(x, self.kernel, self.up, self.down, self.pad)


def conv_layer(cin, cout, k, down=False, bias=True, act=True, kernel_cls=SavedKernel):
    """The discriminator-style ConvLayer: [blur], equalised conv, [activation]."""
    layers = []
    if down:
        p = 4 - 2 + k - 1
        blur = kernel_cls(fir_kernel(), ((p + 1) // 2, p // 2))
        if isinstance(blur, tnn.Module):
            layers.append(blur)
        else:  # a stateless stand-in keeps the Sequential's indices
            layers.append(_Call(blur))
    layers.append(EqualConv(cin, cout, k, stride=2 if down else 1,
                            padding=0 if down else k // 2, bias=bias and not act))
    if act:
        layers.append(BiasLReLU(cout) if bias else GainLReLU())
    return tnn.Sequential(*layers)


class _Call(tnn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def channel_table(cm, narrow):
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
            512: 32 * cm, 1024: 16 * cm}
    return {r: int(c * narrow) for r, c in base.items()}


# ---------------------------------------------------------------------------------------------
# GPEN (face_model/gpen_model.py): modules conv / noise / activate, concatenated features
# ---------------------------------------------------------------------------------------------
class GpenModConv(tnn.Module):
    def __init__(self, cin, cout, k, style_dim, demodulate=True, up=False):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1.0)
        if up:
            p = 4 - 2 - (k - 1)
            self.blur = SavedKernel(fir_kernel(gain=4.0), ((p + 1) // 2 + 1, p // 2 + 1))
        self.k, self.demodulate, self.up = k, demodulate, up

    def forward(self, x, w):
        scaled = self.weight / math.sqrt(x.shape[1] * self.k ** 2)
        return modulated_conv(x, scaled, self.modulation(w), self.demodulate, self.up,
                              self.k // 2, getattr(self, "blur", None))


class GpenNoise(tnn.Module):
    def __init__(self):
        super().__init__()
        self.weight = tnn.Parameter(torch.zeros(1))


class GpenStyledConv(tnn.Module):
    def __init__(self, cin, cout, style_dim, up=False):
        super().__init__()
        self.conv = GpenModConv(cin, cout, 3, style_dim, up=up)
        self.noise = GpenNoise()
        self.activate = BiasLReLU(2 * cout)

    def forward(self, x, w, feature):
        y = self.conv(x, w)
        return self.activate(torch.cat([y, self.noise.weight * feature], 1))


class GpenToRGB(tnn.Module):
    def __init__(self, cin, style_dim, up=True):
        super().__init__()
        if up:
            self.upsample = SavedKernel(fir_kernel(gain=4.0), (2, 1), up=2)
        self.conv = GpenModConv(cin, 3, 1, style_dim, demodulate=False)
        self.bias = tnn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, w, skip=None):
        rgb = self.conv(x, w) + self.bias
        return rgb if skip is None else rgb + self.upsample(skip)


class GpenInput(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.input = tnn.Parameter(torch.randn(1, c, 4, 4))


class GpenGenerator(tnn.Module):
    def __init__(self, size, style_dim, n_mlp, cm, narrow):
        super().__init__()
        ch = channel_table(cm, narrow)
        self.style = tnn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=0.01, act=True) for _ in range(n_mlp)])
        self.input = GpenInput(ch[4])
        self.conv1 = GpenStyledConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = GpenToRGB(2 * ch[4], style_dim, up=False)
        self.convs, self.to_rgbs = tnn.ModuleList(), tnn.ModuleList()
        cin = ch[4]
        for r in [2 ** i for i in range(3, int(math.log2(size)) + 1)]:
            self.convs.append(GpenStyledConv(2 * cin, ch[r], style_dim, up=True))
            self.convs.append(GpenStyledConv(2 * ch[r], ch[r], style_dim))
            self.to_rgbs.append(GpenToRGB(2 * ch[r], style_dim))
            cin = ch[r]

    def forward(self, code, features):
        """features: the encoder's maps from 4x4 up, one per resolution."""
        w = self.style(code)
        x = self.input.input.expand(code.shape[0], -1, -1, -1)
        x = self.conv1(x, w, features[0])
        rgb = self.to_rgb1(x, w)
        for i, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * i](x, w, features[i + 1])
            x = self.convs[2 * i + 1](x, w, features[i + 1])
            rgb = to_rgb(x, w, rgb)
        return rgb


class TorchGPEN(tnn.Module):
    """GPEN's FullGenerator (in size = out size)."""

    def __init__(self, size, style_dim, n_mlp, cm=2, narrow=1.0):
        super().__init__()
        ch = channel_table(cm, narrow)
        self.generator = GpenGenerator(size, style_dim, n_mlp, cm, narrow)
        log = int(math.log2(size))
        self.ecd0 = tnn.Sequential(conv_layer(3, ch[size], 1))
        for i in range(1, log - 1):
            setattr(self, f"ecd{i}", tnn.Sequential(
                conv_layer(ch[2 ** (log - i + 1)], ch[2 ** (log - i)], 3, down=True)))
        self.final_linear = tnn.Sequential(EqualLinear(ch[4] * 16, style_dim, act=True))
        self.depth = log - 1

    def forward(self, x):
        features = []
        for i in range(self.depth):
            x = getattr(self, f"ecd{i}")(x)
            features.append(x)
        return self.generator(self.final_linear(x.flatten(1)), features[::-1])


# ---------------------------------------------------------------------------------------------
# GFPGANv1 (BasicSR's StyleGAN2: modules modulated_conv / weight / activate)
# ---------------------------------------------------------------------------------------------
class SrModConv(tnn.Module):
    def __init__(self, cin, cout, k, style_dim, demodulate=True, up=False):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1.0)
        p = 4 - 2 - (k - 1)
        self.smooth = UnsavedKernel(fir_kernel(gain=4.0), ((p + 1) // 2 + 1, p // 2 + 1))
        self.k, self.demodulate, self.up = k, demodulate, up

    def forward(self, x, w):
        scaled = self.weight / math.sqrt(x.shape[1] * self.k ** 2)
        return modulated_conv(x, scaled, self.modulation(w), self.demodulate, self.up,
                              self.k // 2, self.smooth)


class SrStyleConv(tnn.Module):
    def __init__(self, cin, cout, style_dim, up=False):
        super().__init__()
        self.modulated_conv = SrModConv(cin, cout, 3, style_dim, up=up)
        self.weight = tnn.Parameter(torch.zeros(1))
        self.activate = BiasLReLU(cout)

    def forward(self, x, w, noise):
        return self.activate(self.modulated_conv(x, w) + self.weight * noise)


class SrToRGB(tnn.Module):
    def __init__(self, cin, style_dim, up=True):
        super().__init__()
        self.up = UnsavedKernel(fir_kernel(gain=4.0), (2, 1), up=2) if up else None
        self.modulated_conv = SrModConv(cin, 3, 1, style_dim, demodulate=False)
        self.bias = tnn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, w, skip=None):
        rgb = self.modulated_conv(x, w) + self.bias
        return rgb if skip is None else rgb + self.up(skip)


class ClStyleConv(tnn.Module):
    """The clean arch's StyleConv: plain modulation linear, bilinear upsampling, x sqrt(2)."""

    def __init__(self, cin, cout, style_dim, up=False):
        super().__init__()
        self.modulated_conv = ClModConv(cin, cout, 3, style_dim, up=up)
        self.weight = tnn.Parameter(torch.zeros(1))
        self.bias = tnn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x, w, noise):
        y = self.modulated_conv(x, w) * SQRT2 + self.weight * noise + self.bias
        return TF.leaky_relu(y, 0.2)


class ClModConv(tnn.Module):
    def __init__(self, cin, cout, k, style_dim, demodulate=True, up=False):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(1, cout, cin, k, k) / math.sqrt(cin * k * k))
        self.modulation = tnn.Linear(style_dim, cin)
        self.k, self.demodulate, self.up = k, demodulate, up

    def forward(self, x, w):
        if self.up:
            x = TF.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return modulated_conv(x, self.weight, self.modulation(w), self.demodulate,
                              padding=self.k // 2)


class ClToRGB(tnn.Module):
    def __init__(self, cin, style_dim, up=True):
        super().__init__()
        self.modulated_conv = ClModConv(cin, 3, 1, style_dim, demodulate=False)
        self.bias = tnn.Parameter(torch.zeros(1, 3, 1, 1))
        self.up = up

    def forward(self, x, w, skip=None):
        rgb = self.modulated_conv(x, w) + self.bias
        if skip is None:
            return rgb
        return rgb + TF.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)


class ConstantInput(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(1, c, 4, 4))


class SftDecoder(tnn.Module):
    """StyleGAN2GeneratorSFT (clean=False) or StyleGAN2GeneratorCSFT (clean=True), sft_half."""

    def __init__(self, size, style_dim, n_mlp, cm, narrow, clean):
        super().__init__()
        ch = channel_table(cm, narrow)
        if clean:
            mlp = [PixelNorm()]
            for _ in range(n_mlp):
                mlp += [tnn.Linear(style_dim, style_dim), tnn.LeakyReLU(0.2)]
        else:
            mlp = [PixelNorm()] + [EqualLinear(style_dim, style_dim, lr_mul=0.01, act=True)
                                   for _ in range(n_mlp)]
        conv, rgb = (ClStyleConv, ClToRGB) if clean else (SrStyleConv, SrToRGB)
        self.style_mlp = tnn.Sequential(*mlp)
        self.constant_input = ConstantInput(ch[4])
        self.style_conv1 = conv(ch[4], ch[4], style_dim)
        self.to_rgb1 = rgb(ch[4], style_dim, up=False)
        self.style_convs, self.to_rgbs = tnn.ModuleList(), tnn.ModuleList()
        resolutions = [2 ** i for i in range(3, int(math.log2(size)) + 1)]
        cin = ch[4]
        for r in resolutions:
            self.style_convs.extend([conv(cin, ch[r], style_dim, up=True),
                                     conv(ch[r], ch[r], style_dim)])
            self.to_rgbs.append(rgb(ch[r], style_dim))
            cin = ch[r]
        self.noises = tnn.Module()
        sides = [4] + [r for r in resolutions for _ in range(2)]
        for i, side in enumerate(sides):
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, side, side))

    def forward(self, latents, conditions):
        """latents [B, n_latent, D] (already w); conditions: scale, shift per resolution."""
        noise = [getattr(self.noises, f"noise{i}") for i in range(len(self.style_convs) + 1)]
        x = self.constant_input.weight.expand(latents.shape[0], -1, -1, -1)
        x = self.style_conv1(x, latents[:, 0], noise[0])
        rgb = self.to_rgb1(x, latents[:, 1])
        for j, to_rgb in enumerate(self.to_rgbs):
            x = self.style_convs[2 * j](x, latents[:, 2 * j + 1], noise[2 * j + 1])
            half = x.shape[1] // 2
            scale, shift = conditions[2 * j], conditions[2 * j + 1]
            x = torch.cat([x[:, :half], x[:, half:] * scale + shift], 1)
            x = self.style_convs[2 * j + 1](x, latents[:, 2 * j + 2], noise[2 * j + 2])
            rgb = to_rgb(x, latents[:, 2 * j + 3], rgb)
        return rgb


class ConvUp(tnn.Module):
    """GFPGANv1's ConvUpLayer: bilinear x2, equalised conv, [biased leaky ReLU]."""

    def __init__(self, cin, cout, k, act):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(cout, cin, k, k))
        if act:
            self.activation = BiasLReLU(cout)
        self.act, self.gain, self.padding = act, 1 / math.sqrt(cin * k * k), k // 2

    def forward(self, x):
        x = TF.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y = TF.conv2d(x, self.weight * self.gain, padding=self.padding)
        return self.activation(y) if self.act else y


class SrResBlock(tnn.Module):
    def __init__(self, cin, cout, up):
        super().__init__()
        self.conv1 = conv_layer(cin, cin, 3, kernel_cls=UnsavedKernel)
        if up:
            self.conv2, self.skip = ConvUp(cin, cout, 3, True), ConvUp(cin, cout, 1, False)
        else:
            self.conv2 = conv_layer(cin, cout, 3, down=True, kernel_cls=UnsavedKernel)
            self.skip = conv_layer(cin, cout, 1, down=True, bias=False, act=False,
                                   kernel_cls=UnsavedKernel)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class ClResBlock(tnn.Module):
    def __init__(self, cin, cout, up):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = tnn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = tnn.Conv2d(cin, cout, 1, bias=False)
        self.factor = 2.0 if up else 0.5

    def forward(self, x):
        resize = lambda t: TF.interpolate(t, scale_factor=self.factor, mode="bilinear",  # noqa
                                          align_corners=False)
        y = TF.leaky_relu(self.conv2(resize(TF.leaky_relu(self.conv1(x), 0.2))), 0.2)
        return y + self.skip(resize(x))


class TorchGFPGAN(tnn.Module):
    """GFPGANv1 (clean=False) or GFPGANv1Clean (clean=True) in GFPGAN's inference configuration
    (input_is_latent, different_w, sft_half)."""

    def __init__(self, size, style_dim, n_mlp, cm, narrow, clean):
        super().__init__()
        ch = channel_table(cm, narrow * 0.5)
        log = int(math.log2(size))
        up_res = [2 ** i for i in range(3, log + 1)]
        self.clean = clean
        if clean:
            conv = lambda cin, cout, k, **_: tnn.Conv2d(cin, cout, k, 1, k // 2)  # noqa: E731
            block, linear = ClResBlock, tnn.Linear
        else:
            conv = lambda cin, cout, k, **_: EqualConv(cin, cout, k, padding=k // 2)  # noqa
            block, linear = SrResBlock, EqualLinear
        if clean:
            self.conv_body_first = tnn.Conv2d(3, ch[size], 1)
            self.final_conv = tnn.Conv2d(ch[4], ch[4], 3, 1, 1)
        else:
            self.conv_body_first = conv_layer(3, ch[size], 1, kernel_cls=UnsavedKernel)
            self.final_conv = conv_layer(ch[4], ch[4], 3, kernel_cls=UnsavedKernel)
        down_res = [2 ** i for i in range(log - 1, 1, -1)]
        self.conv_body_down = tnn.ModuleList(
            [block(ch[2 * r], ch[r], up=False) for r in down_res])
        self.conv_body_up = tnn.ModuleList([block(ch[r // 2], ch[r], up=True) for r in up_res])
        self.toRGB = tnn.ModuleList([conv(ch[r], 3, 1) for r in up_res])
        self.final_linear = linear(ch[4] * 16, (2 * log - 2) * style_dim)
        self.stylegan_decoder = SftDecoder(size, style_dim, n_mlp, cm, narrow, clean)
        branch = lambda c: tnn.Sequential(  # noqa: E731
            conv(c, c, 3), tnn.LeakyReLU(0.2) if clean else GainLReLU(), conv(c, c, 3))
        self.condition_scale = tnn.ModuleList([branch(ch[r]) for r in up_res])
        self.condition_shift = tnn.ModuleList([branch(ch[r]) for r in up_res])
        self.style_dim = style_dim

    def forward(self, x):
        act = (lambda t: TF.leaky_relu(t, 0.2)) if self.clean else (lambda t: t)
        feat = act(self.conv_body_first(x))
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = act(self.final_conv(feat))
        latents = self.final_linear(feat.flatten(1)).view(x.shape[0], -1, self.style_dim)
        conditions, side_rgbs = [], []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[-1 - i])
            conditions += [self.condition_scale[i](feat), self.condition_shift[i](feat)]
            side_rgbs.append(self.toRGB[i](feat))
        return self.stylegan_decoder(latents, conditions), side_rgbs
