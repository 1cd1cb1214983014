"""Runs the Wav2Lip generator on NumPy batches, through Paddle Inference (fast) or eagerly.

The generator runs in two stages, face encoder then audio encoder + decoder, so that a photo's
face features can be computed once and decoded against every mel window. The decoder comes in
two programs: the whole face, and its rows from LOWER_FIRST_ROW on, all the default "mouth"
blend reads (`Wav2Lip.decode_lower`; the generator 1.3-1.4 times as fast). The static path
exports each stage once per weights file (see `cached_export`), its convolutions' BatchNorms
folded into them (`with_batchnorm_folded`, as Paddle Inference would fold them at every load),
and runs it with Paddle Inference's fusion passes (fused bias and activations), which eager mode
lacks; the split adds only one hand-over of the skip tensors. The eager path is the reference.

In bf16 (`--precision`, CPUs with bf16 units) the decoder is exported with its one stride-1
transposed convolution computed as the equivalent convolution (`as_plain_convolutions`):
Paddle 3.3.1's oneDNN bf16 transposed convolution fails on it at run time ("std::exception").
The int8 export (opt-in; `ppgan.apps.generator_int8`) takes the same layout: with the stride-1
transposed convolution kept, oneDNN fails on the int8 convolution after it ("could not construct
a memory descriptor using strides"); its decoders end before the sigmoid, applied here, and its
BatchNorms are left to Paddle's quantisation. The fp32 export keeps the network's own layers
but for the folded BatchNorms, so fp32 gives exactly what it always gave.
`tools/benchmark_wav2lip.py` measures both engines, each precision and the photo path.
"""
import copy
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List

import numpy as np
import paddle
import paddle.nn as nn

from ..models import Wav2Lip
from ..models.generators.wav2lip import AUDIO_SPEC, FACE_SPEC, LOWER_FIRST_ROW, SKIP_SPECS
from ..utils.device import place_network, place_of, resolve_device, resolve_precision
from ..utils.onnx_export import to_onnx
from ..utils.static_graph import StaticModel, cached_export, export_layer, has_model_files
from ..utils.video import InputError
from ..utils.weights import load_weights

logger = logging.getLogger(__name__)

ENGINES = ("static", "eager")
# The programs the static engine runs, (file name, method, inputs): the face encoder apart, so
# that a photo's face features are encoded once and decoded against every mel window.
STAGES = (("face_encoder", "encode_face", [FACE_SPEC]),
          ("decoder", "decode", [AUDIO_SPEC, SKIP_SPECS]),
          ("decoder_lower", "decode_lower", [AUDIO_SPEC, SKIP_SPECS]))
# Frames per generator call on a CPU: on the 2-core machines this was tuned on, calls of 8-16
# frames ran faster than larger ones, and small calls hold fewer frames in memory.
# tools/benchmark_wav2lip.py measures the generator in calls of this size (figures: README).
CPU_CHUNK = 16


