"""PyTorch .pth -> PaddleGAN .pdparams: the torch-free reader, the converter and its CLI.

The PyTorch networks here are written from the layer lists in the reference notes (section 4), in
the original Wav2Lip's torch style and with its module names, independently of the Paddle code
under test. Their weights and BatchNorm statistics are randomised, saved the way Wav2Lip's training
scripts save them (DataParallel ``module.`` prefix, optimizer state, step counters) in both the
zip and the legacy serialization formats, converted, and the Paddle nets must then reproduce the
PyTorch eval-mode outputs.
"""
import collections
import os
import pickle
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, REPO)
warnings.filterwarnings("ignore", message="No ccache found")

import paddle  # noqa: E402

from ppgan.models import SyncNetColor, Wav2Lip, Wav2LipDiscQual  # noqa: E402
from ppgan.convert_weights import convert_checkpoint  # noqa: E402
from ppgan.utils.convert import ConversionError, detect_network  # noqa: E402
from ppgan.utils.torch_checkpoint import (CheckpointError, NotACheckpointError,  # noqa: E402
                                          UnsupportedCheckpointError, load_torch_checkpoint)
from ppgan.models.torch_reference import TorchDisc, TorchS3FDWeights, TorchSyncNet, TorchWav2Lip  # noqa: E402

paddle.set_device("cpu")
CLI = os.path.join(REPO, "tools", "convert_weights.py")
FORMATS = ("zip", "legacy")
B, T = 2, 5


# --------------------------------------------------------------------------------------------
# Randomised reference nets, their inputs/outputs and checkpoints (built once per module)
# --------------------------------------------------------------------------------------------
def _inputs(name, temporal=False):
    g = np.random.default_rng(7)
    mel = lambda *s: g.standard_normal(s, dtype=np.float32)  # noqa: E731
    img = lambda *s: g.random(s, dtype=np.float32)  # noqa: E731
    if name == "wav2lip":
        return (mel(B, T, 1, 80, 16), img(B, 6, T, 96, 96)) if temporal else \
               (mel(B, 1, 80, 16), img(B, 6, 96, 96))
    if name == "syncnet":
        return mel(B, 1, 80, 16), img(B, 15, 48, 96)
    return (img(B, 3, T, 96, 96),)


def _calibrate_batchnorm(net, inputs, seed):
    """Sets BN statistics from a real batch, then perturbs them and the affine terms.

    Purely random statistics on a 50-layer net squash the signal so that the output hardly depends
    on the early layers; calibrated ones keep every layer influential, while the perturbation makes
    sure BN is far from identity and mean/variance/gamma/beta all matter.
    """
    bns = [m for m in net.modules() if isinstance(m, tnn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch -> exactly that batch's statistics
    net.train()
    with torch.no_grad():
        net(*[torch.from_numpy(x) for x in inputs])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in bns:
            c = bn.num_features
            bn.running_mean.add_(0.1 * bn.running_var.sqrt() * torch.randn(c, generator=g))
            bn.running_var.mul_(torch.empty(c).uniform_(0.7, 1.4, generator=g))
            bn.weight.copy_(torch.empty(c).uniform_(0.6, 1.4, generator=g))
            bn.bias.copy_(0.2 * torch.randn(c, generator=g))
            bn.num_batches_tracked.fill_(1234)
    net.eval()


def _build_torch_net(name):
    torch.manual_seed({"wav2lip": 1, "syncnet": 2, "disc": 3}[name])
    if name == "disc":
        net = TorchDisc()
        # No BN here: He init keeps the signal alive through 14 layers.
        for m in net.modules():
            if isinstance(m, tnn.Conv2d):
                tnn.init.kaiming_normal_(m.weight, a=0.01)
                tnn.init.uniform_(m.bias, -0.1, 0.1)
        return net.eval()
    net = TorchWav2Lip() if name == "wav2lip" else TorchSyncNet()
    g = np.random.default_rng(11)
    n = 3 if name == "wav2lip" else 6  # the generator's forward is the slow one
    calib = (g.standard_normal((n, 1, 80, 16), dtype=np.float32),
             g.random((n, 6, 96, 96) if name == "wav2lip" else (n, 15, 48, 96), dtype=np.float32))
    _calibrate_batchnorm(net, calib, seed=5)
    return net


def _torch_outputs(net, inputs):
    with torch.no_grad():
        out = net(*[torch.from_numpy(x) for x in inputs])
    return tuple(o.numpy() for o in out) if isinstance(out, tuple) else (out.numpy(),)


def _fake_optimizer(net):
    first = next(net.parameters())
    return {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.randn_like(first),
                          "exp_avg_sq": torch.rand_like(first)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.5, 0.999), "eps": 1e-8,
                              "weight_decay": 0, "amsgrad": False, "params": [0]}]}


