"""Runs the Wav2Lip generator on NumPy batches, through Paddle Inference (fast) or eagerly.

The generator runs in two stages, face encoder then audio encoder + decoder, so that a photo's
face features can be computed once and decoded against every mel window. The static path
exports each stage once per weights file (see `cached_export`) and runs it with Paddle
Inference's fusion passes, several times faster than eager mode on a CPU; splitting costs
nothing measurable (24-25 frames/s, as the whole network in one program). The eager path is the
reference.
"""
from typing import List

import numpy as np
import paddle

from ..models import Wav2Lip
from ..models.generators.wav2lip import AUDIO_SPEC, FACE_SPEC, SKIP_SPECS
from ..utils.device import place_network, place_of, resolve_device
from ..utils.static_graph import StaticModel, cached_export, export_layer
from ..utils.weights import load_weights

ENGINES = ("static", "eager")
# Frames per generator call on a CPU: Paddle Inference ran 24-25 frames/s in calls of 8 or 16
# frames, 22 in calls of 32 or 128 (2 cores), and small calls hold fewer frames in memory.
CPU_CHUNK = 16


def export_generator(net: Wav2Lip, path_prefix: str) -> List[str]:
    """Export a Wav2Lip generator with inputs `audio` (B,1,80,16) and `face` (B,6,96,96)."""
    return export_layer(net, path_prefix, [AUDIO_SPEC, FACE_SPEC])


class StaticGenerator(StaticModel):
    """An exported Wav2Lip generator, called like the eager network."""

    def __init__(self, path_prefix: str, **options):
        super().__init__(path_prefix, input_names=(AUDIO_SPEC.name, FACE_SPEC.name), **options)

    def __call__(self, mel: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """mel (B,1,80,16) and faces (B,6,96,96) -> generated faces (B,3,96,96), all float32."""
        if mel.ndim != 4 or faces.ndim != 4 or mel.shape[0] != faces.shape[0]:
            raise ValueError(f"expected mel (B,1,80,16) and faces (B,6,96,96), "
                             f"got {mel.shape} and {faces.shape}")
        return super().__call__(mel, faces)[0]


def create_inference_predictor(path_prefix: str, device: str = "cpu", cpu_threads: int = 0,
                               use_onednn: bool = True, gpu_memory_mb: int = 500,
                               memory_optim: bool = True, quiet: bool = True,
                               fp16: bool = False) -> StaticGenerator:
    """Load the generator saved at `path_prefix` into a Paddle Inference predictor.

    device: "cpu", "gpu" or "gpu:N" (GPU only if this Paddle build has CUDA, else CPU).
    cpu_threads: math library threads on CPU; 0 means all cores.
    use_onednn: use oneDNN kernels and fusion passes on CPU.
    quiet: silence the per-pass glog lines Paddle Inference prints while optimising.
    fp16: half precision on a GPU (not measured here: no GPU); ignored on a CPU, with a warning.
    """
    return StaticGenerator(path_prefix, device=device, cpu_threads=cpu_threads,
                           use_onednn=use_onednn, gpu_memory_mb=gpu_memory_mb,
                           memory_optim=memory_optim, quiet=quiet, fp16=fp16)


class GeneratorRunner:
    """mel (B,1,80,16) and faces (B,6,96,96) in, generated faces (B,3,96,96) out, float32."""

    def encode_face(self, faces: np.ndarray) -> List[np.ndarray]:
        """The face encoder's seven outputs: the decoder's skip inputs."""
        raise NotImplementedError

    def decode(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

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


class InferenceGenerator(GeneratorRunner):
    def __init__(self, encoder: StaticModel, decoder: StaticModel):
        self.encoder, self.decoder = encoder, decoder

    def encode_face(self, faces: np.ndarray) -> List[np.ndarray]:
        return self.encoder(faces)

    def decode(self, mel: np.ndarray, skips: List[np.ndarray]) -> np.ndarray:
        return self.decoder(mel, *skips)[0]


def load_generator(weights_path: str, engine: str = "static", device: str = "cpu",
                   cpu_threads: int = 0, fp16: bool = False) -> GeneratorRunner:
    """The generator holding these weights, run by `engine` on `device`."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got '{engine}'")
    device = resolve_device(device)
    net = Wav2Lip()
    load_weights(net, weights_path)
    place_network(net, device)
    if engine == "eager":
        return EagerGenerator(net, device)
    stages = [("wav2lip_face_encoder", "encode_face", [FACE_SPEC]),
              ("wav2lip_decoder", "decode", [AUDIO_SPEC, SKIP_SPECS])]
    return InferenceGenerator(*(
        StaticModel(cached_export(net, weights_path, name, spec, method), device=device,
                    cpu_threads=cpu_threads, fp16=fp16)
        for name, method, spec in stages))