class GeneratorRunner:
    """mel (B,1,80,16) and faces (B,6,96,96) in, generated faces (B,3,96,96) out, float32."""

    def encode_face(self, faces: np.ndarray) -> List[np.ndarray]:
        """The face encoder's seven outputs: the decoder's skip inputs."""
        raise NotImplementedError

    def decode(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def decode_lower(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        """The faces' rows from LOWER_FIRST_ROW on, (B,3,96-LOWER_FIRST_ROW,96)."""
        raise NotImplementedError

    def prepare(self, lower_only: bool) -> None:
        """Load now what `decode_lower` (or `decode`) will run, not on its first call."""

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return self.decode(mel, self.encode_face(faces))


class EagerGenerator(GeneratorRunner):
    """The network in dygraph, on the device it was placed on (a resolved device name)."""

    def __init__(self, net: Wav2Lip, device: str):
        self.net = net
        self.place = place_of(device)
        net.eval()

    def _tensor(self, array: np.ndarray) -> paddle.Tensor:
        return paddle.to_tensor(array, place=self.place)

    @paddle.no_grad()
    def encode_face(self, faces: np.ndarray) -> List[np.ndarray]:
        return [skip.numpy() for skip in self.net.encode_face(self._tensor(faces))]

    @paddle.no_grad()
    def decode(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        return self.net.decode(self._tensor(mel), [self._tensor(s) for s in skips]).numpy()

    @paddle.no_grad()
    def decode_lower(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        return self.net.decode_lower(self._tensor(mel), [self._tensor(s) for s in skips]).numpy()


class InferenceGenerator(GeneratorRunner):
    """The programs `export_stages` wrote into a folder, each opened on its first use: a run
    that blends only mouths never loads the whole-face decoder, nor the others the lower one."""

    def __init__(self, folder: str, **options: Any):
        self.folder, self.options = folder, options
        self._logits = options.get("precision") == "int8"  # its decoders end before the sigmoid
        self._programs: Dict[str, StaticModel] = {}
        self._program("face_encoder")  # every run needs it: fail early on a broken folder
        # Not in a folder exported before it existed: its rows are then cut out of whole faces.
        self._has_lower_decoder = has_model_files(os.path.join(folder, "decoder_lower"))

    @property
    def precisions(self) -> List[str]:
        """The precisions the programs opened so far run in: the one asked for, or fp32 for a
        program that failed in it on this processor (`StaticModel` falls back)."""
        return sorted({program.precision for program in self._programs.values()})

    def _program(self, stage: str) -> StaticModel:
        if stage not in self._programs:
            self._programs[stage] = StaticModel(os.path.join(self.folder, stage), **self.options)
        return self._programs[stage]

    def encode_face(self, faces: np.ndarray) -> List[np.ndarray]:
        return self._program("face_encoder")(faces)

    def decode(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        return self._faces(self._program("decoder")(mel, *skips)[0])

    def decode_lower(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        if not self._has_lower_decoder:
            return self.decode(mel, skips)[:, :, LOWER_FIRST_ROW:]
        return self._faces(self._program("decoder_lower")(mel, *skips)[0])

    def _faces(self, output: np.ndarray) -> np.ndarray:
        if not self._logits:
            return output
        from scipy.special import expit  # late: only int8 programs end before the sigmoid
        return expit(output, out=output)

    def prepare(self, lower_only: bool) -> None:
        self._program("decoder_lower" if lower_only and self._has_lower_decoder else "decoder")


def export_stages(net: Wav2Lip, folder: str, precision: str = "fp32") -> List[str]:
    """Write the generator's stages into `folder` as Paddle Inference models, as the static
    engine runs them in `precision` (`open_stages`); returns the files written."""
    deployed = as_plain_convolutions(net) if precision in ("bf16", "int8") else net
    if precision == "int8":
        from .generator_int8 import export_int8_stages  # late: calibration imports much

        return export_int8_stages(net, deployed, folder, STAGES)
    deployed = with_batchnorm_folded(deployed)
    return [path for stage, method, spec in STAGES
            for path in export_layer(deployed, os.path.join(folder, stage), spec, method)]


def as_plain_convolutions(net: nn.Layer) -> nn.Layer:
    """A copy of `net` in which every stride-1 transposed convolution is the convolution that
    computes the same: over the input padded by k-1-p, with the kernel flipped in space and its
    input and output channels swapped. `net` is left as it is (the reference layout)."""
    copied = copy.deepcopy(net)
    for parent in copied.sublayers(include_self=True):
        for name, layer in parent.named_children():
            if _is_plain_transpose(layer):
                parent._sub_layers[name] = _equivalent_convolution(layer)
    return copied


def with_batchnorm_folded(net: nn.Layer) -> nn.Layer:
    """A copy of `net` in which every BatchNorm2D that follows a biased Conv2D in a Sequential
    (each `ConvBNRelu` block) is folded into the convolution's weights and bias, in float32
    and in the order Paddle Inference's conv2d_bias_bn_onednn_fuse_pass folds it while loading:
    the fp32 program computes the very same values. That pass's arithmetic over the weights
    ran in oneDNN's reference kernels (in bf16, in bf16): 1.0-1.4 s of every start-up on 2
    cores. Eval-mode statistics; `net` is left as it is."""
    copied = copy.deepcopy(net)
    for block in copied.sublayers(include_self=True):
        if not isinstance(block, nn.Sequential):
            continue
        layers = list(block.named_children())
        for (_, conv), (name, norm) in zip(layers, layers[1:]):
            if (isinstance(conv, nn.Conv2D) and conv.bias is not None
                    and isinstance(norm, nn.BatchNorm2D)):
                scale = norm.weight.numpy() / np.sqrt(norm._variance.numpy()
                                                      + np.float32(norm._epsilon))
                conv.weight.set_value(conv.weight.numpy() * scale.reshape(-1, 1, 1, 1))
                conv.bias.set_value(norm.bias.numpy()
                                    + (conv.bias.numpy() - norm._mean.numpy()) * scale)
                block._sub_layers[name] = nn.Identity()
    return copied


def _is_plain_transpose(layer: nn.Layer) -> bool:
    return (isinstance(layer, nn.Conv2DTranspose) and list(layer._stride) == [1, 1]
            and list(layer._dilation) == [1, 1] and layer._groups == 1
            and not layer.output_padding and layer._padding_algorithm == "EXPLICIT"
            and layer._data_format == "NCHW")


def _equivalent_convolution(transposed: nn.Conv2DTranspose) -> nn.Conv2D:
    kernel = transposed.weight.numpy()  # (in, out, kh, kw)
    padding = [k - 1 - p for k, p in zip(transposed._kernel_size, transposed._updated_padding)]
    conv = nn.Conv2D(transposed._in_channels, transposed._out_channels, transposed._kernel_size,
                     padding=padding, bias_attr=None if transposed.bias is not None else False)
    conv.weight.set_value(np.ascontiguousarray(kernel.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]))
    if transposed.bias is not None:
        conv.bias.set_value(transposed.bias.numpy())
    return conv


def export_onnx_stages(net: Wav2Lip, folder: str) -> List[str]:
    """Write the generator's stages into `folder` as ONNX models (`<stage>.onnx`, the inputs and
    outputs named as the Paddle programs'), converted from the Paddle programs, which are not
    kept; returns the files written."""
    os.makedirs(folder, exist_ok=True)
    programs = tempfile.mkdtemp(prefix=".paddle-", dir=folder)
    try:
        export_stages(net, programs)
        return [to_onnx(os.path.join(programs, stage), os.path.join(folder, f"{stage}.onnx"))
                for stage, _, _ in STAGES]
    finally:
        shutil.rmtree(programs, ignore_errors=True)


def open_stages(folder: str, device: str = "cpu", cpu_threads: int = 0, precision: str = "fp32",
                use_onednn: bool = True) -> "InferenceGenerator":
    """The generator `export_stages` wrote into `folder` (the predictor's cache, or
    tools/export_model.py's output), run by Paddle Inference on `device` in a resolved
    `precision` the folder was exported for."""
    return InferenceGenerator(folder, device=device, cpu_threads=cpu_threads,
                              use_onednn=use_onednn, precision=precision)


def load_generator(weights_path: str, engine: str = "static", device: str = "cpu",
                   cpu_threads: int = 0, precision: str = "fp32") -> GeneratorRunner:
    """The generator holding these weights, run by `engine` on `device`. `weights_path` is a
    `.pdparams` file (flat, or a trainer checkpoint) or a folder `export_stages` wrote (run in
    fp32 or fp16: its decoder is the fp32 layout). `precision` (`PRECISIONS`) is the static
    engine's; the eager engine, the reference, runs in fp32."""
    return generator_opener(weights_path, engine, device, cpu_threads, precision)()


def generator_opener(weights_path: str, engine: str = "static", device: str = "cpu",
                     cpu_threads: int = 0, precision: str = "fp32") -> Callable[[], GeneratorRunner]:
    """`load_generator` in two parts. This call does what runs Paddle from Python: the eager
    network, or on the static engine's first use of these weights the network's export (and
    int8's calibration). The function it returns opens the exported programs in Paddle
    Inference, which works in C++ and may run on another thread beside Python-level Paddle
    work; Python-level Paddle work may not (its eager and tracing state is process-wide)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got '{engine}'")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    if os.path.isdir(weights_path):
        if engine != "static":
            raise InputError(f"{weights_path} is an exported model, which only the static "
                             "engine runs: give its .pdparams for the eager engine")
        if precision in ("bf16", "int8"):
            logger.warning("%s is an exported model in the fp32 layout: running it in fp32 "
                           "(give its .pdparams to run in %s)", weights_path, precision)
            precision = "fp32"
        folder = weights_path
    elif engine == "eager":
        runner = EagerGenerator(_loaded_network(weights_path, device), device)
        return lambda: runner
    else:
        # fp16 runs the fp32 program: Paddle Inference converts it on the GPU. The network is
        # built only to export it: a cached export (every run after the first) skips a second
        # of start-up. Named by the programs they hold, so an export made before one was added
        # is not taken.
        layout = f"-{precision}" if precision in ("bf16", "int8") else ""
        folded = "" if precision == "int8" else "-bnfolded"
        name = f"wav2lip-{len(STAGES)}stages{folded}{layout}"
        folder = cached_export(weights_path, name, lambda staging: export_stages(
            _loaded_network(weights_path, device), staging, precision))
    return lambda: open_stages(folder, device, cpu_threads, precision)


def _loaded_network(weights_path: str, device: str) -> Wav2Lip:
    net = Wav2Lip()
    load_weights(net, weights_path)
    place_network(net, device)
    return net
