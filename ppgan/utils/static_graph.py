"""Export networks (the Wav2Lip generator, S3FD) as static inference models; run them with
Paddle Inference.

A network saved with `paddle.jit.save` and run through `paddle.inference` with IR optimisation
(which folds BatchNorm into the convolutions, fuses activations and plans memory) runs faster
than eager (dygraph) Paddle; tools/benchmark_wav2lip.py measures by how much.

Paddle 3.x writes the program in the PIR format (`<prefix>.json`); Paddle 2.x, or 3.x with
`FLAGS_enable_pir_api=0`, writes the legacy `<prefix>.pdmodel`. Both keep the weights in
`<prefix>.pdiparams`, and `StaticModel` loads either layout.
"""
import contextlib
import errno
import functools
import logging
import os
import re
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from .atomic import AtomicPath, disk_full_error
from .device import gpu_index, resolve_device
from .errors import UserError, one_line
from .logger import native_output_silenced

logger = logging.getLogger(__name__)

MIN_ROOM_AFTER_EXPORT = 1 << 20  # bytes; see _check_room_left

PIR_PROGRAM_SUFFIX = ".json"
LEGACY_PROGRAM_SUFFIX = ".pdmodel"
PARAMS_SUFFIX = ".pdiparams"
# Everything `paddle.jit.save` may write for one prefix (`.pdiparams.info` only in legacy mode).
_SAVED_SUFFIXES = (PIR_PROGRAM_SUFFIX, LEGACY_PROGRAM_SUFFIX, PARAMS_SUFFIX, ".pdiparams.info")


class ModelFileError(UserError, ValueError):
    """An inference model (program and weights files) that Paddle Inference cannot load."""


