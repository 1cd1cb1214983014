"""The generator's stages in int8 (`--precision int8`): exported, calibrated, quantised.

Each stage is exported in the legacy format and quantised by `ppgan.utils.quantization`,
calibrated on synthetic talking faces (`ppgan.data_preparation.synthetic`: drawn faces whose
mouths follow their own speech-like audio), which is deterministic, so an export is the same on
every machine. Each face is its own reference, as at inference. The decoder programs end before
the output sigmoid, which Paddle 3.3.1 cannot trace in the legacy format: `InferenceGenerator`
applies it to their outputs.
"""
import copy
from typing import Dict, List, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn
from tqdm import tqdm

from ..data_preparation.synthetic import FPS, SyntheticClip, draw_face, make_clip
from ..models import Wav2Lip
from ..models.generators.wav2lip import frame_faces
from ..utils.audio import mel_window, melspectrogram
from ..utils.quantization import quantize_layer

# Calibration: one batch per clip, each clip a different face and voice. With random weights,
# 4 batches of 8 frames drew frames 1.2 times as far from fp32's as 4 of 16; the static executor
# that calibrates is slow (about 20 s a decoder for 4 of 16).
CALIBRATION_CLIPS = 4
CALIBRATION_FRAMES = 16
_FACE_MARGIN = 0.15  # background around the drawn face, as a detector's padded box has


def export_int8_stages(net: Wav2Lip, deployed: Wav2Lip, folder: str,
                       stages: Sequence[Tuple[str, str, list]]) -> List[str]:
    """Write `stages` ((file name, method, inputs), as `generator_runner.STAGES`) of `deployed`
    (`net` in the layout it is exported in) into `folder` as int8 programs, calibrated on
    `net`'s face encodings; returns the files written."""
    batches = calibration_batches(net)
    deployed = without_output_sigmoid(deployed)
    written = []
    for stage, method, spec in tqdm(stages, desc="int8 calibration", unit="program"):
        names = [s.name for s in paddle.utils.flatten(spec)]
        feeds = [{name: batch[name] for name in names} for batch in batches]
        written += quantize_layer(deployed, folder, stage, spec, method, feeds)
    return written


def without_output_sigmoid(net: Wav2Lip) -> Wav2Lip:
    """A copy of `net` whose decoder ends before its sigmoid: it draws logits."""
    copied = copy.deepcopy(net)
    last = str(len(copied.output_block) - 1)
    if not isinstance(copied.output_block[int(last)], nn.Sigmoid):
        raise TypeError("the generator's output block does not end with a sigmoid")
    copied.output_block._sub_layers[last] = nn.Identity()
    return copied


@paddle.no_grad()
def calibration_batches(net: Wav2Lip) -> List[Dict[str, np.ndarray]]:
    """Feed dicts of every stage's inputs ("face", "audio", "skip0".."skip6"), one per clip;
    the skips are `net`'s own (eager, fp32) face encodings of the faces."""
    was_training = net.training
    net.eval()
    batches = []
    for seed in range(CALIBRATION_CLIPS):
        clip = make_clip(CALIBRATION_FRAMES / FPS + 0.2, seed)
        frames = [_drawn_face(clip, opening) for opening in clip.openings[:CALIBRATION_FRAMES]]
        boxes = np.array([(0, 0, f.shape[1], f.shape[0]) for f in frames])
        faces = frame_faces(frames, boxes)
        mel = melspectrogram(clip.audio)
        audio = np.stack([mel_window(mel, i, clip.fps) for i in range(len(frames))])[:, None]
        skips = net.encode_face(paddle.to_tensor(faces))
        batches.append({"face": faces, "audio": audio.astype(np.float32),
                        **{f"skip{i}": skip.numpy() for i, skip in enumerate(skips)}})
    if was_training:
        net.train()
    return batches


def _drawn_face(clip: SyntheticClip, opening: float, size: int = 128) -> np.ndarray:
    margin = int(size * _FACE_MARGIN)
    canvas = np.full((size + 2 * margin, size + 2 * margin, 3), clip.style.background, np.uint8)
    draw_face(canvas, margin, margin, size, opening, clip.style)
    return canvas
