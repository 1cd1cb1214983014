"""tools/convert_weights.py on the face restorers' PyTorch files (issue 12, section 1): GPEN's
GPEN-BFR-512.pth (a bare state dict), GFPGAN's GFPGANv1.pth and its clean v1.2-v1.4 files
(params_ema beside params).

Small random networks of each architecture are built in PyTorch (tests/torch_enhancers.py,
written independently from the originals' sources, with their module names), saved in the
originals' key layout, converted without torch, and the Paddle networks must then give the
PyTorch outputs to 1e-4. Widths and sizes differ between the cases so that the converter has to
read them from the weights.
"""
import math
import os
import sys

import numpy as np
import paddle
import pytest
import torch
import torch.nn as tnn

sys.path.insert(0, os.path.dirname(__file__))
from torch_enhancers import TorchGFPGAN, TorchGPEN  # noqa: E402

from ppgan.apps.face_enhancer import load_enhancer  # noqa: E402
from ppgan.convert_weights import convert_checkpoint  # noqa: E402
from ppgan.faceutils.face_enhancement import (FaceEnhancement,  # noqa: E402
                                              GFPGANCleanEnhancement)
from ppgan.models.generators import GFPGANv1, GFPGANv1Clean, GPEN  # noqa: E402
from ppgan.utils.convert import ConversionError  # noqa: E402
from ppgan.utils.video import InputError  # noqa: E402

paddle.set_device("cpu")
STYLE = 16

# (torch net, Paddle class, face size, how the original saves it)
CASES = {
    # GPEN-BFR-256's proportions (channel multiplier 1), narrowed; a bare state dict
    "gpen": (lambda: TorchGPEN(64, STYLE, 2, cm=1, narrow=1 / 32), GPEN, 64, "bare"),
    "gfpgan": (lambda: TorchGFPGAN(32, STYLE, 2, cm=1, narrow=1 / 16, clean=False),
               GFPGANv1, 32, "params_ema"),
    # v1.3 / v1.4's proportions (channel multiplier 2), narrowed
    "gfpgan_clean": (lambda: TorchGFPGAN(64, STYLE, 2, cm=2, narrow=1 / 16, clean=True),
                     GFPGANv1Clean, 64, "params_ema"),
}


