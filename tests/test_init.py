"""Weight initialisation (model.init_type): each shipped config starts its nets as its reference.

- configs/wav2lip.yaml: PaddleGAN's Wav2LipModel, conv weights ~ N(0, 0.02), BN weights ~ N(1, 0.02);
- configs/wav2lip_hq.yaml: PaddleGAN's Wav2LipModelHq, kaiming uniform U(+-sqrt(6 / fan_in)) on
  netG and netDH, with fan_in of a transposed conv counting its output channels (as PyTorch);
- configs/syncnet.yaml: the original's PyTorch layer defaults, checked against torch's own layers.

No training: the models are only built (a few seconds each on 2 cores).
"""
import math
import os

import numpy as np
import paddle
import paddle.nn as nn
import pytest
import torch
import torch.nn as tnn
from torch.nn.init import _calculate_fan_in_and_fan_out

from ppgan.models import SyncNetColor, build_model
from ppgan.modules.init import fan_in, init_weights
from ppgan.utils.config import get_config
from tools_main import main  # registered by conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {name: os.path.join(REPO, "configs", f"{name}.yaml")
           for name in ("wav2lip", "wav2lip_hq", "syncnet")}

CONVS = (nn.Conv2D, nn.Conv2DTranspose)
# The generator's transposed convs (cin, cout), kernel 3, from the paper code's layer table.
DECODER_TRANSPOSED = [(1024, 512), (1024, 512), (768, 384), (512, 256), (320, 128), (160, 64)]


@pytest.fixture(scope="module")
def models():
    """One model per shipped config, built under one seed, on first use."""
    built = {}

    def get(name):
        if name not in built:
            paddle.seed(0)
            built[name] = build_model(get_config(CONFIGS[name]).model)
        return built[name]

    return get


def _layers(net, kinds):
    return [layer for layer in net.sublayers() if isinstance(layer, kinds)]


def _numpy(param):
    return param.numpy().ravel().astype(np.float64)


def _torch_fan_in(weight_shape):
    """PyTorch's fan_in for a conv weight of this shape (Paddle's conv layouts are PyTorch's)."""
    return _calculate_fan_in_and_fan_out(torch.empty(list(weight_shape)))[0]


def _assert_paddlegan_batch_norms(net, gain=0.02):
    norms = _layers(net, nn.BatchNorm2D)
    assert norms, "no BatchNorm layer found"
    weights = np.concatenate([_numpy(bn.weight) for bn in norms])
    assert abs(weights.mean() - 1.0) < 0.002 and abs(weights.std() - gain) < 0.1 * gain, \
        (weights.mean(), weights.std())
    assert all(not bn.bias.numpy().any() for bn in norms)


def _assert_uniform(values, bound, name):
    """Every value inside [-bound, bound], the extremes close to it, the std of U(-b, b)."""
    peak = np.abs(values).max()
    assert peak <= bound * (1 + 1e-6), (name, peak, bound)
    if values.size >= 1000:
        assert peak > 0.98 * bound, (name, peak, bound)
        assert abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound / math.sqrt(3), \
            (name, values.std(), bound)


# ---------------------------------------------------------------------- the shipped configs
def test_wav2lip_config_starts_netG_as_paddlegan_normal(models):
    netG = models("wav2lip").net("netG")
    convs = _layers(netG, CONVS)
    for layer in convs:
        weights = _numpy(layer.weight)
        if weights.size >= 1000:
            assert abs(weights.std() - 0.02) < 0.05 * 0.02, (layer.weight.name, weights.std())
        assert not layer.bias.numpy().any(), layer.bias.name
    pooled = np.concatenate([_numpy(layer.weight) for layer in convs])
    assert abs(pooled.mean()) < 1e-4 and abs(pooled.std() - 0.02) < 1e-4, (pooled.mean(), pooled.std())
    _assert_paddlegan_batch_norms(netG)


def test_hq_config_starts_netG_and_netDH_kaiming_uniform(models):
    model = models("wav2lip_hq")
    for name in ("netG", "netDH"):
        for layer in _layers(model.net(name), CONVS):
            bound = math.sqrt(6.0 / _torch_fan_in(layer.weight.shape))
            _assert_uniform(_numpy(layer.weight), bound, f"{name} {layer.weight.name}")
            assert not layer.bias.numpy().any(), (name, layer.bias.name)
    _assert_paddlegan_batch_norms(model.net("netG"))


