"""Exporting the generator as static inference models (its stages, as the predictor runs
them): Paddle Inference must reproduce eager mode.

The generator gets random BatchNorm statistics and affine terms, so the saved graph has to carry
eval-mode BatchNorm (folded into the convolutions at export, the transposed ones' kept) for the
outputs to match.
"""
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppgan.models import Wav2Lip
from ppgan.models.generators.wav2lip import LOWER_FIRST_ROW
from ppgan.apps.generator_runner import (STAGES, export_stages, load_generator, open_stages,
                                         with_batchnorm_folded)
from ppgan.utils.static_graph import export_layer

REPO = Path(__file__).resolve().parents[1]
EXPORT_TOOL = REPO / "tools" / "export_model.py"
BATCH_SIZES = (1, 3)
# Measured on a 2-core AVX2 EPYC: 0 without oneDNN (same kernels as eager), 1.0e-6 with it.
TOLERANCE = 1e-5


def randomised_generator(seed: int = 0) -> Wav2Lip:
    paddle.seed(seed)
    net = Wav2Lip()
    # Ranges chosen so the sigmoid output stays unsaturated, where differences still show.
    for layer in net.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            layer._mean.set_value(paddle.uniform(layer._mean.shape, min=0.0, max=0.2))
            layer._variance.set_value(paddle.uniform(layer._variance.shape, min=0.8, max=2.0))
            layer.weight.set_value(paddle.uniform(layer.weight.shape, min=0.8, max=1.2))
            layer.bias.set_value(paddle.uniform(layer.bias.shape, min=-0.1, max=0.1))
    return net


