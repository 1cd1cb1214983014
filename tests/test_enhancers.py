"""The face enhancement networks GPEN and GFPGANv1 (issue 12, section 1).

- Parameter names and shapes of the released configurations, tabled here from PaddleGAN's source
  at 094a2eb9 (gpen.py, generator_styleganv2.py, discriminator_styleganv2.py's ConvLayer,
  gfpganv1_arch.py), not from ppgan's constructors; the totals are those PaddleGAN's own
  classes report.
- The StyleGAN2 blocks (upfirdn2d, fused leaky ReLU, modulated conv) against numpy and scipy.
- Noise as PaddleGAN handles it: GPEN's encoder features in place of noise, wired per
  resolution; fixed or fresh noise by `randomize_noise`.

PaddleGAN's own classes on the same random weights and inputs are compared outside the suite, by
tools/compare_with_paddlegan.py (it needs a PaddleGAN checkout).
"""
import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
import scipy.signal

from ppgan.models.generators import GENERATORS, GFPGANv1, GPEN, build_generator
from ppgan.models.generators.generator_styleganv2 import StyleGANv2Generator
from ppgan.models.generators.gfpganv1_arch import bilinear_resized
from ppgan.modules.fused_act import FusedLeakyReLU, fused_leaky_relu
from ppgan.modules.stylegan2 import ModulatedConv2D, unfuse_modulated_convs
from ppgan.modules.upfirdn2d import Blur, Upsample, make_kernel, upfirdn2d
from ppgan.utils.weights import WeightsError, identify_network, load_weights

STYLE = 512
UP_RES = [8, 16, 32, 64, 128, 256, 512]  # the decoders' resolutions after the 4x4 start
NOISE_RES = [4] + [r for r in UP_RES for _ in (0, 1)]  # one map per synthesis conv

GFPGAN_512 = dict(out_size=512, num_style_feat=512, channel_multiplier=1,
                  resample_kernel=[1, 3, 3, 1], fix_decoder=True, num_mlp=8, lr_mlp=0.01,
                  input_is_latent=True, different_w=True, narrow=1, sft_half=True)


def modulated(prefix, cin, cout, k):
    return {f"{prefix}.weight": [1, cout, cin, k, k], f"{prefix}.modulation.weight": [STYLE, cin],
            f"{prefix}.modulation.bias": [cin]}


def mapping(prefix, n_mlp=8):  # index 0 is the pixel norm
    keys = {}
    for i in range(1, n_mlp + 1):
        keys.update({f"{prefix}.{i}.weight": [STYLE, STYLE], f"{prefix}.{i}.bias": [STYLE]})
    return keys


# GPEN(size=512, style_dim=512, n_mlp=8): channel_multiplier 2 keeps 512 channels up to 64x64.
GPEN_CH = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64}


def gpen_styled(prefix, cin, cout):
    # The encoder's features are concatenated after the noise step: the activation sees 2 * cout.
    return {**modulated(f"{prefix}.conv", cin, cout, 3), f"{prefix}.noise.weight": [1],
            f"{prefix}.activate.bias": [2 * cout]}


def gpen_rgb(prefix, cin, upsample):
    keys = {**modulated(f"{prefix}.conv", cin, 3, 1), f"{prefix}.bias": [1, 3, 1, 1]}
    if upsample:  # a persistable buffer in PaddleGAN's Upfirdn2dUpsample
        keys[f"{prefix}.upsample.kernel"] = [4, 4]
    return keys