def _save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))
    return str(path)


class _References:
    """Lazily builds each torch net once and saves its training checkpoint in each format."""

    def __init__(self, folder):
        self.folder = folder
        self._nets, self._ckpts, self._outputs = {}, {}, {}

    def net(self, name):
        if name not in self._nets:
            net = _build_torch_net(name)
            ckpt = {"state_dict": {"module." + k: v for k, v in net.state_dict().items()},
                    "optimizer": _fake_optimizer(net), "global_step": 5, "global_epoch": 1}
            self._nets[name] = (net, ckpt)
        return self._nets[name]

    def outputs(self, name, temporal=False):
        """Eval-mode torch outputs on the fixed inputs (computed once: the forwards are slow)."""
        if (name, temporal) not in self._outputs:
            net = self.net(name)[0]
            self._outputs[name, temporal] = _torch_outputs(net, _inputs(name, temporal))
        return self._outputs[name, temporal]

    def checkpoint(self, name, fmt):
        if (name, fmt) not in self._ckpts:
            path = self.folder / f"{name}_{fmt}.pth"
            self._ckpts[name, fmt] = _save(self.net(name)[1], path, fmt)
        return self._ckpts[name, fmt]


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return _References(tmp_path_factory.mktemp("torch_ckpts"))


def _paddle_net(name, pdparams):
    net = {"wav2lip": Wav2Lip, "syncnet": SyncNetColor, "disc": Wav2LipDiscQual}[name]()
    missing, unexpected = net.set_state_dict(paddle.load(pdparams))
    assert not missing and not unexpected
    net.eval()
    return net


def _paddle_outputs(net, inputs):
    with paddle.no_grad():
        out = net(*[paddle.to_tensor(x) for x in inputs])
    return tuple(o.numpy() for o in out) if isinstance(out, tuple) else (out.numpy(),)


def _assert_close(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)


def _assert_informative(outputs):
    # Guard against a vacuous comparison: the two samples of the batch must differ clearly.
    for out in outputs:
        assert np.abs(out[0] - out[1]).max() > 1e-2