def randomised(net, seed):
    """Every weight random, biases and noise strengths (0 at init) too; plain layers at unit
    gain, so that the clean net's output depends on its input without blowing up."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (tnn.Conv2d, tnn.Linear)):
                tnn.init.normal_(m.weight, 0, 1 / math.sqrt(m.weight[0].numel()), generator=g)
        for name, value in net.state_dict().items():
            if name.endswith("kernel"):  # GPEN's FIR kernels are constants
                continue
            if name.endswith("bias") or value.numel() == 1:
                value.add_(0.3 * torch.randn(value.shape, generator=g))
            elif ".noises." in name:
                value.copy_(torch.randn(value.shape, generator=g))
    return net.eval()


def faces(size):
    return np.random.default_rng(size).uniform(-1, 1, (2, 3, size, size)).astype("float32")


class Case:
    def __init__(self, name, folder):
        make, self.paddle_class, self.size, layout = CASES[name]
        torch.manual_seed(len(name))
        self.net = randomised(make(), seed=len(name))
        state = self.net.state_dict()
        if layout == "bare":
            checkpoint = state
        else:  # the trained weights beside the averaged ones, which are the ones to take
            checkpoint = {"params": randomised(make(), seed=99).state_dict(), layout: state}
        self.path = str(folder / f"{name}.pth")
        torch.save(checkpoint, self.path)
        with torch.no_grad():
            out = self.net(torch.from_numpy(faces(self.size)))
        self.image, self.side_rgbs = (out if isinstance(out, tuple) else (out, []))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("restorers")
    return {name: Case(name, folder) for name in CASES}


def loaded(case, path):
    """The converted file in a Paddle net built from its own shapes, checked key by key."""
    state = paddle.load(path)
    config = case.paddle_class.config_from_weights(state)
    if case.paddle_class is not GPEN:  # GFPGAN's inference setting (not in the weights)
        config["input_is_latent"] = True
    net = case.paddle_class(**config)
    assert set(net.state_dict()) == set(state)
    missing, unexpected = net.set_state_dict(state)
    assert (missing, unexpected) == ([], [])
    return net.eval()


@pytest.mark.parametrize("name", list(CASES))
def test_converted_restorer_gives_the_torch_outputs(cases, tmp_path, name):
    case = cases[name]
    result = convert_checkpoint(case.path, tmp_path / f"{name}.pdparams")
    assert result.network == name  # detected from the keys
    net = loaded(case, result.output)
    with paddle.no_grad():
        out = net(paddle.to_tensor(faces(case.size)))
    image = out[0].numpy()
    assert image.shape == (2, 3, case.size, case.size)
    assert (case.image[0] - case.image[1]).abs().mean() > 0.01  # the input matters
    np.testing.assert_allclose(image, case.image.numpy(), rtol=1e-4, atol=1e-4)
    if case.side_rgbs:  # GFPGAN's pyramid of intermediate RGB images
        assert len(out[1]) == len(case.side_rgbs) == int(math.log2(case.size)) - 2
        for ours, theirs in zip(out[1], case.side_rgbs):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_gpen_kernels_are_left_out_and_its_unused_noise_is_zero(cases, tmp_path):
    case = cases["gpen"]
    torch_state = case.net.state_dict()
    kernels = [key for key in torch_state if key.endswith(".kernel")]
    assert "ecd1.0.0.kernel" in kernels and "generator.convs.0.conv.blur.kernel" in kernels
    # A GPEN training checkpoint (train_simple.py): the averaged generator is the one taken.
    trained = {k: v + 1 for k, v in torch_state.items()}
    torch.save({"g": trained, "d": {}, "g_ema": torch_state, "g_optim": {}}, tmp_path / "t.pth")
    state = paddle.load(convert_checkpoint(tmp_path / "t.pth", tmp_path / "g.pdparams").output)
    # The blur kernels are constants the Paddle net computes; the ToRGB upsampling kernels are
    # saved by PaddleGAN's GPEN too.
    assert {k for k in kernels if k in state} == {k for k in kernels if ".upsample." in k}
    noises = sorted(k for k in state if ".noises." in k)
    assert len(noises) == 9 and all(not state[k].numpy().any() for k in noises)
    np.testing.assert_array_equal(state["generator.style.1.weight"].numpy(),
                                  torch_state["generator.style.1.weight"].numpy().T)


def test_converted_files_run_in_the_enhancers(cases, tmp_path):
    gpen = convert_checkpoint(cases["gpen"].path, tmp_path / "gpen.pdparams").output
    enhancer = FaceEnhancement(gpen, size=None)  # the width of GPEN-BFR-256, from the weights
    assert enhancer.size == 64
    case = cases["gfpgan_clean"]
    clean = convert_checkpoint(case.path, tmp_path / "clean.pdparams").output
    enhancer = GFPGANCleanEnhancement(clean, size=None)
    rgb = np.clip((faces(64).transpose(0, 2, 3, 1) + 1) * 127.5, 0, 255)
    expected = np.clip(case.net(torch.from_numpy(
        (rgb.astype("float32") / 255 - 0.5) / 0.5).permute(0, 3, 1, 2))[0].detach().numpy(),
        -1, 1)
    expected = ((expected * 0.5 + 0.5) * 255).transpose(0, 2, 3, 1)
    restored = enhancer.restore(rgb)  # uint8, truncated as PaddleGAN does
    assert np.abs(restored - expected).max() < 1.001
    assert (restored == np.floor(expected)).mean() > 0.99

    with pytest.raises(InputError, match="GFPGANv1Clean weights.*use --enhancer gfpgan_clean"):
        load_enhancer("gfpgan", clean, "eager", "cpu", 1)
    with pytest.raises(InputError, match="gfpgan_clean has no default weights"):
        load_enhancer("gfpgan_clean", None, "eager", "cpu", 1)


def test_wrong_net_and_foreign_kernels_are_refused(cases, tmp_path):
    out = tmp_path / "x.pdparams"
    with pytest.raises(ConversionError, match="look like a gfpgan_clean checkpoint, not gfpgan"):
        convert_checkpoint(cases["gfpgan_clean"].path, out, network="gfpgan")
    with pytest.raises(ConversionError, match="look like a gfpgan checkpoint, not gpen"):
        convert_checkpoint(cases["gfpgan"].path, out, network="gpen")

    state = dict(cases["gpen"].net.state_dict())
    state["ecd2.0.0.kernel"] = torch.ones(4, 4) / 16  # a box filter: another network
    torch.save(state, tmp_path / "box.pth")
    with pytest.raises(ConversionError, match="ecd2.0.0.kernel is not the .1, 3, 3, 1. FIR"):
        convert_checkpoint(tmp_path / "box.pth", out)

    # GPEN's discriminator (GPEN-BFR-512-D.pth) is no network here.
    disc = {"convs.0.0.weight": torch.zeros(8, 3, 1, 1), "final_linear.1.weight": torch.zeros(1, 8)}
    torch.save(disc, tmp_path / "d.pth")
    with pytest.raises(ConversionError, match="cannot tell which network"):
        convert_checkpoint(tmp_path / "d.pth", out)
    with pytest.raises(ConversionError, match="has no generator.input.input, so .* no gpen"):
        convert_checkpoint(tmp_path / "d.pth", out, network="gpen")
    assert not out.exists()