def eager_forward(net: Wav2Lip, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
    net.eval()
    with paddle.no_grad():
        return net(paddle.to_tensor(mel), paddle.to_tensor(faces)).numpy()


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    mel = rng.standard_normal((max(BATCH_SIZES), 1, 80, 16)).astype(np.float32)
    faces = rng.random((max(BATCH_SIZES), 6, 96, 96)).astype(np.float32)
    faces[:, :3, 48:] = 0  # the target's lower half is masked, as Wav2Lip feeds it
    return mel, faces


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = randomised_generator()
    net.train()  # export must switch to eval mode by itself, and back afterwards
    folder = str(tmp_path_factory.mktemp("export") / "wav2lip")
    written = export_stages(net, folder)
    return {"net": net, "folder": folder, "written": written, "training_after": net.training}


@pytest.fixture(scope="module")
def eager_outputs(exported, inputs):
    mel, faces = inputs
    return {b: eager_forward(exported["net"], mel[:b], faces[:b]) for b in BATCH_SIZES}


@pytest.fixture(scope="module")
def predictors(exported):
    cache = {}

    def get(use_onednn: bool):
        if use_onednn not in cache:
            cache[use_onednn] = open_stages(exported["folder"], cpu_threads=2,
                                            use_onednn=use_onednn)
        return cache[use_onednn]

    return get


def test_export_writes_program_and_params_and_leaves_net_alone(exported):
    written = iter(exported["written"])
    for stage, method, _ in STAGES:
        prefix = os.path.join(exported["folder"], stage)
        assert [next(written), next(written)] in ([prefix + ".json", prefix + ".pdiparams"],
                                                  [prefix + ".pdiparams", prefix + ".pdmodel"])
        # still eager, not a StaticFunction
        assert inspect.ismethod(getattr(exported["net"], method))
        assert getattr(exported["net"], method).__func__ is getattr(Wav2Lip, method)
    assert next(written, None) is None
    assert all(os.path.getsize(path) > 0 for path in exported["written"])
    assert exported["training_after"] is True
    assert exported["net"].forward.__func__ is Wav2Lip.forward


def test_reference_output_is_unsaturated(eager_outputs):
    # A saturated sigmoid would hide differences between eager and static outputs.
    out = eager_outputs[max(BATCH_SIZES)]
    assert np.mean((out > 0.01) & (out < 0.99)) > 0.99
    assert out.std() > 0.01


@pytest.mark.parametrize("use_onednn", [False, True], ids=["plain", "onednn"])
@pytest.mark.parametrize("batch", BATCH_SIZES)  # one predictor serves both: the batch is dynamic
def test_inference_matches_eager(predictors, inputs, eager_outputs, use_onednn, batch):
    mel, faces = inputs
    out = predictors(use_onednn)(mel[:batch], faces[:batch])
    assert out.dtype == np.float32
    assert out.shape == (batch, 3, 96, 96)
    diff = np.abs(out - eager_outputs[batch]).max()
    assert diff <= TOLERANCE, f"max abs difference {diff:.3g}"


def test_the_lower_decoder_draws_the_whole_decoders_rows(predictors, inputs):
    """The program the mouth blend runs gives the whole-face program's rows from
    LOWER_FIRST_ROW on (oneDNN sums in another order on other shapes: measured 0 to 1e-7)."""
    mel, faces = inputs
    generator = predictors(True)
    skips = generator.encode_face(faces)
    lower = generator.decode_lower(mel, skips)
    assert lower.shape == (len(mel), 3, 96 - LOWER_FIRST_ROW, 96)
    np.testing.assert_allclose(lower, generator.decode(mel, skips)[:, :, LOWER_FIRST_ROW:],
                               atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("stages", [("face_encoder", "decoder_lower"), ("face_encoder", "decoder")])
def test_a_folder_runs_with_the_programs_a_run_needs(exported, inputs, tmp_path, stages):
    """Programs open on first use: a mouth-blend run needs no whole-face decoder; a folder
    exported before the lower decoder existed gives its rows from the whole faces."""
    folder = tmp_path / "partial"
    folder.mkdir()
    for stage in stages:
        for name in os.listdir(exported["folder"]):
            if name.split(".")[0] == stage:
                shutil.copy(os.path.join(exported["folder"], name), folder)
    mel, faces = inputs
    generator = open_stages(str(folder), cpu_threads=2)
    lower = generator.decode_lower(mel, generator.encode_face(faces))
    whole = open_stages(exported["folder"], cpu_threads=2)(mel, faces)
    np.testing.assert_allclose(lower, whole[:, :, LOWER_FIRST_ROW:], atol=TOLERANCE, rtol=0)


def test_batchnorm_is_folded_into_each_convolution_before_it(inputs, eager_outputs):
    def count(net, kind):
        return sum(isinstance(layer, kind) for layer in net.sublayers())

    net = randomised_generator()
    norms = count(net, paddle.nn.BatchNorm2D)
    folded = with_batchnorm_folded(net)
    # Only the transposed convolutions' stay (Paddle leaves them unfused too).
    assert count(folded, paddle.nn.BatchNorm2D) == count(net, paddle.nn.Conv2DTranspose) < norms
    assert count(net, paddle.nn.BatchNorm2D) == norms  # the network itself is left as it was
    mel, faces = inputs
    np.testing.assert_allclose(eager_forward(folded, mel, faces), eager_outputs[len(mel)],
                               atol=TOLERANCE, rtol=0)


# Paddle's folding is exact on some CPUs only: bit for bit equal to ours on a Zen 4 EPYC; on an
# Intel Xeon with AMX one channel's scale in some layers came out one float32 step off the
# exactly rounded gamma / sqrt(var + eps) (as from a reciprocal approximated and refined, whose
# last bit depends on the CPU), 1.4e-6 of the outputs' largest magnitude at most.
FOLDING_TOLERANCE = 4e-6  # of the outputs' largest magnitude


def test_the_folded_program_computes_what_paddles_own_folding_did(predictors, inputs, tmp_path):
    """Before BatchNorm was folded at export, Paddle Inference folded it while loading: the
    folded programs give those programs' fp32 outputs, to the last bit Paddle's folding gets
    right on this CPU (ours is NumPy's exactly rounded arithmetic, the same on every CPU)."""
    net = randomised_generator()
    for stage, method, spec in STAGES:
        export_layer(net, str(tmp_path / stage), spec, method)
    unfolded, folded = open_stages(str(tmp_path), cpu_threads=2), predictors(True)
    mel, faces = inputs
    skips = unfolded.encode_face(faces)

    def assert_same(got, expected):
        np.testing.assert_allclose(got, expected, rtol=0,
                                   atol=FOLDING_TOLERANCE * np.abs(expected).max())

    for got, expected in zip(folded.encode_face(faces), skips):
        assert_same(got, expected)
    assert_same(folded.decode(mel, skips), unfolded.decode(mel, skips))
    assert_same(folded.decode_lower(mel, skips), unfolded.decode_lower(mel, skips))


def test_missing_model_is_a_one_line_error(tmp_path):
    folder = str(tmp_path / "absent" / "wav2lip")
    with pytest.raises(FileNotFoundError) as info:
        open_stages(folder)
    assert folder in str(info.value) and "\n" not in str(info.value)


EXPORT_A_RESIDUAL_BLOCK = """
import sys
import paddle
from ppgan.utils.static_graph import export_layer


class Residual(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 3, 3, padding=1)

    def forward(self, x):
        out = self.conv(x)
        out += x  # as Wav2Lip's residual blocks: PIR's tracing warns of the in-place add
        return out


spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
export_layer(Residual(), sys.argv[1], spec, legacy=sys.argv[2] == "legacy")
"""


@pytest.mark.parametrize("legacy, program", [(False, "m.json"), (True, "m.pdmodel")])
def test_an_export_writes_nothing_of_paddles_to_the_terminal(tmp_path, legacy, program):
    """Tracing logs through glog once per process, so each export runs in a process of its
    own: the in-place add's "Paddle static graph(PIR) not support input out tensor", and the
    legacy export's (int8 quantisation reads it) "New Executor is Running"."""
    script = tmp_path / "export_residual.py"  # a file: tracing reads the layer's source
    script.write_text(EXPORT_A_RESIDUAL_BLOCK)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "m"),
                           "legacy" if legacy else "pir"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "GLOG_minloglevel": "0"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / program).exists()
    assert not re.search(r"^[IWEF]\d{4} ", done.stderr + done.stdout, re.MULTILINE), done.stderr
    assert "exported Residual to" in done.stderr  # our own log line, after the silenced tracing