def test_transposed_conv_fan_in_counts_output_channels(models):
    """Paddle's Conv2DTranspose weight is [C_in, C_out, k, k]: fan_in is C_out * k * k."""
    transposed = _layers(models("wav2lip_hq").net("netG"), nn.Conv2DTranspose)
    assert [tuple(layer.weight.shape) for layer in transposed] == [
        (cin, cout, 3, 3) for cin, cout in DECODER_TRANSPOSED]
    for layer, (cin, cout) in zip(transposed, DECODER_TRANSPOSED):
        torch_fan_in = _calculate_fan_in_and_fan_out(tnn.ConvTranspose2d(cin, cout, 3).weight)[0]
        assert fan_in(layer) == torch_fan_in == cout * 9
        peak = np.abs(layer.weight.numpy()).max()
        assert math.sqrt(6.0 / (cout * 9)) * 0.98 < peak <= math.sqrt(6.0 / (cout * 9)) * (1 + 1e-6)


def test_syncnet_config_starts_the_expert_as_pytorch_defaults(models):
    """Each conv against a freshly built torch Conv2d of its shape: same bound, similar spread."""
    torch.manual_seed(0)
    netD = models("syncnet").net("netD")
    scaled_biases = []
    for layer in _layers(netD, CONVS):
        shape = layer.weight.shape
        reference = tnn.Conv2d(shape[1], shape[0], tuple(shape[2:]))
        bound = 1.0 / math.sqrt(_calculate_fan_in_and_fan_out(reference.weight)[0])
        ours = _numpy(layer.weight)
        _assert_uniform(ours, bound, layer.weight.name)
        theirs = reference.weight.detach().numpy().ravel()
        assert abs(ours.std() - theirs.std()) < 0.05 * theirs.std(), (layer.weight.name, ours.std(), theirs.std())
        assert np.abs(reference.bias.detach().numpy()).max() <= bound
        scaled_biases.append(_numpy(layer.bias) / bound)
    # PyTorch draws the biases too, from the weights' bound: pooled, they are U(-1, 1).
    _assert_uniform(np.concatenate(scaled_biases), 1.0, "biases / bound")
    for bn in _layers(netD, nn.BatchNorm2D):
        assert (bn.weight.numpy() == 1).all() and not bn.bias.numpy().any(), bn.weight.name


# ---------------------------------------------------------------------- the schemes themselves
def test_pytorch_scheme_matches_torch_for_transposed_conv_and_linear():
    """Paddle's Linear weight is [in, out] where torch's is [out, in]: fan_in is in_features."""
    paddle.seed(1)
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2DTranspose(8, 40, 3), nn.Linear(200, 30))
    init_weights(net, "pytorch")
    for ours, theirs in zip(net, [tnn.ConvTranspose2d(8, 40, 3), tnn.Linear(200, 30)]):
        bound = 1.0 / math.sqrt(_calculate_fan_in_and_fan_out(theirs.weight)[0])
        assert fan_in(ours) == _calculate_fan_in_and_fan_out(theirs.weight)[0]
        _assert_uniform(_numpy(ours.weight), bound, type(ours).__name__)
        reference = theirs.weight.detach().numpy()
        assert abs(ours.weight.numpy().std() - reference.std()) < 0.05 * reference.std()
        assert np.abs(ours.bias.numpy()).max() <= bound and ours.bias.numpy().any()


@pytest.mark.parametrize("init_type", ["normal", "kaiming", "pytorch"])
def test_same_seed_same_weights(init_type):
    net = SyncNetColor()

    def initialised(seed):
        paddle.seed(seed)
        init_weights(net, init_type)
        return {key: value.numpy().copy() for key, value in net.state_dict().items()}

    first, again, other = initialised(3), initialised(3), initialised(4)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert not np.array_equal(first["face_encoder.0.conv_block.0.weight"],
                              other["face_encoder.0.conv_block.0.weight"])


def test_paddle_scheme_keeps_the_layers_as_built():
    paddle.seed(2)
    net = nn.Sequential(nn.Conv2D(3, 8, 3), nn.BatchNorm2D(8))
    before = {key: value.numpy().copy() for key, value in net.state_dict().items()}
    init_weights(net, "paddle")
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)


def test_unknown_init_type_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="init_type must be one of normal, kaiming, pytorch, paddle"):
        init_weights(nn.Conv2D(3, 8, 3), "xavier")
    argv = ["-c", CONFIGS["syncnet"], "-o", f"output_dir={tmp_path}", "model.init_type=Normal"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "init_type must be one of normal, kaiming, pytorch, paddle, got 'Normal'" \
        in err[0], err
