"""The generator's precision: the CPU-feature rule that "auto" follows, the bf16 export's
equivalent convolution, and bf16's and int8's outputs against fp32's (random weights)."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from media import save_random_generator

from ppgan.apps.generator_int8 import without_output_sigmoid
from ppgan.apps.generator_runner import as_plain_convolutions, load_generator
from ppgan.apps.wav2lip_predictor import Wav2LipPredictor
from ppgan.data_preparation.samples import face_box_in_frame, face_frame, speech_like
from ppgan.models import Wav2Lip
from ppgan.models.generators.wav2lip import LOWER_FIRST_ROW, frame_faces
from ppgan.utils import device
from ppgan.utils.audio import mel_window, melspectrogram
from ppgan.utils import cpu
from ppgan.utils.cpu import (bf16_outruns_fp32, cpu_flags, cpu_name, cpu_vendor, has_bf16_units,
                             onednn_isa_cap, usable_flags)
from ppgan.utils.weights import load_weights

INTEL_AMX = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
             "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
             "\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n")
AMD_ZEN4 = ("vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654\n"
            "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n")
INTEL_BF16_NO_AMX = ("vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8380H\n"
                     "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n")  # Cooper Lake
AMX_ONLY = "flags\t\t: fpu avx2 amx_bf16\n"
AVX512_NO_BF16 = ("model name\t: Intel(R) Xeon(R) Gold 6248\n"
                  "flags\t\t: fpu avx2 avx512f avx512_vnni\n")
AVX2 = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu avx2 fma\n"
# Differences of bf16 from fp32 in levels of 255, random weights (save_random_generator), 8
# frames: measured mean 1.0 and max 41 on a Zen 4 EPYC (AVX-512 BF16); the bounds leave room
# for other bf16 units, and a wrong layer (a misplaced flip or padding) is off by far more.
BF16_MEAN_LEVELS, BF16_MAX_LEVELS = 3.0, 96.0
# int8 against fp32, random weights, the astronaut's face and speech-like audio (8 frames):
# measured mean 4.6 and 99th percentile 45 levels on a Zen 4 EPYC (VNNI); a wrong scale, or a
# missing or doubled sigmoid, is off by tens of levels on average.
INT8_MEAN_LEVELS, INT8_P99_LEVELS = 8.0, 80.0


@pytest.mark.parametrize("cpuinfo, bf16, faster", [
    (INTEL_AMX, True, True), (AMD_ZEN4, True, True), (AMX_ONLY, True, True),
    (INTEL_BF16_NO_AMX, True, False), (AVX512_NO_BF16, False, False), (AVX2, False, False),
    ("", False, False)])
def test_bf16_units_and_whether_bf16_is_faster_are_read_from_the_first_cpu(cpuinfo, bf16, faster):
    """bf16 is "auto" with AMX, or with AVX-512 BF16 on AMD; not with Intel's AVX-512 BF16
    alone, which ran slower than fp32 (README.md, "Other CPUs, emulated")."""
    flags = cpu_flags(cpuinfo)
    assert has_bf16_units(flags) is bf16
    assert bf16_outruns_fp32(flags, cpu_vendor(cpuinfo)) is faster


def test_cpu_name_and_vendor_from_cpuinfo():
    assert cpu_name(INTEL_AMX) == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu_name(AMD_ZEN4) == "AMD EPYC 9654"
    assert (cpu_vendor(INTEL_AMX), cpu_vendor(AMD_ZEN4), cpu_vendor(AVX2)) == (
        "GenuineIntel", "AuthenticAMD", "")


@pytest.mark.parametrize("variables, cap", [
    ({}, None), ({"ONEDNN_MAX_CPU_ISA": "avx2"}, "AVX2"), ({"DNNL_MAX_CPU_ISA": "AVX2"}, "AVX2"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "DNNL_MAX_CPU_ISA": "AVX2"}, "AVX512_CORE_BF16"),
    ({"ONEDNN_MAX_CPU_ISA": "ALL"}, None), ({"ONEDNN_MAX_CPU_ISA": "AVX3"}, None),
])
def test_onednn_isa_cap_is_read_as_onednn_reads_it(monkeypatch, variables, cap):
    for name in cpu.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert onednn_isa_cap() == cap


@pytest.mark.parametrize("cap, bf16", [
    (None, True), ("AVX2", False), ("AVX512_CORE", False), ("AVX512_CORE_VNNI", False),
    ("AVX2_VNNI_2", False), ("AVX512_CORE_BF16", True), ("AVX512_CORE_AMX", True),
])
def test_bf16_units_under_an_isa_cap(cap, bf16):
    assert has_bf16_units(usable_flags(cpu_flags(INTEL_AMX), cap)) is bf16


def test_amx_bf16_needs_the_amx_level():
    flags = usable_flags(cpu_flags(AMX_ONLY), "AVX512_CORE_BF16")
    assert "amx_bf16" not in flags and "avx2" in flags and not has_bf16_units(flags)


@pytest.mark.parametrize("cpuinfo, cap, bf16, auto", [
    (AMD_ZEN4, "AVX512_CORE_VNNI", False, "fp32"), (AMD_ZEN4, "AVX512_CORE_BF16", True, "bf16"),
    (INTEL_AMX, None, True, "bf16"), (INTEL_AMX, "AVX512_CORE_BF16", True, "fp32"),
    (INTEL_AMX, "AVX512_CORE_VNNI", False, "fp32")])
def test_this_machines_units_follow_the_cap(monkeypatch, cpuinfo, cap, bf16, auto):
    monkeypatch.setattr(cpu, "_cached_cpuinfo", lambda: cpuinfo)
    for name in cpu.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert f"oneDNN capped at {cap}" in cpu.cpu_summary()
    assert has_bf16_units() is bf16 and device.resolve_precision("auto", "cpu") == auto


@pytest.mark.parametrize("units, faster, asked, device_name, runs", [
    (True, True, "auto", "cpu", "bf16"), (False, False, "auto", "cpu", "fp32"),
    # Intel's AVX-512 BF16 without AMX: the units, but bf16 does not outrun fp32 there.
    (True, False, "auto", "cpu", "fp32"), (True, False, "bf16", "cpu", "bf16"),
    (True, True, "auto", "gpu:0", "fp32"), (True, True, "fp32", "cpu", "fp32"),
    (False, False, "bf16", "cpu", "fp32"),  # asked for without the units: fp32, with a warning
    (True, True, "fp16", "cpu", "fp32"), (True, True, "bf16", "gpu:0", "fp32"),
    (True, True, "fp16", "gpu:1", "fp16"),
    (False, False, "int8", "cpu", "int8"), (True, True, "int8", "gpu:0", "fp32"),  # when asked
])
def test_precision_rule(monkeypatch, units, faster, asked, device_name, runs):
    monkeypatch.setattr(device, "has_bf16_units", lambda: units)
    monkeypatch.setattr(device, "bf16_outruns_fp32", lambda: faster)
    assert device.resolve_precision(asked, device_name) == runs


def test_a_fallback_is_warned_of_once(monkeypatch, caplog):
    """The generator, the detector and the enhancer each resolve a run's precision."""
    monkeypatch.setattr(device, "has_bf16_units", lambda: False)
    device._warn_once.cache_clear()
    assert [device.resolve_precision("bf16", "cpu") for _ in range(3)] == ["fp32"] * 3
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "this CPU has no bf16 units oneDNN may use (AMX or AVX-512 BF16): running in fp32"]


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, int8, fp16"):
        device.resolve_precision("int4", "cpu")