def gpen_512_keys():
    # Encoder: ecd0 a 1x1 ConvLayer (conv .0, activation .1), ecd1..7 downsampling ConvLayers
    # (blur .0, conv .1, activation .2), each wrapped in a one-layer Sequential (the extra .0).
    keys = {"ecd0.0.0.weight": [64, 3, 1, 1], "ecd0.0.1.bias": [64]}
    for i, res in enumerate([256, 128, 64, 32, 16, 8, 4], start=1):
        cin, cout = GPEN_CH[res * 2], GPEN_CH[res]
        keys.update({f"ecd{i}.0.1.weight": [cout, cin, 3, 3], f"ecd{i}.0.2.bias": [cout]})
    keys.update({"final_linear.0.weight": [512 * 16, STYLE], "final_linear.0.bias": [STYLE]})
    g = "generator"
    keys.update(mapping(f"{g}.style"))
    keys[f"{g}.input.input"] = [1, 512, 4, 4]
    keys.update(gpen_styled(f"{g}.conv1", 512, 512))
    keys.update(gpen_rgb(f"{g}.to_rgb1", 1024, upsample=False))
    cin = 512
    for j, res in enumerate(UP_RES):
        cout = GPEN_CH[res]
        keys.update(gpen_styled(f"{g}.convs.{2 * j}", 2 * cin, cout))
        keys.update(gpen_styled(f"{g}.convs.{2 * j + 1}", 2 * cout, cout))
        keys.update(gpen_rgb(f"{g}.to_rgbs.{j}", 2 * cout, upsample=True))
        cin = cout
    for i, res in enumerate(NOISE_RES):
        keys[f"{g}.noises.noise_{i}"] = [1, 1, res, res]
    return keys


# GFPGANv1 (512 config): the U-Net is half as wide as the decoder (narrow * 0.5).
UNET = {512: 16, 256: 32, 128: 64, 64: 128, 32: 256, 16: 256, 8: 256, 4: 256}
DECODER = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32}


def gfpgan_styled(prefix, cin, cout):
    return {**modulated(f"{prefix}.modulated_conv", cin, cout, 3), f"{prefix}.weight": [1],
            f"{prefix}.activate.bias": [cout]}


def gfpgan_rgb(prefix, cin):  # its upsampling kernel is a plain attribute, not saved
    return {**modulated(f"{prefix}.modulated_conv", cin, 3, 1), f"{prefix}.bias": [1, 3, 1, 1]}