def export_layer(net: nn.Layer, path_prefix: str, input_spec: Sequence[InputSpec],
                 method: str = "forward", legacy: bool = False) -> List[str]:
    """Trace `net.<method>` in eval mode with `input_spec` and save it for Paddle Inference.

    Returns the paths written, e.g. [`<prefix>.json`, `<prefix>.pdiparams`] with Paddle 3.x.
    `legacy` writes the legacy `<prefix>.pdmodel` instead, which int8 quantisation reads
    (`ppgan.utils.quantization`); Paddle 3.3.1 cannot trace sigmoid, exp or tanh in it.
    `net` is left as it was: its training flag is restored and its `forward` stays eager.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path_prefix)), exist_ok=True)
    before = _file_stamps(path_prefix)
    was_training = net.training
    net.eval()  # BatchNorm must use its running statistics in the saved graph.
    try:
        # Tracing logs through glog to the terminal: an in-place add (a residual block's) "Paddle
        # static graph(PIR) not support input out tensor for now!!!!!", and a legacy save's
        # static executor "New Executor is Running". A failure still says why: its exception.
        with (paddle.pir_utils.DygraphOldIrGuard() if legacy else contextlib.nullcontext()), \
                native_output_silenced():
            _trace_and_save(getattr(net, method), path_prefix, input_spec)
    finally:
        if was_training:
            net.train()
    after = _file_stamps(path_prefix)
    written = sorted(path for path, stamp in after.items() if before.get(path) != stamp)
    if not any(path.endswith((PIR_PROGRAM_SUFFIX, LEGACY_PROGRAM_SUFFIX)) for path in written):
        raise RuntimeError(f"paddle.jit.save wrote no program file for prefix '{path_prefix}'")
    _warn_about_stale_program(path_prefix, written)
    logger.info("exported %s to %s", type(net).__name__, ", ".join(written))
    return written


def _trace_and_save(method, path_prefix: str, input_spec: Sequence[InputSpec]) -> None:
    # Converting the bound method rather than the Layer keeps `net.forward` eager afterwards
    # (`to_static(layer)` replaces `layer.forward` in place); jit.save still takes the weights
    # from the method's Layer.
    static_forward = paddle.jit.to_static(method, input_spec=list(input_spec), full_graph=True)
    with warnings.catch_warnings():
        # jit.save warns that it is saving a function; that is intended here.
        warnings.filterwarnings("ignore", message=re.escape("What you save is a function"))
        paddle.jit.save(static_forward, path_prefix)


def _file_stamps(path_prefix: str) -> Dict[str, Tuple[int, int]]:
    """(mtime, size) of every file jit.save may write for this prefix, to tell what it wrote."""
    stamps = {}
    for suffix in _SAVED_SUFFIXES:
        path = path_prefix + suffix
        if os.path.isfile(path):
            stat = os.stat(path)
            stamps[path] = (stat.st_mtime_ns, stat.st_size)
    return stamps


def _warn_about_stale_program(path_prefix: str, written: List[str]) -> None:
    # A program of the other format left by an older export would sit beside the new one;
    # find_model_files prefers the PIR json, so a stale json would shadow a fresh pdmodel.
    for suffix in (PIR_PROGRAM_SUFFIX, LEGACY_PROGRAM_SUFFIX):
        path = path_prefix + suffix
        if os.path.isfile(path) and path not in written:
            logger.warning("stale %s from an earlier export is still next to the new model", path)


def find_model_files(path_prefix: str) -> Tuple[str, str]:
    """(program, params) paths for `path_prefix`, preferring the PIR json over a legacy pdmodel."""
    params = path_prefix + PARAMS_SUFFIX
    for suffix in (PIR_PROGRAM_SUFFIX, LEGACY_PROGRAM_SUFFIX):
        program = path_prefix + suffix
        if os.path.isfile(program) and os.path.isfile(params):
            return program, params
    raise FileNotFoundError(
        f"no Paddle inference model at prefix '{path_prefix}': expected "
        f"{PIR_PROGRAM_SUFFIX} or {LEGACY_PROGRAM_SUFFIX} together with {PARAMS_SUFFIX}")


def has_model_files(path_prefix: str) -> bool:
    try:
        find_model_files(path_prefix)
    except FileNotFoundError:
        return False
    return True


def _create_predictor(path_prefix: str, device: str, cpu_threads: int, use_onednn: bool,
                      gpu_memory_mb: int, memory_optim: bool, quiet: bool,
                      precision: str = "fp32",
                      skip_passes: Sequence[str] = ()) -> paddle.inference.Predictor:
    """`precision` is a resolved one (`ppgan.utils.device.resolve_precision`): fp16 only on a
    GPU, bf16 and int8 (a quantised program) only on a CPU. `skip_passes`: graph passes left
    out (ones that fail on a model)."""
    program, params = find_model_files(path_prefix)
    config = paddle.inference.Config(program, params)
    config.switch_ir_optim(True)
    _set_memory_optim(config, program, memory_optim)
    gpu_id = gpu_index(resolve_device(device))
    if gpu_id is not None:
        types = paddle.inference.PrecisionType
        config.enable_use_gpu(gpu_memory_mb, gpu_id,
                              types.Half if precision == "fp16" else types.Float32)
    else:
        # Paddle logs "Hardware support for BFLOAT16 is enabled" through glog as it is asked.
        with native_output_silenced() if quiet else contextlib.nullcontext():
            _configure_cpu(config, cpu_threads, use_onednn, precision)
    for name in skip_passes:
        config.delete_pass(name)
    if quiet:
        config.disable_glog_info()
    logger.info("loading %s on %s in %s", program,
                "gpu:%d" % gpu_id if gpu_id is not None else "cpu", precision)
    # oneDNN's int8 passes report on stderr whatever glog is told (tens of lines per model).
    with native_output_silenced() if quiet and precision == "int8" else contextlib.nullcontext():
        try:
            return paddle.inference.create_predictor(config)
        except (RuntimeError, ValueError) as err:  # Paddle's C++ errors, e.g. a truncated file
            raise ModelFileError(f"cannot load the inference model {program}: {one_line(err)} "
                                 "(delete it, or export it again)") from None


class StaticModel:
    """Any exported model: called with NumPy arrays in input order, returns every output.

    `precision`: "fp32", "fp16" (GPU), "bf16" or "int8" (CPU), as `resolve_precision` gives
    it; int8 runs the quantised operators of a program `ppgan.utils.quantization` wrote. A
    program that fails to open or run in one of the others runs in fp32 from then on, with a
    warning (`self.precision` says which it runs in).
    `input_names` binds the arguments to inputs by name (default: the program's input order).
    `skip_passes` names graph optimisation passes to leave out. `quiet`: what Paddle itself
    writes to the terminal while loading and on the first call (its logs, a debugging print)
    is dropped.
    Not thread-safe: the predictor's input and output buffers are shared between calls.
    """

    def __init__(self, path_prefix: str, device: str = "cpu", cpu_threads: int = 0,
                 use_onednn: bool = True, precision: str = "fp32", gpu_memory_mb: int = 500,
                 memory_optim: bool = True, quiet: bool = True,
                 input_names: Optional[Sequence[str]] = None, skip_passes: Sequence[str] = ()):
        self.path_prefix = path_prefix
        self._device, self._quiet, self._input_names = device, quiet, input_names
        self._create = functools.partial(_create_predictor, path_prefix, device, cpu_threads,
                                         use_onednn, gpu_memory_mb, memory_optim, quiet,
                                         skip_passes=skip_passes)
        try:
            self._open(precision)
        except ModelFileError as err:
            if precision == "fp32":
                raise
            self._fall_back(precision, err)

    def _open(self, precision: str) -> None:
        self._predictor = self._create(precision=precision)
        self.precision = precision
        available = self._predictor.get_input_names()
        missing = set(self._input_names or ()) - set(available)
        if missing:
            raise ValueError(f"model '{self.path_prefix}' lacks inputs {sorted(missing)}: it has {available}")
        self._inputs = [self._predictor.get_input_handle(n) for n in self._input_names or available]
        self._outputs = [self._predictor.get_output_handle(n) for n in self._predictor.get_output_names()]
        self._quiet_first_run = self._quiet

    def _fall_back(self, failed: str, err: Exception) -> None:
        """Opens the program in fp32 after it failed in `failed` (bf16, int8 or fp16): kernels
        of those precisions fail on some processors and not on others (Paddle 3.3.1's bf16
        stride-1 transposed convolution fails with AVX-512 BF16). If fp32 fails too, the
        program is at fault, and `err` is raised."""
        try:
            self._open("fp32")
        except Exception:
            raise err from None
        logger.warning("%s failed in %s on %s (%s): running it in fp32", self.path_prefix, failed,
                       self._device, one_line(err))

    def __call__(self, *arrays: np.ndarray) -> List[np.ndarray]:
        if len(arrays) != len(self._inputs):
            raise ValueError(f"model '{self.path_prefix}' takes {len(self._inputs)} inputs, "
                             f"got {len(arrays)}")
        try:
            return self._run(arrays)
        except (RuntimeError, ValueError) as err:  # Paddle's C++ errors
            if self.precision == "fp32":
                raise
            self._fall_back(self.precision, err)
            return self._run(arrays)

    def _run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        for handle, array in zip(self._inputs, arrays):
            handle.reshape(list(array.shape))
            # copy_from_cpu needs a C-contiguous float32 buffer.
            handle.copy_from_cpu(np.ascontiguousarray(array, dtype=np.float32))
        if self._quiet_first_run:
            # Paddle 3.3.1 prints "ReduceMeanCheckIfOneDNNSupport" on stdout as it first picks
            # the kernels of a program with a mean (the enhancers'): a command's stdout is its
            # result, not Paddle's.
            with native_output_silenced(1):
                self._predictor.run()
            self._quiet_first_run = False
        else:
            self._predictor.run()
        return [handle.copy_to_cpu() for handle in self._outputs]


def cached_export(weights_path: str, name: str, export: Callable[[str], Any]) -> str:
    """The folder into which `export(folder)` wrote the static models of a network holding
    `weights_path`; `export` runs on first use only.

    Cached under WEIGHTS_HOME/static, keyed by the weights file's content and the Paddle
    version, so each weights file is traced once per machine. The caller knows the network;
    this module knows only where its exports go.
    """
    from .download import content_digest, get_weights_home  # late: not needed to run a model

    digest = content_digest(weights_path)[:16]
    folder = os.path.join(get_weights_home(), "static", f"{name}-{digest}-paddle{paddle.__version__}")
    if os.path.isdir(folder):  # folders appear complete (renamed into place) or not at all
        return folder
    logger.info("exporting %s for Paddle Inference (once per weights file)", name)
    # Export beside the final folder and rename it into place: a concurrent run or an
    # interrupted export never leaves a half-written model where the cache looks.
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = AtomicPath(folder, directory=True)
    try:
        export(staging.temp)
        _check_room_left(folder)
        os.rename(staging.temp, folder)
    except OSError:
        if not os.path.isdir(folder):  # a concurrent export that won the race is fine
            raise
    finally:
        staging.discard()
    return folder


def _check_room_left(folder: str) -> None:
    """paddle.jit.save does not report a failed write: on a full disk it leaves truncated files
    that every later run would load and fail on. A disk with (nearly) nothing left after an
    export is therefore taken to be one that filled up during it."""
    stats = os.statvfs(os.path.dirname(folder))
    if stats.f_bavail * stats.f_frsize < MIN_ROOM_AFTER_EXPORT:
        raise disk_full_error(errno.ENOSPC, folder)


def _set_memory_optim(config: paddle.inference.Config, program: str, memory_optim: bool) -> None:
    # Paddle 3.x's predictor fails on PIR (json) programs with enable_memory_optim ("Not find
    # predictor_id 0 and pass_name memory_optimize_pass", PaddlePaddle/Paddle#75496, still so
    # in 3.3.1). PIR's own inplace pass, which IR optimisation runs anyway, reuses buffers.
    if not memory_optim:
        return
    if program.endswith(PIR_PROGRAM_SUFFIX):
        logger.debug("memory_optim skipped for PIR program %s (Paddle issue #75496)", program)
    else:
        config.enable_memory_optim()


def _configure_cpu(config: paddle.inference.Config, cpu_threads: int, use_onednn: bool,
                   precision: str = "fp32") -> None:
    config.disable_gpu()
    # Paddle's default is one math thread, which leaves the other cores idle.
    config.set_cpu_math_library_num_threads(cpu_threads if cpu_threads > 0 else os.cpu_count() or 1)
    # paddle.inference.Config turns oneDNN on by default, so off must be explicit.
    if use_onednn or precision != "fp32":  # the bf16 and int8 kernels are oneDNN's
        config.enable_onednn()
        if precision == "bf16":
            config.enable_onednn_bfloat16()
        elif precision == "int8":
            # The convolutions alone: with the other quantised operators too (pooling,
            # concatenation) the face encoder ran at 0.86 of its speed, as each hands
            # int8 on to an operator that takes fp32.
            config.enable_onednn_int8({"conv2d"})
    else:
        config.disable_onednn()