def test_the_generator_and_s3fd_run_in_int8_and_the_enhancer_in_fp32(monkeypatch):
    import ppgan.apps.wav2lip_predictor as predictor_module

    asked = []
    monkeypatch.setattr(predictor_module, "load_enhancer", lambda *args: asked.append(args[-1]))
    predictor = Wav2LipPredictor(precision="int8", face_enhancement=True)
    predictor.enhancer()
    assert (predictor.precision, predictor.detection.precision, asked) == ("int8", "int8", ["fp32"])


@pytest.mark.parametrize("channels, kernel, padding", [((6, 5), 3, 0), ((4, 3), (3, 2), 1)])
def test_plain_convolution_computes_the_stride_1_transposed_one(channels, kernel, padding):
    paddle.seed(0)
    transposed = paddle.nn.Sequential(paddle.nn.Conv2DTranspose(*channels, kernel, 1, padding))
    plain = as_plain_convolutions(transposed)
    assert isinstance(plain[0], paddle.nn.Conv2D)
    x = paddle.randn([2, channels[0], 5, 4])
    expected = transposed(x).numpy()
    np.testing.assert_allclose(plain(x).numpy(), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


def test_the_reference_network_keeps_its_layers():
    net = Wav2Lip()
    names = list(net.state_dict())
    plain = as_plain_convolutions(net)

    def transposes(layer):
        return sum(isinstance(s, paddle.nn.Conv2DTranspose) for s in layer.sublayers())
    assert (transposes(net), transposes(plain)) == (6, 5)  # only the stride-1 one changed
    assert list(net.state_dict()) == names


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    return save_random_generator(str(tmp_path_factory.mktemp("precision") / "g.pdparams"))


def test_bf16_is_close_to_fp32(random_weights):
    rng = np.random.default_rng(0)
    mel = rng.standard_normal((8, 1, 80, 16)).astype(np.float32)
    faces = rng.random((8, 6, 96, 96)).astype(np.float32)
    fp32 = load_generator(random_weights, precision="fp32")(mel, faces)
    bf16_run = load_generator(random_weights, precision="bf16")
    levels = np.abs(bf16_run(mel, faces) - fp32) * 255
    assert levels.mean() < BF16_MEAN_LEVELS and levels.max() < BF16_MAX_LEVELS
    if has_bf16_units():  # bf16 really ran: fp32 would be within 0.01 of a level
        assert levels.mean() > 0.01
    # The lower decoder, in bf16: as close to fp32's rows (its sums differ from the whole
    # decoder's in bf16, by at most half a level where measured).
    lower = bf16_run.decode_lower(mel, bf16_run.encode_face(faces))
    levels = np.abs(lower - fp32[:, :, LOWER_FIRST_ROW:]) * 255
    assert levels.mean() < BF16_MEAN_LEVELS and levels.max() < BF16_MAX_LEVELS


CAPPED_RUN = """
import sys
import numpy as np
from ppgan.apps.generator_runner import load_generator
from ppgan.utils.device import resolve_precision
rng = np.random.default_rng(0)
mel = rng.standard_normal((2, 1, 80, 16)).astype(np.float32)
faces = rng.random((2, 6, 96, 96)).astype(np.float32)
np.save(sys.argv[2], load_generator(sys.argv[1], precision="bf16")(mel, faces))
print(resolve_precision("auto", "cpu"))
"""


def test_bf16_under_an_isa_cap_below_it_runs_fp32(random_weights, tmp_path):
    """oneDNN capped at AVX2 (as on a CPU without bf16 units): "auto" is fp32, and bf16 asked
    for runs the fp32 program (Paddle's bf16 program failed there with "std::exception")."""
    out = tmp_path / "capped.npy"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", CAPPED_RUN, random_weights, str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["fp32"] and "running in fp32" in done.stderr
    rng = np.random.default_rng(0)
    mel = rng.standard_normal((2, 1, 80, 16)).astype(np.float32)
    faces = rng.random((2, 6, 96, 96)).astype(np.float32)
    fp32 = load_generator(random_weights, precision="fp32")(mel, faces)
    # The same program and weights; only the kernels differ (AVX2's against this CPU's own, 1.3e-5
    # apart where measured); bf16 is about a level of 255 (4e-3) off on average.
    np.testing.assert_allclose(np.load(out), fp32, atol=1e-4)


def eager_network_and_inputs(weights, seed):
    """The generator holding `weights`, in eval mode, and two random frames' inputs."""
    net = Wav2Lip()
    load_weights(net, weights)
    net.eval()
    rng = np.random.default_rng(seed)
    mel = paddle.to_tensor(rng.standard_normal((2, 1, 80, 16)).astype(np.float32))
    faces = paddle.to_tensor(rng.random((2, 6, 96, 96)).astype(np.float32))
    return net, mel, faces


def test_the_bf16_layout_gives_the_networks_frames_in_fp32(random_weights):
    """The whole generator with the plain convolution, in fp32, eager: the rewrite changes only
    the order of the sums (measured: 1.1e-5 at most on [0, 1] outputs)."""
    net, mel, faces = eager_network_and_inputs(random_weights, seed=1)
    with paddle.no_grad():
        np.testing.assert_allclose(as_plain_convolutions(net)(mel, faces).numpy(),
                                   net(mel, faces).numpy(), rtol=0, atol=3e-5)


@pytest.fixture(scope="module")
def photo_inputs():
    """8 frames of the astronaut's face and speech-like mel windows, as the pipeline feeds them."""
    frame, box = face_frame(640, 360, 256, 100, 50), face_box_in_frame(256, 100, 50)
    faces = frame_faces([frame] * 8, np.array([box] * 8))
    mel = melspectrogram(speech_like(1.3))
    mels = np.stack([mel_window(mel, 3 * i, 25.0) for i in range(8)])[:, None]
    return mels.astype(np.float32), faces


def test_int8_is_close_to_fp32(random_weights, photo_inputs):
    mel, faces = photo_inputs
    fp32 = load_generator(random_weights, precision="fp32")(mel, faces)
    int8_run = load_generator(random_weights, precision="int8")
    skips = int8_run.encode_face(faces)
    for drawn, expected in ((int8_run.decode(mel, skips), fp32),
                            (int8_run.decode_lower(mel, skips), fp32[:, :, LOWER_FIRST_ROW:])):
        levels = np.abs(drawn - expected) * 255
        assert levels.mean() < INT8_MEAN_LEVELS
        assert np.percentile(levels, 99) < INT8_P99_LEVELS
        assert levels.mean() > 0.1  # int8 ran: fp32 would be within 0.01 of a level


def test_the_int8_export_draws_logits(random_weights):
    net, mel, faces = eager_network_and_inputs(random_weights, seed=2)
    with paddle.no_grad():
        logits = without_output_sigmoid(net)(mel, faces)
        np.testing.assert_allclose(paddle.nn.functional.sigmoid(logits).numpy(),
                                   net(mel, faces).numpy(), rtol=0, atol=1e-6)
    assert isinstance(net.output_block[2], paddle.nn.Sigmoid)  # the network is left alone
