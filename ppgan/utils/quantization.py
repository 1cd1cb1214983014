"""Post-training int8 quantisation of a static inference model, for oneDNN's int8 kernels.

Paddle's `PostTrainingQuantization` runs a legacy-format program (`export_layer(...,
legacy=True)`) on calibration batches, records each quantised operator's input range and saves
the program with those scales; Paddle Inference with `enable_onednn_int8` (precision "int8" in
`ppgan.utils.static_graph`) then runs those operators in int8. Paddle 3.3.1 quantises only
legacy programs: its PIR path fails on a dynamic batch size.
"""
import logging
import os
import tempfile
from typing import Callable, Dict, Iterator, List, Sequence

import numpy as np
import paddle

from .logger import native_output_silenced
from .static_graph import LEGACY_PROGRAM_SUFFIX, PARAMS_SUFFIX, export_layer

logger = logging.getLogger(__name__)

# The operators quantised: oneDNN has no int8 transposed convolution, and Paddle Inference runs
# only the convolutions in int8 (`ppgan.utils.static_graph`).
QUANTIZED_OPS = ("conv2d", "depthwise_conv2d")

Batches = Callable[[], Iterator[Dict[str, np.ndarray]]]


def quantize_layer(net: paddle.nn.Layer, folder: str, name: str, input_spec: Sequence,
                   method: str, feeds: Sequence[Dict[str, np.ndarray]]) -> List[str]:
    """Write `folder`/`name`.pdmodel/.pdiparams: `net.<method>` traced in the legacy format
    (into a temporary folder inside `folder`) and quantised on `feeds`; returns the files."""
    with tempfile.TemporaryDirectory(prefix=".fp32-", dir=folder) as fp32:
        export_layer(net, os.path.join(fp32, name), input_spec, method, legacy=True)
        quantize_program(os.path.join(fp32, name), os.path.join(folder, name),
                         lambda: iter(feeds), len(feeds))
    return [os.path.join(folder, name + suffix) for suffix in (LEGACY_PROGRAM_SUFFIX, PARAMS_SUFFIX)]


def quantize_program(source_prefix: str, target_prefix: str, batches: Batches, num_batches: int,
                     op_types: Sequence[str] = QUANTIZED_OPS) -> None:
    """Write `target_prefix`.pdmodel/.pdiparams: the legacy program at `source_prefix` with int8
    scales for its `op_types`, calibrated on `num_batches` feed dicts (input name -> array)
    from `batches()`. The scales are the largest magnitudes seen ("abs_max"): no activation in
    the calibration data is clipped. (On the generator with random weights, "hist", "avg" and
    "mse" drew frames 1.03, 1.2 and 2 times as far from fp32's, and keeping the first and last
    convolutions in fp32 brought them 3 % closer.) Paddle is in static mode during the call: no
    other thread may run eager Paddle meanwhile."""
    from paddle.static.quantization import PostTrainingQuantization  # late: a large import

    paddle.enable_static()
    try:
        # Its own log lines and progress bars go to stderr, three per program: the caller
        # reports progress instead.
        with paddle.pir_utils.OldIrGuard(), paddle.static.scope_guard(paddle.static.Scope()), \
                native_output_silenced():
            quantizer = PostTrainingQuantization(
                executor=paddle.static.Executor(paddle.CPUPlace()),
                model_dir=os.path.dirname(source_prefix) or ".",
                model_filename=os.path.basename(source_prefix) + LEGACY_PROGRAM_SUFFIX,
                params_filename=os.path.basename(source_prefix) + PARAMS_SUFFIX,
                data_loader=batches, batch_nums=num_batches, algo="abs_max",
                quantizable_op_type=list(op_types), onnx_format=False)
            quantizer.quantize()
            quantizer.save_quantized_model(
                os.path.dirname(target_prefix) or ".",
                model_filename=os.path.basename(target_prefix) + LEGACY_PROGRAM_SUFFIX,
                params_filename=os.path.basename(target_prefix) + PARAMS_SUFFIX)
    finally:
        paddle.disable_static()
    logger.info("quantised %s to int8 (%d calibration batches)", target_prefix, num_batches)
