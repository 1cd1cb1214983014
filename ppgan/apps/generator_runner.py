"""Runs the Wav2Lip generator on NumPy batches, through Paddle Inference (fast) or eagerly.

The static path exports the generator once per weights file (cached under WEIGHTS_HOME/static,
keyed by the file's content and the Paddle version) and runs it with Paddle Inference's fusion
passes, several times faster than eager mode on a CPU. The eager path is the reference.
"""
import hashlib
import logging
import os
import shutil
import tempfile
from typing import Callable, Optional

import numpy as np
import paddle

from ..models import Wav2Lip
from ..utils.download import get_weights_home
from ..utils.static_graph import create_inference_predictor, export_generator, find_model_files
from ..utils.weights import load_weights

logger = logging.getLogger(__name__)

GeneratorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
ENGINES = ("static", "eager")


def default_device(cpu: bool = False) -> str:
    """'gpu' when this Paddle build has CUDA and the user did not ask for the CPU."""
    return "gpu" if paddle.is_compiled_with_cuda() and not cpu else "cpu"


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _eager(net: Wav2Lip) -> GeneratorFn:
    net.eval()

    def run(mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return net(paddle.to_tensor(mel), paddle.to_tensor(faces)).numpy()

    return run


def _exported(net: Wav2Lip, weights_path: str) -> str:
    """The prefix of the cached static model for these weights, exporting it the first time."""
    folder = os.path.join(get_weights_home(), "static",
                          f"{_file_digest(weights_path)}-paddle{paddle.__version__}")
    prefix = os.path.join(folder, "wav2lip")
    try:
        find_model_files(prefix)
        return prefix
    except FileNotFoundError:
        pass
    logger.info("exporting the generator for Paddle Inference (once per weights file)")
    # Export beside the final folder and rename it into place: a concurrent run or an
    # interrupted export never leaves a half-written model where the cache looks.
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=os.path.dirname(folder))
    try:
        export_generator(net, os.path.join(staging, "wav2lip"))
        os.rename(staging, folder)
    except OSError:
        if not os.path.isdir(folder):  # a concurrent export that won the race is fine
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prefix


def load_generator(weights_path: str, engine: str = "static", device: str = "cpu",
                   cpu_threads: int = 0) -> GeneratorFn:
    """A function (mel (B,1,80,16), faces (B,6,96,96)) -> faces (B,3,96,96) for these weights."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got '{engine}'")
    net = Wav2Lip()
    load_weights(net, weights_path)
    if engine == "eager":
        return _eager(net)
    return create_inference_predictor(_exported(net, weights_path), device=device,
                                      cpu_threads=cpu_threads)
