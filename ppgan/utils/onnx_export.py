"""Converting a Paddle Inference program (`static_graph.export_layer`'s output) to ONNX, for
users of ONNX Runtime or TensorRT. paddle2onnx is an optional dependency (the `onnx` extra)."""
import logging
import os

from .errors import UserError
from .static_graph import find_model_files

logger = logging.getLogger(__name__)

# Opset 13 is the oldest that ONNX Runtime and TensorRT both run fully with these graphs' ops
# and the newest that older TensorRT releases (8.x) accept.
ONNX_OPSET = 13


class MissingOnnxError(UserError, ImportError):
    pass


def to_onnx(path_prefix: str, save_file: str, opset: int = ONNX_OPSET) -> str:
    """Write the program at `path_prefix` as the ONNX model `save_file`; returns its path."""
    try:
        import paddle2onnx
    except ImportError:
        raise MissingOnnxError("ONNX export needs paddle2onnx: pip install "
                               "'ppgan-wav2lip[onnx]' (or paddle2onnx)") from None
    from paddle2onnx.utils import logging as converter_log

    converter_log.log_level = 1  # its INFO lines ("model saved in <staging path>") mislead
    program, params = find_model_files(path_prefix)
    # optimize_tool "None": paddle2onnx's default optimiser (polygraphy) is not a dependency of
    # it, and it pip-installs it at run time when missing; ONNX Runtime optimises on load anyway.
    paddle2onnx.export(program, params, save_file, opset_version=opset,
                       enable_onnx_checker=True, optimize_tool="None")
    if not os.path.isfile(save_file):
        raise RuntimeError(f"paddle2onnx wrote no model for {program}")
    logger.info("converted %s to %s (opset %d)", program, save_file, opset)
    return save_file
