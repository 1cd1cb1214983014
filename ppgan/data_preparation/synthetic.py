"""Synthetic talking faces whose mouths follow their own audio: data for tests and smoke tests.

Every clip gets its own speech-like sound (voiced harmonics and noise under a random syllable
envelope: syllable lengths, loudness and pauses differ per clip) and a drawn face (skin ellipse,
hair, eyes, brows, nose, lips) whose mouth opening in each 25 fps frame is the audio loudness
during that frame. Audio-visual sync is therefore learnable, and off-sync windows are wrong in a
way a SyncNet can see. Everything is deterministic in the seed.

Two outputs:

- the preprocessed LRS2 layout that `Wav2LipDataset` reads, with filelists::

      python tools/make_synthetic_data.py --out_dir data/synthetic --num_dirs 2 --clips_per_dir 4

  -> `data/synthetic/synth00/00000/{0..N}.jpg + audio.wav`, ... and
  `data/synthetic/filelists/{train,val,test}.txt` (dataroot data/synthetic,
  filelists_path data/synthetic/filelists);

- raw videos (H.264 + AAC mp4) for `tools/preprocess_lrs2.py`, the face moving slowly inside a
  larger frame, at any frame rate::

      python tools/make_synthetic_data.py --out_dir data/synthetic_raw --raw_videos --fps 25 30

From Python: `make_synthetic_dataset(out_dir, ...)` and `make_raw_videos(out_dir, ...)`.
"""
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..datasets.wav2lip_dataset import AUDIO_NAME
from ..utils.atomic import atomic_path
from ..utils.audio import write_wav
from ..utils.video import VideoWriter
from .lrs2 import write_filelists

SAMPLE_RATE = 16000
FPS = 25.0
Color = Tuple[int, int, int]