# --------------------------------------------------------------------------------------------
# Converted nets reproduce PyTorch
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_generator_matches_torch(refs, tmp_path, fmt):
    result = convert_checkpoint(refs.checkpoint("wav2lip", fmt), tmp_path / "g.pdparams")
    assert (result.network, result.num_tensors, result.dropped) == ("wav2lip", 302, 50)

    net = _paddle_net("wav2lip", result.output)
    for temporal in (False, True):
        expected = refs.outputs("wav2lip", temporal)
        _assert_informative(expected)
        actual = _paddle_outputs(net, _inputs("wav2lip", temporal))
        assert actual[0].shape == ((B, 3, T, 96, 96) if temporal else (B, 3, 96, 96))
        _assert_close(actual, expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_syncnet_matches_torch(refs, tmp_path, fmt):
    result = convert_checkpoint(refs.checkpoint("syncnet", fmt), tmp_path / "s.pdparams")
    assert (result.network, result.num_tensors, result.dropped) == ("syncnet", 186, 31)
    expected = refs.outputs("syncnet")
    _assert_informative(expected)
    net = _paddle_net("syncnet", result.output)
    _assert_close(_paddle_outputs(net, _inputs("syncnet")), expected)

    # Negative control: with one early BN's variance reset the embeddings must move, so the
    # comparison above really depends on the converted statistics.
    state = net.state_dict()
    key = "face_encoder.1.conv_block.1._variance"
    state[key] = paddle.ones_like(state[key])
    net.set_state_dict(state)
    moved = _paddle_outputs(net, _inputs("syncnet"))[1]
    assert np.abs(moved - expected[1]).max() > 1e-3


@pytest.mark.parametrize("fmt", FORMATS)
def test_disc_matches_torch(refs, tmp_path, fmt):
    result = convert_checkpoint(refs.checkpoint("disc", fmt), tmp_path / "d.pdparams")
    assert (result.network, result.num_tensors, result.dropped) == ("disc", 28, 0)
    expected = refs.outputs("disc")
    assert expected[0].shape == (B * T, 1)
    assert expected[0].std() > 1e-3
    _assert_close(_paddle_outputs(_paddle_net("disc", result.output), _inputs("disc")), expected)


def test_converted_file_is_a_flat_float32_paddle_state_dict(refs, tmp_path):
    result = convert_checkpoint(refs.checkpoint("syncnet", "legacy"), tmp_path / "s.pdparams")
    state = paddle.load(result.output)
    torch_state = refs.net("syncnet")[0].state_dict()
    assert not any(k.startswith("module.") or "running_" in k or "num_batches" in k for k in state)
    assert {str(v.dtype) for v in state.values()} == {"paddle.float32"}
    np.testing.assert_array_equal(state["face_encoder.3.conv_block.1._variance"].numpy(),
                                  torch_state["face_encoder.3.conv_block.1.running_var"].numpy())
    np.testing.assert_array_equal(state["audio_encoder.13.conv_block.0.weight"].numpy(),
                                  torch_state["audio_encoder.13.conv_block.0.weight"].numpy())


# --------------------------------------------------------------------------------------------
# The torch-free reader
# --------------------------------------------------------------------------------------------
def _tricky_tensors():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return collections.OrderedDict([
        ("base", base),
        ("transposed", base.t()),                 # non-contiguous view of the same storage
        ("window", base[1:, 2:5]),                # storage offset + non-contiguous
        ("row", base[2]),                         # contiguous view with an offset
        ("half", torch.randn(3, 5).half()),
        ("long", torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4)),
        ("bool", torch.tensor([True, False, True])),
        ("expanded", torch.tensor([1.5, -2.0]).expand(3, 2)),  # zero stride
        ("scalar", torch.tensor(3.25)),
        ("empty", torch.zeros(0, 3)),
        ("param", tnn.Parameter(torch.randn(2, 3))),
        ("bf16", torch.randn(4).bfloat16()),      # numpy has no bfloat16: widened to float32
        ("bf16_scalar", torch.tensor(-0.75).bfloat16()),
    ])


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_returns_the_torch_tensors(tmp_path, fmt):
    tensors = _tricky_tensors()
    obj = {"tensors": tensors, "nested": [1, ("a", tensors["half"])], "step": 7, "name": "x",
           "blob": b"\x00\xff", "dtype": torch.float16}
    loaded = load_torch_checkpoint(_save(obj, tmp_path / "t.pth", fmt))

    assert isinstance(loaded["tensors"], collections.OrderedDict)
    assert list(loaded["tensors"]) == list(tensors)
    for name, tensor in tensors.items():
        ref = tensor.detach()
        ref = ref.float().numpy() if ref.dtype == torch.bfloat16 else ref.numpy()
        got = loaded["tensors"][name]
        assert isinstance(got, np.ndarray), name
        assert got.dtype == ref.dtype and got.shape == ref.shape, name
        np.testing.assert_array_equal(got, ref, err_msg=name)
    assert loaded["tensors"]["half"].dtype == np.float16
    assert loaded["tensors"]["long"].dtype == np.int64
    # Tensors sharing a storage share memory, as they do in torch.
    assert np.shares_memory(loaded["tensors"]["base"], loaded["tensors"]["row"])
    np.testing.assert_array_equal(loaded["nested"][1][1], tensors["half"].numpy())
    assert (loaded["step"], loaded["name"], loaded["blob"]) == (7, "x", b"\x00\xff")
    assert loaded["dtype"] == np.float16


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_reads_a_wav2lip_training_checkpoint(refs, fmt):
    _, ckpt = refs.net("disc")
    loaded = load_torch_checkpoint(refs.checkpoint("disc", fmt))
    assert set(loaded) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    assert (loaded["global_step"], loaded["global_epoch"]) == (5, 1)
    assert list(loaded["state_dict"]) == list(ckpt["state_dict"])
    for k, v in ckpt["state_dict"].items():
        np.testing.assert_array_equal(loaded["state_dict"][k], v.numpy())
    state = loaded["optimizer"]["state"][0]
    saved_state = ckpt["optimizer"]["state"][0]
    np.testing.assert_array_equal(state["exp_avg"], saved_state["exp_avg"].numpy())
    assert state["step"] == 5.0
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.5, 0.999)