def run_tool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXPORT_TOOL), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_random_init_end_to_end(tmp_path, inputs):
    result = run_tool("--random-init", "--output_dir", "out", "--model_name", "gen", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = [tmp_path / "out" / "gen" / f"{stage}{suffix}" for stage, _, _ in STAGES
             for suffix in (".json", ".pdiparams")]
    assert all(path.is_file() for path in files)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert os.path.join("out", "gen") in lines[0] and "decoder.pdiparams" in lines[0]
    mel, faces = inputs
    out = open_stages(str(tmp_path / "out" / "gen"), use_onednn=False)(mel, faces)
    assert out.shape == (len(mel), 3, 96, 96) and np.isfinite(out).all()


def test_cli_missing_weights_is_a_one_line_error(tmp_path):
    result = run_tool("--load", "no_such.pdparams", "--output_dir", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such.pdparams" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def export_tool():
    spec = importlib.util.spec_from_file_location("export_model", EXPORT_TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout", ["flat", "checkpoint"])
def test_cli_exports_the_loaded_weights(export_tool, tmp_path, inputs, capsys, layout):
    net = randomised_generator(seed=1)
    state = {key: value.numpy() for key, value in net.state_dict().items()}
    if layout == "checkpoint":
        state = {"netG": state, "epoch": 7}
    weights = str(tmp_path / "weights.pdparams")
    paddle.save(state, weights)
    assert export_tool.main(["--load", weights, "--output_dir", str(tmp_path / "out")]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    mel, faces = inputs
    out = load_generator(str(tmp_path / "out" / "wav2lip"))(mel, faces)  # as the predictor loads it
    assert np.abs(out - eager_forward(net, mel, faces)).max() <= TOLERANCE


def test_cli_weights_that_do_not_fit_are_a_one_line_error(export_tool, tmp_path, capsys):
    state = {key: value.numpy() for key, value in Wav2Lip().state_dict().items()}
    del state["output_block.1.weight"]
    weights = str(tmp_path / "partial.pdparams")
    paddle.save(state, weights)
    assert export_tool.main(["--load", weights, "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output_block.1.weight" in err[0] and "missing" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_predictors_fast_path_matches_the_eager_reference(tmp_path):
    """load_generator('static') (face encoder and decoder as two Paddle Inference programs) gives
    the eager network's frames, and so does decoding one face's features, encoded once, against
    several mel windows (the photo path) rather than running the whole network per frame."""
    net = randomised_generator(seed=2)
    weights = str(tmp_path / "g.pdparams")
    paddle.save(net.state_dict(), weights)
    rng = np.random.default_rng(1)
    count = 5
    mel = rng.standard_normal((count, 1, 80, 16)).astype(np.float32)
    faces = rng.random((count, 6, 96, 96)).astype(np.float32)
    reference = eager_forward(net, mel, faces)
    for engine in ("static", "eager"):
        generator = load_generator(weights, engine=engine)
        np.testing.assert_allclose(generator(mel, faces), reference, atol=TOLERANCE, rtol=0)

        skips = generator.encode_face(faces[:1])
        once = generator.decode(mel, [np.repeat(skip, count, axis=0) for skip in skips])
        per_frame = eager_forward(net, mel, np.repeat(faces[:1], count, axis=0))
        assert np.abs(per_frame - reference).max() > 1e-3  # the test would see a wrong face
        np.testing.assert_allclose(once, per_frame, atol=TOLERANCE, rtol=0)


def test_a_cached_export_loads_without_building_the_network(tmp_path, monkeypatch):
    """The second static load of a weights file runs the export cached by the first, and so
    skips building the network and reading the weights (a second of every run's start-up)."""
    from ppgan.apps import generator_runner

    weights = str(tmp_path / "g.pdparams")
    paddle.save(randomised_generator(seed=3).state_dict(), weights)
    rng = np.random.default_rng(2)
    mel = rng.standard_normal((2, 1, 80, 16)).astype(np.float32)
    faces = rng.random((2, 6, 96, 96)).astype(np.float32)
    first = load_generator(weights)(mel, faces)

    def no_network(*args, **kwargs):
        raise AssertionError("the network was built although its export is cached")

    monkeypatch.setattr(generator_runner, "Wav2Lip", no_network)
    np.testing.assert_array_equal(load_generator(weights)(mel, faces), first)
    with pytest.raises(AssertionError, match="export is cached"):
        load_generator(weights, engine="eager")  # the eager engine does need the network


def test_an_exported_folder_needs_the_static_engine(exported):
    from ppgan.utils.errors import UserError

    with pytest.raises(UserError, match="only the static engine"):
        load_generator(exported["folder"], engine="eager")


# Measured 8e-6 against Paddle Inference on random weights (ONNX Runtime's own CPU kernels).
ONNX_TOLERANCE = 1e-4


def test_onnx_export_runs_in_onnx_runtime_as_in_paddle(export_tool, tmp_path, inputs, capsys):
    """--format onnx: the three stages as ONNX models whose ONNX Runtime output is the eager
    network's, fed by name as the Paddle programs are; nothing else is left in the folder."""
    import onnxruntime

    net = randomised_generator(seed=3)
    weights = str(tmp_path / "weights.pdparams")
    paddle.save(net.state_dict(), weights)
    assert export_tool.main(["--load", weights, "--output_dir", str(tmp_path / "out"),
                             "--format", "onnx"]) == 0
    assert "decoder.onnx" in capsys.readouterr().out
    folder = tmp_path / "out" / "wav2lip"
    assert sorted(os.listdir(folder)) == ["decoder.onnx", "decoder_lower.onnx", "face_encoder.onnx"]
    encoder, decoder, lower = (onnxruntime.InferenceSession(str(folder / f"{stage}.onnx"),
                                                            providers=["CPUExecutionProvider"])
                               for stage in ("face_encoder", "decoder", "decoder_lower"))
    mel, faces = inputs
    skips = encoder.run(None, {"face": faces})
    feed = {"audio": mel, **{f"skip{i}": s for i, s in enumerate(skips)}}
    reference = eager_forward(net, mel, faces)
    assert np.abs(decoder.run(None, feed)[0] - reference).max() <= ONNX_TOLERANCE
    assert np.abs(lower.run(None, feed)[0] - reference[:, :, LOWER_FIRST_ROW:]).max() <= ONNX_TOLERANCE


class _ScaledByMean(paddle.nn.Layer):
    """A convolution and a mean, as the enhancers hold: Paddle 3.3.1 prints
    "ReduceMeanCheckIfOneDNNSupport" on stdout the first time it runs such a program."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 3, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        return x * paddle.mean(x * x, axis=[2, 3], keepdim=True)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_static_model_keeps_paddles_own_output_off_the_terminal(tmp_path, capfd, precision):
    """A command's stdout is its result: nothing of Paddle's there, nor its glog lines on
    stderr, while loading or on the first and later calls; quiet=False shows them."""
    from ppgan.utils.static_graph import StaticModel, export_layer

    prefix = str(tmp_path / "mean")
    export_layer(_ScaledByMean(), prefix, [paddle.static.InputSpec([2, 3, 8, 8], "float32", "x")])
    x = np.random.default_rng(0).random((2, 3, 8, 8), np.float32)
    capfd.readouterr()
    model = StaticModel(prefix, precision=precision)
    first, second = model(x)[0], model(x)[0]
    out, err = capfd.readouterr()
    assert out == ""
    assert not re.search(r"^[IWE]\d{4} ", err, re.MULTILINE), err  # glog's lines (ours may log)
    np.testing.assert_array_equal(first, second)
    StaticModel(prefix, precision=precision, quiet=False)(x)
    assert "ReduceMeanCheckIfOneDNNSupport" in capfd.readouterr().out  # what quiet keeps out


class _StrideOneTransposed(paddle.nn.Layer):
    """A stride-1 3x3 transposed convolution: Paddle 3.3.1's oneDNN bf16 kernel for it fails
    ("std::exception") with AVX-512 BF16 (the generator's bf16 layout avoids it)."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(8, 16, 3, padding=1)
        self.transposed = paddle.nn.Conv2DTranspose(16, 16, 3, stride=1)

    def forward(self, x):
        return self.transposed(self.conv(x))


@pytest.fixture(scope="module")
def stride_one_program(tmp_path_factory):
    paddle.seed(0)
    prefix = str(tmp_path_factory.mktemp("stride_one") / "net")
    export_layer(_StrideOneTransposed(), prefix, [paddle.static.InputSpec([None, 8, 6, 6],
                                                                          "float32", "x")])
    return prefix


class _FailingPredictor:
    """Paddle's predictor, but its `run` fails from the `fail_from`-th call on, as a kernel of
    another CPU may for a new input size."""

    def __init__(self, predictor, fail_from: int):
        self._predictor, self._calls, self._fail_from = predictor, 0, fail_from

    def run(self):
        self._calls += 1
        if self._calls >= self._fail_from:
            raise RuntimeError("std::exception")
        self._predictor.run()

    def __getattr__(self, name):
        return getattr(self._predictor, name)


def _failing_in(monkeypatch, precision: str, fail_from: int = 0) -> None:
    """Programs opened in `precision` fail to open (fail_from 0) or to run from a call on."""
    from ppgan.utils import static_graph

    real = static_graph._create_predictor

    def create(path_prefix, *args, **options):
        if options.get("precision", "fp32") != precision:
            return real(path_prefix, *args, **options)
        if not fail_from:
            raise static_graph.ModelFileError(f"cannot load the inference model {path_prefix}")
        return _FailingPredictor(real(path_prefix, *args, **options), fail_from)
    monkeypatch.setattr(static_graph, "_create_predictor", create)


@pytest.mark.parametrize("fail_from", [0, 1, 2], ids=["opening", "first-call", "second-call"])
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_precision_that_fails_on_this_processor_falls_back_to_fp32(
        stride_one_program, monkeypatch, caplog, precision, fail_from):
    from ppgan.utils.static_graph import StaticModel

    rng = np.random.default_rng(0)
    small, large = (rng.random((n, 8, 6, 6), np.float32) for n in (1, 3))
    expected = [StaticModel(stride_one_program)(x)[0] for x in (small, large)]
    _failing_in(monkeypatch, precision, fail_from)
    model = StaticModel(stride_one_program, precision=precision)
    assert model.precision == ("fp32" if fail_from == 0 else precision)
    outputs = [model(small)[0], model(large)[0]]
    assert model.precision == "fp32"
    np.testing.assert_array_equal(outputs[1], expected[1])
    if fail_from != 2:  # the first call ran in fp32 too
        np.testing.assert_array_equal(outputs[0], expected[0])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"failed in {precision}" in warnings[0], warnings
    assert "running it in fp32" in warnings[0]


def test_a_program_that_fails_in_fp32_too_raises_its_own_error(stride_one_program, tmp_path,
                                                                monkeypatch):
    from ppgan.utils.static_graph import ModelFileError, StaticModel

    _failing_in(monkeypatch, "bf16", fail_from=1)
    model = StaticModel(stride_one_program, precision="bf16")
    with pytest.raises(ValueError, match="(?i)shape|dim"):  # 8 channels expected, not 5
        model(np.zeros((1, 5, 6, 6), np.float32))
    broken = tmp_path / "broken"
    shutil.copy(stride_one_program + ".pdiparams", str(broken) + ".pdiparams")
    (tmp_path / "broken.json").write_text("{ not a program")
    with pytest.raises(ModelFileError, match="cannot load the inference model"):
        StaticModel(str(broken), precision="bf16")


def test_a_bf16_kernel_that_fails_here_gives_the_fp32_output(stride_one_program, caplog):
    """Paddle's real failure where this CPU has it (AVX-512 BF16): the run goes on in fp32,
    equal to it; where the kernel runs, its output is within bf16's rounding of fp32's."""
    from ppgan.utils.static_graph import StaticModel

    x = np.random.default_rng(1).random((2, 8, 6, 6), np.float32)
    expected = StaticModel(stride_one_program)(x)[0]
    model = StaticModel(stride_one_program, precision="bf16")
    out = model(x)[0]
    if model.precision == "fp32":
        np.testing.assert_array_equal(out, expected)
        assert "failed in bf16" in caplog.text
    else:
        np.testing.assert_allclose(out, expected, rtol=0.05, atol=0.05 * np.abs(expected).max())