# ---------------------------------------------------------------------------------------- audio
def syllable_envelope(seconds: float, rng: np.random.Generator,
                      sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-sample loudness in [0, 1]: syllables of random length and loudness, random pauses."""
    count = int(round(seconds * sample_rate))
    envelope = np.zeros(count, dtype=np.float64)
    time = rng.uniform(0.05, 0.3)
    while time < seconds:
        length = rng.uniform(0.08, 0.32)
        begin, end = int(time * sample_rate), min(count, int((time + length) * sample_rate))
        if end > begin:
            # A raised-cosine bump: smooth onsets, as a spoken syllable's loudness.
            envelope[begin:end] = rng.uniform(0.35, 1.0) * np.sin(np.linspace(0, np.pi, end - begin)) ** 2
        # Mostly short gaps between syllables, sometimes a pause between "words".
        gap = rng.uniform(0.3, 0.8) if rng.random() < 0.15 else rng.uniform(0.04, 0.25)
        time += length + gap
    return envelope


def speech_audio(envelope: np.ndarray, rng: np.random.Generator,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Broad-band, speech-like float32 samples (peak 0.6) whose loudness is `envelope`."""
    t = np.arange(len(envelope)) / sample_rate
    f0 = rng.uniform(95, 230) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t
                                                   + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tilt = rng.uniform(0.7, 1.3)  # spectral slope: a different "voice" per clip
    harmonics = int(7000 // (f0.max()))
    voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k ** tilt
                 for k in range(1, harmonics + 1))
    voiced /= np.abs(voiced).max() + 1e-9
    noise = 0.15 * rng.standard_normal(len(envelope))
    samples = envelope * (voiced + noise)
    samples = 0.6 * samples / (np.abs(samples).max() + 1e-9)
    # A faint floor, as a room: silence is not digital zero.
    samples += 0.002 * rng.standard_normal(len(samples))
    return samples.astype(np.float32)


def mouth_openings(envelope: np.ndarray, num_frames: int, fps: float = FPS,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mouth opening in [0, 1] for each video frame: the mean loudness during that frame."""
    openings = np.zeros(num_frames)
    for frame in range(num_frames):
        begin = int(round(frame * sample_rate / fps))
        end = int(round((frame + 1) * sample_rate / fps))
        if end > begin and begin < len(envelope):
            openings[frame] = envelope[begin:end].mean()
    return np.clip(openings, 0.0, 1.0)


# ---------------------------------------------------------------------------------------- faces
@dataclass(frozen=True)
class FaceStyle:
    """What stays the same over one clip: colours and the face's proportions."""

    background: Color
    skin: Color
    hair: Color
    lips: Color
    eye_gap: float  # eye distance from the centre, as a fraction of the face size
    mouth_width: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> "FaceStyle":
        def color(low: Sequence[int], high: Sequence[int]) -> Color:
            return tuple(int(rng.integers(lo, hi + 1)) for lo, hi in zip(low, high))

        darkness = rng.uniform(15, 110)  # hair: black to brown, BGR
        # Backgrounds darker than any skin tone: MTCNN loses faces on skin-coloured backdrops.
        return cls(background=color((20, 20, 20), (120, 120, 120)),
                   skin=color((100, 140, 170), (190, 210, 240)),  # BGR skin tones
                   hair=(int(darkness * 0.55), int(darkness * 0.75), int(darkness)),
                   lips=color((50, 40, 120), (90, 80, 190)),
                   eye_gap=float(rng.uniform(0.14, 0.16)),
                   mouth_width=float(rng.uniform(0.10, 0.14)))


def draw_face(canvas: np.ndarray, x: int, y: int, size: int, opening: float,
              style: FaceStyle) -> None:
    """Draw a frontal face of `size` pixels with its top-left at (x, y) onto `canvas`, in place.

    The mouth sits at 70 % of the height, in the lower half the generator has to fill in; its
    height grows with `opening` (0 closed, 1 wide open). The proportions (eyes at 46 %, as far
    apart as they are above the mouth), ears, shaded skin and eye sockets were tuned until
    MTCNN finds the face in every frame tried (a flat cartoon face was found in about 70 %).
    """
    def at(fx: float, fy: float) -> Tuple[int, int]:
        return int(round(x + fx * size)), int(round(y + fy * size))

    def length(f: float) -> int:
        return max(1, int(round(f * size)))

    def shade(factor: float) -> Color:
        return tuple(int(c * factor) for c in style.skin)

    aa, eye_y, mouth_y = cv2.LINE_AA, 0.46, 0.70
    for side in (-1, 1):  # ears
        cv2.ellipse(canvas, at(0.5 + side * 0.33, 0.48), (length(0.05), length(0.09)), 0, 0, 360,
                    shade(0.8), -1, aa)
    # Skin darkening towards the outline, as a lit rounded face.
    for (cy, ax, ay), factor in zip(((0.52, 0.33, 0.44), (0.50, 0.29, 0.40), (0.48, 0.24, 0.34)),
                                    (0.8, 0.9, 1.0)):
        cv2.ellipse(canvas, at(0.5, cy), (length(ax), length(ay)), 0, 0, 360, shade(factor), -1, aa)
    cv2.ellipse(canvas, at(0.5, 0.2), (length(0.34), length(0.16)), 0, 180, 360, style.hair, -1, aa)
    for side in (-1, 1):
        eye_x = 0.5 + side * style.eye_gap
        cv2.ellipse(canvas, at(eye_x, eye_y), (length(0.09), length(0.055)), 0, 0, 360,
                    shade(0.7), -1, aa)  # socket shadow
        cv2.ellipse(canvas, at(eye_x, eye_y), (length(0.065), length(0.032)), 0, 0, 360,
                    (235, 235, 235), -1, aa)
        cv2.circle(canvas, at(eye_x, eye_y), length(0.028), (50, 35, 25), -1, aa)
        cv2.line(canvas, at(eye_x - 0.08, eye_y - 0.08), at(eye_x + 0.07, eye_y - 0.09),
                 style.hair, length(0.03), aa)  # brow
    nose = np.array([at(0.5, eye_y + 0.03), at(0.45, mouth_y - 0.12), at(0.55, mouth_y - 0.12)],
                    np.int32)
    cv2.fillPoly(canvas, [nose], shade(0.75), aa)
    half_height = length(0.015 + 0.1 * float(np.clip(opening, 0.0, 1.0)))
    cv2.ellipse(canvas, at(0.5, mouth_y), (length(style.mouth_width), max(2, half_height)), 0, 0,
                360, style.lips, -1, aa)
    inner = max(1, half_height - length(0.03))
    cv2.ellipse(canvas, at(0.5, mouth_y), (length(style.mouth_width - 0.02), inner), 0, 0, 360,
                (30, 20, 50), -1, aa)


# ---------------------------------------------------------------------------------------- clips
@dataclass
class SyntheticClip:
    audio: np.ndarray  # float32 at SAMPLE_RATE
    openings: np.ndarray  # one per video frame
    style: FaceStyle
    fps: float
    rng: np.random.Generator  # for per-frame jitter, continues the clip's own stream


def make_clip(seconds: float, seed: Union[int, Sequence[int]], fps: float = FPS) -> SyntheticClip:
    rng = np.random.default_rng(seed)
    envelope = syllable_envelope(seconds, rng)
    audio = speech_audio(envelope, rng)
    openings = mouth_openings(envelope, int(seconds * fps), fps)
    return SyntheticClip(audio, openings, FaceStyle.random(rng), fps, rng)


def write_preprocessed_clip(clip_dir: str, clip: SyntheticClip, img_size: int = 96) -> int:
    """`{i}.jpg` face crops (a slightly random size per clip, a pixel of jitter per frame, as
    detector crops) and `audio.wav`; returns the number of frames. The folder appears complete."""
    os.makedirs(os.path.dirname(os.path.abspath(clip_dir)), exist_ok=True)
    crop = int(clip.rng.integers(img_size, int(img_size * 1.3) + 1))
    margin = 2
    with atomic_path(clip_dir, directory=True) as partial:
        for index, opening in enumerate(clip.openings):
            canvas = np.full((crop + 2 * margin, crop + 2 * margin, 3), clip.style.background, np.uint8)
            dx, dy = (int(v) for v in clip.rng.integers(-1, 2, size=2))
            draw_face(canvas, margin + dx, margin + dy, crop, opening, clip.style)
            cv2.imwrite(os.path.join(partial, f"{index}.jpg"), canvas[margin:-margin, margin:-margin])
        write_wav(os.path.join(partial, AUDIO_NAME), clip.audio)
    return len(clip.openings)


def clip_name(dir_index: int, clip_index: int) -> Tuple[str, str]:
    return f"synth{dir_index:02d}", f"{clip_index:05d}"


def make_synthetic_dataset(out_dir: str, num_dirs: int = 2, clips_per_dir: int = 3,
                           seconds: float = 3.0, img_size: int = 96, seed: int = 0,
                           filelists_dir: Optional[str] = None, val_fraction: float = 0.2,
                           test_fraction: float = 0.0) -> List[str]:
    """Clips in the preprocessed LRS2 layout plus filelists (default `<out_dir>/filelists`);
    returns the `<dir>/<vid>` names."""
    names = []
    for dir_index in range(num_dirs):
        for clip_index in range(clips_per_dir):
            folder, vid = clip_name(dir_index, clip_index)
            clip = make_clip(seconds, [seed, dir_index, clip_index])
            write_preprocessed_clip(os.path.join(out_dir, folder, vid), clip, img_size)
            names.append(f"{folder}/{vid}")
    filelists_dir = filelists_dir or os.path.join(out_dir, "filelists")
    write_filelists(names, filelists_dir, val_fraction, test_fraction, seed)
    return names


# ------------------------------------------------------------------------------------ raw video
def render_frames(clip: SyntheticClip, frame_size: int, faceless: Sequence[int] = ()):
    """Full frames: the face (60 % of the frame) drifting slowly; `faceless` frames show none."""
    face = int(frame_size * 0.6)
    travel = (frame_size - face) / 2 - 2
    phase = clip.rng.uniform(0, 2 * np.pi, size=2)
    hidden = set(faceless)
    for index, opening in enumerate(clip.openings):
        frame = np.full((frame_size, frame_size, 3), clip.style.background, np.uint8)
        if index not in hidden:
            t = index / clip.fps
            x = int(round(travel + 0.5 * travel * np.sin(2 * np.pi * 0.2 * t + phase[0])))
            y = int(round(travel + 0.5 * travel * np.sin(2 * np.pi * 0.15 * t + phase[1])))
            draw_face(frame, x, y, face, opening, clip.style)
        yield frame


def write_raw_video(path: str, clip: SyntheticClip, frame_size: int = 192,
                    faceless: Sequence[int] = ()) -> None:
    """An H.264 + AAC mp4 of the clip at its own frame rate, written as the inference pipeline
    writes its output (`VideoWriter`): the file appears only once complete."""
    with tempfile.TemporaryDirectory(prefix="ppgan-synthetic-") as tmp:
        wav = os.path.join(tmp, "audio.wav")
        write_wav(wav, clip.audio)
        with VideoWriter(path, frame_size, frame_size, clip.fps, wav) as writer:
            for frame in render_frames(clip, frame_size, faceless):
                writer.write(frame)


def make_raw_videos(out_dir: str, num_dirs: int = 1, clips_per_dir: int = 2, seconds: float = 2.0,
                    fps: Union[float, Sequence[float]] = FPS, frame_size: int = 192, seed: int = 0,
                    faceless: Optional[Dict[str, Sequence[int]]] = None) -> Dict[str, str]:
    """`<out_dir>/<dir>/<vid>.mp4` talking-face videos; returns `<dir>/<vid>` -> path.

    `fps` may list one rate per clip (cycled); `faceless` maps a name to frames without a face.
    """
    rates = [float(fps)] if np.isscalar(fps) else [float(r) for r in fps]
    videos = {}
    for dir_index in range(num_dirs):
        os.makedirs(os.path.join(out_dir, clip_name(dir_index, 0)[0]), exist_ok=True)
        for clip_index in range(clips_per_dir):
            folder, vid = clip_name(dir_index, clip_index)
            rate = rates[(dir_index * clips_per_dir + clip_index) % len(rates)]
            clip = make_clip(seconds, [seed, dir_index, clip_index], rate)
            path = os.path.join(out_dir, folder, f"{vid}.mp4")
            write_raw_video(path, clip, frame_size, (faceless or {}).get(f"{folder}/{vid}", ()))
            videos[f"{folder}/{vid}"] = path
    return videos