def _write_legacy_with_storage_view(path, root, view, size, stride, offset):
    """A legacy file as pre-1.0 PyTorch wrote it, with a tensor on a view of a storage."""
    class Storage:
        pass

    storage = Storage()

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (
                storage, offset, size, stride, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is storage:
                return ("storage", torch.FloatStorage, "root", "cuda:0", root.size,
                        ("view", view[0], view[1]))
            return None

    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001,
                       {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump({"t": Tensor()})
        pickle.dump(["root"], f, protocol=2)
        f.write(struct.pack("<q", root.size) + root.astype("<f4").tobytes())
    return str(path)


def test_reader_handles_legacy_storage_views(tmp_path):
    root = np.arange(10, dtype=np.float32) * 1.5
    path = _write_legacy_with_storage_view(tmp_path / "v.pth", root, view=(2, 6),
                                           size=(2, 2), stride=(1, 2), offset=1)
    window = root[2:8]
    expected = np.array([[window[1], window[3]], [window[2], window[4]]])
    np.testing.assert_array_equal(load_torch_checkpoint(path)["t"], expected)

    # A tensor reaching past its storage view is rejected instead of reading stray memory.
    bad = _write_legacy_with_storage_view(tmp_path / "bad.pth", root, view=(2, 6),
                                          size=(3, 3), stride=(3, 1), offset=0)
    with pytest.raises(CheckpointError, match="overruns"):
        load_torch_checkpoint(bad)


class Gadget:
    """Not something a checkpoint of tensors may contain."""


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_refuses_arbitrary_python_objects(tmp_path, fmt):
    path = _save({"state_dict": {"w": torch.ones(2)}, "extra": Gadget()}, tmp_path / "g.pth", fmt)
    with pytest.raises(UnsupportedCheckpointError, match="Gadget") as info:
        load_torch_checkpoint(path)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_reader_rejects_non_checkpoints(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("just some text\n")
    with pytest.raises(NotACheckpointError) as info:
        load_torch_checkpoint(text)
    assert isinstance(info.value, ValueError)
    assert str(text) in str(info.value) and "\n" not in str(info.value)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(NotACheckpointError):
        load_torch_checkpoint(empty)
    with pytest.raises(FileNotFoundError):
        load_torch_checkpoint(tmp_path / "missing.pth")


# --------------------------------------------------------------------------------------------
# S3FD, network detection, conversion errors
# --------------------------------------------------------------------------------------------
def test_s3fd_state_dict_converts_with_names_unchanged(tmp_path):
    torch.manual_seed(4)
    state = TorchS3FDWeights().state_dict()
    assert len(state) == 65
    path = _save(state, tmp_path / "s3fd.pth", "legacy")  # a raw state dict, like the real file
    result = convert_checkpoint(path)
    assert result.network == "s3fd" and result.output == str(tmp_path / "s3fd.pdparams")
    converted = paddle.load(result.output)
    assert set(converted) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(converted[k].numpy(), v.numpy())


def test_detect_network_from_keys():
    assert detect_network(Wav2Lip().state_dict()) == "wav2lip"
    assert detect_network(SyncNetColor().state_dict()) == "syncnet"
    assert detect_network(Wav2LipDiscQual().state_dict()) == "disc"
    assert detect_network(["conv1_1.weight", "fc7.weight"]) == "s3fd"
    assert detect_network(["encoder.weight"]) is None


def test_mismatched_network_is_a_clear_error(refs, tmp_path):
    out = tmp_path / "x.pdparams"
    with pytest.raises(ConversionError, match="looks? like a syncnet checkpoint"):
        convert_checkpoint(refs.checkpoint("syncnet", "zip"), out, network="wav2lip")
    assert not out.exists()


def test_missing_and_misshaped_keys_are_reported(refs, tmp_path):
    state = {k: v.clone() for k, v in refs.net("disc")[1]["state_dict"].items()}
    del state["module.binary_pred.0.bias"]
    state["module.face_encoder_blocks.0.0.conv_block.0.weight"] = torch.zeros(32, 3, 5, 5)
    path = _save({"state_dict": state}, tmp_path / "broken.pth", "zip")
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(path)
    message = str(info.value)
    assert "1 missing (binary_pred.0.bias)" in message and "1 mis-shaped" in message
    assert "\n" not in message and not (tmp_path / "broken.pdparams").exists()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _run_cli(*args, cwd):
    return subprocess.run([sys.executable, CLI, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _assert_one_line_error(proc, folder, before):
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("convert_weights: error:")
    assert sorted(os.listdir(folder)) == before  # no output, no temporary left behind


def test_cli_user_errors_are_one_line_exit_2(refs, tmp_path):
    text = tmp_path / "readme.pth"
    text.write_text("not weights\n")
    syncnet = tmp_path / "lipsync_expert.pth"
    os.link(refs.checkpoint("syncnet", "legacy"), syncnet)
    before = sorted(os.listdir(tmp_path))

    proc = _run_cli(tmp_path / "missing.pth", cwd=tmp_path)
    _assert_one_line_error(proc, tmp_path, before)
    assert "missing.pth" in proc.stderr

    proc = _run_cli(text, cwd=tmp_path)
    _assert_one_line_error(proc, tmp_path, before)
    assert "readme.pth" in proc.stderr and "not a PyTorch checkpoint" in proc.stderr

    proc = _run_cli(syncnet, "--net", "wav2lip", "-o", tmp_path / "out.pdparams", cwd=tmp_path)
    _assert_one_line_error(proc, tmp_path, before)
    assert "wav2lip" in proc.stderr and "syncnet" in proc.stderr

    proc = _run_cli(syncnet, "--net", "vgg", cwd=tmp_path)
    _assert_one_line_error(proc, tmp_path, before)


def test_cli_converts_with_default_output_name(refs, tmp_path):
    src = tmp_path / "visual_quality_disc.pth"
    os.link(refs.checkpoint("disc", "legacy"), src)
    proc = _run_cli(src, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("disc: 28 tensors")
    out = tmp_path / "visual_quality_disc.pdparams"
    assert sorted(os.listdir(tmp_path)) == sorted([src.name, out.name])
    _assert_close(_paddle_outputs(_paddle_net("disc", str(out)), _inputs("disc")),
                  refs.outputs("disc"))