def gfpgan_512_keys():
    keys = {"conv_body_first.0.weight": [16, 3, 1, 1], "conv_body_first.1.bias": [16]}
    for i, res in enumerate([256, 128, 64, 32, 16, 8, 4]):
        cin, cout, p = UNET[res * 2], UNET[res], f"conv_body_down.{i}"
        keys.update({f"{p}.conv1.0.weight": [cin, cin, 3, 3], f"{p}.conv1.1.bias": [cin],
                     f"{p}.conv2.1.weight": [cout, cin, 3, 3], f"{p}.conv2.2.bias": [cout],
                     f"{p}.skip.1.weight": [cout, cin, 1, 1]})
    keys.update({"final_conv.0.weight": [256, 256, 3, 3], "final_conv.1.bias": [256]})
    for i, res in enumerate(UP_RES):
        cin, c, p = UNET[res // 2], UNET[res], f"conv_body_up.{i}"
        keys.update({f"{p}.conv1.0.weight": [cin, cin, 3, 3], f"{p}.conv1.1.bias": [cin],
                     f"{p}.conv2.weight": [c, cin, 3, 3], f"{p}.conv2.activation.bias": [c],
                     f"{p}.skip.weight": [c, cin, 1, 1],
                     f"toRGB.{i}.weight": [3, c, 1, 1], f"toRGB.{i}.bias": [3]})
        for branch in ("condition_scale", "condition_shift"):  # sft_half: c outputs, not 2c
            keys.update({f"{branch}.{i}.0.weight": [c, c, 3, 3], f"{branch}.{i}.0.bias": [c],
                         f"{branch}.{i}.2.weight": [c, c, 3, 3], f"{branch}.{i}.2.bias": [c]})
    # different_w: one w per decoder layer, 9 * 2 - 2 = 16 of them.
    keys.update({"final_linear.weight": [256 * 16, 16 * STYLE], "final_linear.bias": [16 * STYLE]})
    d = "stylegan_decoder"
    keys.update(mapping(f"{d}.style_mlp"))
    keys[f"{d}.constant_input.weight"] = [1, 512, 4, 4]
    keys.update(gfpgan_styled(f"{d}.style_conv1", 512, 512))
    keys.update(gfpgan_rgb(f"{d}.to_rgb1", 512))
    for j, res in enumerate(UP_RES):
        keys.update(gfpgan_styled(f"{d}.style_convs.{2 * j}", DECODER[res // 2], DECODER[res]))
        keys.update(gfpgan_styled(f"{d}.style_convs.{2 * j + 1}", DECODER[res], DECODER[res]))
        keys.update(gfpgan_rgb(f"{d}.to_rgbs.{j}", DECODER[res]))
    for i, res in enumerate(NOISE_RES):
        keys[f"{d}.noises.noise{i}"] = [1, 1, res, res]
    return keys


@pytest.fixture(scope="module")
def gpen_512():
    return GPEN(size=512, style_dim=512, n_mlp=8)


@pytest.fixture(scope="module")
def gfpgan_512():
    return GFPGANv1(**GFPGAN_512)


# (key count, total elements) as PaddleGAN's GPEN and GFPGANv1 report them for these configs.
@pytest.mark.parametrize("fixture,table,count,numel", [
    ("gpen_512", gpen_512_keys, 164, 71_704_359),
    ("gfpgan_512", gfpgan_512_keys, 285, 76_906_268),
])
def test_released_configurations_have_paddlegans_keys(request, fixture, table, count, numel):
    net = request.getfixturevalue(fixture)
    actual = {key: list(value.shape) for key, value in net.state_dict().items()}
    expected = table()
    assert len(expected) == count and sum(math.prod(s) for s in expected.values()) == numel
    assert sorted(set(expected) - set(actual)) == [] and sorted(set(actual) - set(expected)) == []
    assert actual == expected


def test_a_saved_state_dict_loads_back_whole(tmp_path):
    # GFPGAN.pdparams keeps the generator under net_g_ema; everything in it must be taken.
    config = {**GFPGAN_512, "out_size": 32, "num_style_feat": 32, "num_mlp": 2, "narrow": 0.125}
    path = str(tmp_path / "gfpgan.pdparams")
    paddle.save({"net_g_ema": GFPGANv1(**config).state_dict()}, path)
    state = paddle.load(path)["net_g_ema"]
    other = GFPGANv1(**config)
    missing, unexpected = other.set_state_dict(state)
    assert (missing, unexpected) == ([], [])
    for key in ("stylegan_decoder.style_convs.3.modulated_conv.weight",
                "stylegan_decoder.noises.noise4", "condition_scale.1.2.bias"):
        np.testing.assert_array_equal(other.state_dict()[key].numpy(), np.asarray(state[key]))


def test_load_weights_knows_both_and_takes_the_averaged_gfpgan(tmp_path):
    config = {**GFPGAN_512, "out_size": 32, "num_style_feat": 32, "num_mlp": 2, "narrow": 0.125}
    paddle.seed(13)
    ema, raw, net = GFPGANv1(**config), GFPGANv1(**config), GFPGANv1(**config)
    path = str(tmp_path / "gfpgan.pdparams")
    paddle.save({"net_g": raw.state_dict(), "net_g_ema": ema.state_dict()}, path)
    load_weights(net, path)
    key = "final_linear.weight"
    np.testing.assert_array_equal(net.state_dict()[key].numpy(), ema.state_dict()[key].numpy())

    gpen = GPEN(size=8, style_dim=8, n_mlp=1)
    state = {k: v.numpy() for k, v in gpen.state_dict().items()}
    assert identify_network(state) == "GPEN"
    load_weights(GPEN(size=8, style_dim=8, n_mlp=1), state)
    del state["generator.noises.noise_2"]
    with pytest.raises(WeightsError, match="1 missing"):
        load_weights(gpen, state)


def test_fix_decoder_freezes_only_the_prior(gfpgan_512):
    frozen = {name for name, p in gfpgan_512.named_parameters() if p.stop_gradient}
    decoder = {name for name, _ in gfpgan_512.named_parameters()
               if name.startswith("stylegan_decoder.")}
    assert frozen == decoder and decoder


def test_both_are_registered_generators():
    assert "GPEN" in GENERATORS and "GFPGANv1" in GENERATORS
    net = build_generator({"name": "GPEN", "size": 16, "style_dim": 8, "n_mlp": 1})
    assert isinstance(net, GPEN)


# ---------------------------------------------------------------- the blocks, against numpy

def np_upfirdn(x, kernel, up, down, pad):
    """upfirdn2d by its definition: zero insertion, padding (negative crops), true convolution
    as a sum over each window against the flipped kernel, every `down`-th output."""
    p0, p1 = pad
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    u = np.pad(u, [(0, 0), (0, 0), (max(p0, 0), max(p1, 0)), (max(p0, 0), max(p1, 0))])
    hh, ww = u.shape[2:]
    u = u[:, :, max(-p0, 0):hh - max(-p1, 0), max(-p0, 0):ww - max(-p1, 0)]
    kh, kw = kernel.shape
    flipped = kernel[::-1, ::-1]
    oh, ow = (u.shape[2] - kh) // down + 1, (u.shape[3] - kw) // down + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = u[:, :, i * down:i * down + kh, j * down:j * down + kw]
            out[:, :, i, j] = (window * flipped).sum((2, 3))
    return out


@pytest.mark.parametrize("up,down,pad", [
    (1, 1, (2, 1)), (2, 1, (2, 1)), (1, 2, (1, 1)), (2, 2, (-1, 2)), (1, 1, (-1, 0))])
def test_upfirdn2d_matches_its_definition(up, down, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype("float32")
    kernel = rng.random((3, 4)).astype("float32")  # asymmetric: the flip matters
    out = upfirdn2d(paddle.to_tensor(x), paddle.to_tensor(kernel), up, down, pad).numpy()
    ref = np_upfirdn(x.astype("float64"), kernel.astype("float64"), up, down, pad)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("kernel_shape, pad", [((4, 5), (1, 2)), ((5, 4), (2, 1)), ((4, 4), (3, 0))])
def test_upsampling_as_a_transposed_convolution_matches_the_definition(kernel_shape, pad):
    """Zero insertion then the filter is computed as a stride-2 transposed convolution where the
    pads allow it (here with padding that differs before and after, per axis)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 5, 6)).astype("float32")
    kernel = rng.random(kernel_shape).astype("float32")
    out = upfirdn2d(paddle.to_tensor(x), paddle.to_tensor(kernel), 2, 1, pad).numpy()
    np.testing.assert_allclose(out, np_upfirdn(x.astype("float64"), kernel.astype("float64"),
                                               2, 1, pad), atol=1e-5)


def test_upsample_is_scipys_upfirdn_centred():
    # Separable [1, 3, 3, 1] x2: scipy's upfirdn along each axis (full convolution of the
    # zero-inserted signal) shifted by kernel length - 1 - pad_before = 1 sample.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 7))
    h = 2 * np.array([1, 3, 3, 1]) / 8
    ref = scipy.signal.upfirdn(h, scipy.signal.upfirdn(h, x, up=2, axis=3), up=2, axis=2)
    ref = ref[:, :, 1:11, 1:15]
    out = Upsample([1, 3, 3, 1])(paddle.to_tensor(x.astype("float32"))).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_kernels_are_normalised_and_only_gpens_upsample_kernel_is_saved():
    np.testing.assert_allclose(make_kernel([1, 3, 3, 1]).numpy(),
                               np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
    assert list(Upsample([1, 3, 3, 1], persistable=True).state_dict()) == ["kernel"]
    assert list(Upsample([1, 3, 3, 1]).state_dict()) == []
    assert list(Blur([1, 3, 3, 1], pad=(1, 1)).state_dict()) == []


def test_fused_leaky_relu():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3, 3)).astype("float32")
    bias = rng.standard_normal(4).astype("float32")
    y = x + bias[None, :, None, None]
    ref = np.where(y >= 0, y, 0.2 * y) * math.sqrt(2)
    layer = FusedLeakyReLU(4)
    layer.bias.set_value(paddle.to_tensor(bias))
    np.testing.assert_allclose(layer(paddle.to_tensor(x)).numpy(), ref, rtol=1e-6, atol=1e-6)
    z = x[:, :, 0, 0] + bias  # [B, features]: the bias on axis 1, as after a linear layer
    out = fused_leaky_relu(paddle.to_tensor(x[:, :, 0, 0]), paddle.to_tensor(bias)).numpy()
    np.testing.assert_allclose(out, np.where(z >= 0, z, 0.2 * z) * math.sqrt(2), rtol=1e-6,
                               atol=1e-6)


def np_conv2d(x, w, pad):  # x [C, H, W], w [O, C, k, k], stride 1
    k = w.shape[-1]
    xp = np.pad(x, [(0, 0), (pad, pad), (pad, pad)])
    oh, ow = xp.shape[1] - k + 1, xp.shape[2] - k + 1
    out = np.zeros((w.shape[0], oh, ow))
    for di in range(k):
        for dj in range(k):
            out += np.einsum("oc,chw->ohw", w[:, :, di, dj], xp[:, di:di + oh, dj:dj + ow])
    return out


def np_conv_transpose2(x, w):  # stride 2, no padding: every input scatters a k x k patch
    c, h, wd = x.shape
    k = w.shape[-1]
    out = np.zeros((w.shape[0], 2 * (h - 1) + k, 2 * (wd - 1) + k))
    for di in range(k):
        for dj in range(k):
            out[:, di:di + 2 * h - 1:2, dj:dj + 2 * wd - 1:2] += np.einsum(
                "oc,chw->ohw", w[:, :, di, dj], x)
    return out


@pytest.mark.parametrize("fused", [True, False], ids=["per-sample", "non-fused"])
@pytest.mark.parametrize("upsample,demodulate,k", [(False, True, 3), (True, True, 3),
                                                    (False, False, 1)])
def test_modulated_conv_is_the_papers_weight_modulation(upsample, demodulate, k, fused):
    """Both forms: PaddleGAN's per-sample weights, and the non-fused one the exports run."""
    rng = np.random.default_rng(3)
    batch, cin, cout, style_dim = 2, 3, 4, 6
    conv = ModulatedConv2D(cin, cout, k, style_dim, demodulate=demodulate, upsample=upsample)
    if not fused:
        unfuse_modulated_convs(conv)
    weight = rng.standard_normal((1, cout, cin, k, k)).astype("float32")
    mod_w = rng.standard_normal((style_dim, cin)).astype("float32")
    mod_b = (1 + 0.1 * rng.standard_normal(cin)).astype("float32")
    conv.weight.set_value(paddle.to_tensor(weight))
    conv.modulation.weight.set_value(paddle.to_tensor(mod_w))
    conv.modulation.bias.set_value(paddle.to_tensor(mod_b))
    x = rng.standard_normal((batch, cin, 5, 5)).astype("float32")
    style = rng.standard_normal((batch, style_dim)).astype("float32")
    out = conv(paddle.to_tensor(x), paddle.to_tensor(style)).numpy()

    s = style.astype("float64") @ mod_w / math.sqrt(style_dim) + mod_b  # equalised linear
    refs = []
    for b in range(batch):
        w = weight[0] / math.sqrt(cin * k * k) * s[b][None, :, None, None]
        if demodulate:
            w = w / np.sqrt((w ** 2).sum((1, 2, 3), keepdims=True) + 1e-8)
        if upsample:
            y = np_conv_transpose2(x[b], w)[None]
            refs.append(np_upfirdn(y, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 16, 1, 1, (1, 1))[0])
        else:
            refs.append(np_conv2d(x[b], w, k // 2))
    ref = np.stack(refs)
    assert out.shape == ref.shape == (batch, cout, 10 if upsample else 5, 10 if upsample else 5)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- forward and noise handling

@pytest.fixture(scope="module")
def small_gpen():
    paddle.seed(10)
    net = GPEN(size=16, style_dim=32, n_mlp=2, channel_multiplier=1)
    net.eval()
    for name, p in net.named_parameters():
        if name.endswith("noise.weight"):  # 0 at init: make the features count
            p.set_value(paddle.full([1], 0.7))
    return net


def test_gpen_feeds_each_resolutions_encoder_features_to_both_its_convs(small_gpen):
    net = small_gpen
    features, noises = {}, {}

    def keep_output(name):
        def hook(layer, inputs, output):
            features[name] = output.numpy()
        return hook

    def keep_noise(i):
        def hook(layer, inputs):
            noises[i] = inputs[1].numpy()
        return hook

    handles = [getattr(net, name).register_forward_post_hook(keep_output(name))
               for name in net.names]
    styled = [net.generator.conv1] + list(net.generator.convs)
    handles += [conv.noise.register_forward_pre_hook(keep_noise(i))
                for i, conv in enumerate(styled)]
    x = paddle.to_tensor(np.random.default_rng(4).uniform(-1, 1, (2, 3, 16, 16)).astype("float32"))
    try:
        with paddle.no_grad():
            image, latent = net(x, return_latents=True)
    finally:
        for handle in handles:
            handle.remove()
    assert image.shape == [2, 3, 16, 16] and latent.shape == [2, 6, 32]
    # ecd0 is 16x16, ecd1 8x8, ecd2 4x4: conv1 (4x4) gets ecd2, both 8x8 convs ecd1, both
    # 16x16 convs ecd0.
    for conv, ecd in [(0, "ecd2"), (1, "ecd1"), (2, "ecd1"), (3, "ecd0"), (4, "ecd0")]:
        np.testing.assert_array_equal(noises[conv], features[ecd])


def test_gpen_is_deterministic(small_gpen):
    x = paddle.to_tensor(np.random.default_rng(5).uniform(-1, 1, (1, 3, 16, 16)).astype("float32"))
    with paddle.no_grad():
        first, none = small_gpen(x)
        paddle.seed(123)  # no draw from the global generator
        second, _ = small_gpen(x)
    assert none is None
    np.testing.assert_array_equal(first.numpy(), second.numpy())


def test_stylegan2_noise_fixed_or_fresh():
    paddle.seed(11)
    gen = StyleGANv2Generator(8, 8, 1, channel_multiplier=1)
    gen.eval()
    for conv in [gen.conv1] + list(gen.convs):
        conv.noise.weight.set_value(paddle.full([1], 0.5))
    z = [paddle.randn([1, 8])]
    stored = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]
    assert [n.shape[-1] for n in stored] == [4, 8, 8]
    with paddle.no_grad():
        fixed, _ = gen(z, randomize_noise=False)
        explicit, _ = gen(z, noise=stored)
        fresh1, _ = gen(z)
        fresh2, _ = gen(z)
    np.testing.assert_array_equal(fixed.numpy(), explicit.numpy())
    assert np.abs(fresh1.numpy() - fresh2.numpy()).max() > 1e-3


def small_gfpgan(**overrides):
    paddle.seed(12)
    kwargs = dict(out_size=32, num_style_feat=32, channel_multiplier=1, num_mlp=2,
                  input_is_latent=True, different_w=True, narrow=0.125, sft_half=True)
    kwargs.update(overrides)
    net = GFPGANv1(**kwargs)
    net.eval()
    for name, p in net.named_parameters():
        if p.shape == [1]:  # the StyleConvs' noise strengths, 0 at init
            p.set_value(paddle.full([1], 0.5))
    return net


def test_gfpgan_forward_and_its_stored_noise():
    net = small_gfpgan()
    x = paddle.to_tensor(np.random.default_rng(6).uniform(-1, 1, (2, 3, 32, 32)).astype("float32"))
    with paddle.no_grad():
        image, rgbs = net(x)  # randomize_noise=False: the stored maps
        again, _ = net(x)
        fresh, _ = net(x, randomize_noise=True)
        no_rgb = net(x, return_rgb=False)[1]
        net.stylegan_decoder.noises.noise3.set_value(paddle.zeros([1, 1, 16, 16]))
        changed, _ = net(x)
    assert image.shape == [2, 3, 32, 32]
    assert [r.shape for r in rgbs] == [[2, 3, 8, 8], [2, 3, 16, 16], [2, 3, 32, 32]]
    assert no_rgb == []
    np.testing.assert_array_equal(image.numpy(), again.numpy())
    assert np.abs(fresh.numpy() - image.numpy()).max() > 1e-3
    assert np.abs(changed.numpy() - image.numpy()).max() > 1e-3


def test_gfpgan_full_sft_and_a_shared_w():
    net = small_gfpgan(different_w=False, sft_half=False, input_is_latent=False)
    assert net.final_linear.weight.shape == [32 * 16, 32]  # one w
    assert net.condition_scale[0][2].weight.shape == [2 * 32, 32, 3, 3]  # all channels
    x = paddle.to_tensor(np.random.default_rng(7).uniform(-1, 1, (1, 3, 32, 32)).astype("float32"))
    with paddle.no_grad():
        image, _ = net(x)
    assert image.shape == [1, 3, 32, 32] and np.isfinite(image.numpy()).all()


@pytest.mark.parametrize("factor", [2, 0.5])
def test_gfpgans_bilinear_resize_is_interpolates(factor):
    x = paddle.to_tensor(np.random.default_rng(5).standard_normal((2, 3, 6, 10)).astype("float32"))
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(bilinear_resized(x, factor).numpy(), expected.numpy(), atol=1e-6)
