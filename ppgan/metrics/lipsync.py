"""LSE-D / LSE-C lip-sync scores, computed as syncnet_python (and Wav2Lip's scores_LSE) does.

Pipeline of the reference ``SyncNetInstance.evaluate`` (Wav2Lip's ``_calc_scores`` variant, which
resizes every frame to 224x224 so that LRS2-style face crops of any size can be scored):

1. frames: ``ffmpeg -y -i VIDEO -threads 1 -f image2 DIR/%06d.jpg`` then ``cv2.imread`` of each
   JPEG (a lossy round trip at ffmpeg's default mjpeg quality, which moves the scores noticeably,
   so the ``compatible`` decoder reproduces it); audio:
   ``ffmpeg -y -i VIDEO -async 1 -ac 1 -vn -acodec pcm_s16le -ar 16000 DIR/audio.wav`` read as
   int16 by ``scipy.io.wavfile.read``;
2. MFCC: ``python_speech_features.mfcc(audio, rate)`` with its defaults (13 coefficients,
   25 ms windows every 10 ms: 100 per second, 4 per video frame);
3. windows: ``min(frames, samples // 640) - 5`` of them; window i is frames i..i+4 (raw BGR
   values 0..255, NCDHW) and MFCC columns 4i..4i+19;
4. ``calc_pdist``: for each window, the Euclidean distances (torch's ``pairwise_distance``, which
   adds eps=1e-6 to the difference) between its video embedding and the audio embeddings of
   windows i-15..i+15, zero vectors standing in beyond the ends;
5. ``mdist`` = mean over windows per offset; LSE-D = min(mdist), LSE-C = median(mdist) - LSE-D,
   AV offset = vshift - argmin.
"""
import glob
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import paddle
from scipy import signal
from scipy.io import wavfile

from ..utils.errors import UserError
from ..utils.ffmpeg_tools import FFmpegError, run_ffmpeg
from .syncnet_eval import SyncNetV2

logger = logging.getLogger(__name__)

__all__ = [
    "DECODERS", "LipSyncScorer", "SyncScores", "TooShortError", "AVClip",
    "calc_pdist", "compute_mfcc", "embed_windows", "load_compatible", "load_direct",
    "num_windows", "scores_from_dists",
]

VSHIFT = 15
BATCH_SIZE = 20
FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
FRAMES_PER_WINDOW = 5
MFCC_PER_FRAME = 4  # 100 MFCC frames per second over 25 video frames per second
MFCC_WINDOW = 20
FACE_SIZE = 224
PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance's default
DECODERS = ("compatible", "direct")


class TooShortError(UserError, ValueError):
    """The clip has too few frames (or too little audio) for a single SyncNet window."""


@dataclass
class AVClip:
    """Decoded input of the scorer: BGR frames (T, 224, 224, 3) uint8 and mono int16 audio."""

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int


@dataclass
class SyncScores:
    """The reference's outputs for one clip; ``dists`` is (windows, 2 * vshift + 1)."""

    lse_d: float
    lse_c: float
    offset: int
    dists: np.ndarray = field(repr=False)
    mdist: np.ndarray = field(repr=False)
    framewise_conf: np.ndarray = field(repr=False)

    @property
    def num_windows(self) -> int:
        return int(self.dists.shape[0])


# -- the computation ---------------------------------------------------------------------------
def compute_mfcc(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(13, T) float32 MFCC exactly as the reference: python_speech_features' defaults."""
    import python_speech_features  # a declared dependency; imported here to keep imports light

    # The reference passes the int16 samples unscaled; the scale only shifts the log energies.
    features = python_speech_features.mfcc(audio, sample_rate)
    return np.ascontiguousarray(features.T, dtype=np.float32)


def num_windows(num_frames: int, num_samples: int) -> int:
    """``lastframe`` of the reference: one window fewer than would fit (kept for equal scores)."""
    return min(num_frames, num_samples // SAMPLES_PER_FRAME) - FRAMES_PER_WINDOW


def _lip_batch(frames: np.ndarray, starts: Sequence[int]) -> np.ndarray:
    # (B, 5, H, W, 3) -> (B, 3, 5, H, W), raw 0..255 values as the reference feeds them.
    clips = np.stack([frames[s:s + FRAMES_PER_WINDOW] for s in starts]).astype(np.float32)
    return np.ascontiguousarray(clips.transpose(0, 4, 1, 2, 3))


def _audio_batch(mfcc: np.ndarray, starts: Sequence[int]) -> np.ndarray:
    windows = [mfcc[:, s * MFCC_PER_FRAME:s * MFCC_PER_FRAME + MFCC_WINDOW] for s in starts]
    return np.stack(windows)[:, None].astype(np.float32)


def _batches(count: int, batch_size: int) -> Iterator[range]:
    for start in range(0, count, batch_size):
        yield range(start, min(count, start + batch_size))


def embed_windows(net: SyncNetV2, frames: np.ndarray, mfcc: np.ndarray, count: int,
                  batch_size: int = BATCH_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """(video, audio) embeddings of the first ``count`` windows, each (count, 1024) float32."""
    lip_feats, aud_feats = [], []
    with paddle.no_grad():
        for starts in _batches(count, batch_size):
            lip = net.forward_lip(paddle.to_tensor(_lip_batch(frames, starts)))
            aud = net.forward_aud(paddle.to_tensor(_audio_batch(mfcc, starts)))
            lip_feats.append(lip.numpy())
            aud_feats.append(aud.numpy())
    return np.concatenate(lip_feats), np.concatenate(aud_feats)


def calc_pdist(feat1: np.ndarray, feat2: np.ndarray, vshift: int = VSHIFT,
               chunk: int = 256) -> np.ndarray:
    """dists[i, j] = |feat1[i] - feat2[i + j - vshift] + eps|, zeros outside feat2 (float32)."""
    width = 2 * vshift + 1
    padded = np.pad(feat2, ((vshift, vshift), (0, 0)))
    offsets = np.arange(width)
    rows = []
    for start in range(0, len(feat1), chunk):  # bounded memory: chunk x width x 1024 floats
        index = np.arange(start, min(start + chunk, len(feat1)))
        diff = feat1[index, None, :] - padded[index[:, None] + offsets] + np.float32(PAIRWISE_EPS)
        rows.append(np.sqrt(np.square(diff, dtype=np.float32).sum(-1, dtype=np.float32)))
    return np.concatenate(rows).astype(np.float32)


def _lower_median(values: np.ndarray) -> np.float32:
    # torch.median returns the lower of the two middle values for an even count.
    return np.sort(values)[(len(values) - 1) // 2]


def scores_from_dists(dists: np.ndarray, vshift: int = VSHIFT) -> SyncScores:
    mdist = dists.mean(axis=0, dtype=np.float32)
    min_index = int(np.argmin(mdist))
    minval = mdist[min_index]
    median = _lower_median(mdist)
    # Per-window confidence at the chosen offset, median-filtered, as the reference logs it.
    framewise = signal.medfilt((median - dists[:, min_index]).astype(np.float64), kernel_size=9)
    return SyncScores(lse_d=float(minval), lse_c=float(median - minval), offset=vshift - min_index,
                      dists=dists, mdist=mdist, framewise_conf=framewise)


def score_clip(net: SyncNetV2, clip: AVClip, vshift: int = VSHIFT,
               batch_size: int = BATCH_SIZE, name: str = "clip") -> SyncScores:
    """LSE-D / LSE-C / offset of decoded frames and audio."""
    count = num_windows(len(clip.frames), len(clip.audio))
    if count <= 0:
        raise TooShortError(
            f"{name}: too short to score ({len(clip.frames)} frames, "
            f"{len(clip.audio) / clip.sample_rate:.2f} s of audio; SyncNet needs at least "
            f"{FRAMES_PER_WINDOW + 1} frames of both)")
    if len(clip.audio) / clip.sample_rate != len(clip.frames) / FPS:
        logger.debug("%s: audio %.3f s and video %.3f s differ", name,
                     len(clip.audio) / clip.sample_rate, len(clip.frames) / FPS)
    mfcc = compute_mfcc(clip.audio, clip.sample_rate)
    lip_feats, aud_feats = embed_windows(net, clip.frames, mfcc, count, batch_size)
    return scores_from_dists(calc_pdist(lip_feats, aud_feats, vshift), vshift)


# -- decoding ----------------------------------------------------------------------------------
def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    # The reference's hard-coded cv2.resize (bilinear); a no-op on 224x224 crops.
    return cv2.resize(frame, (size, size))


def _stack_frames(frames: List[np.ndarray], video: str) -> np.ndarray:
    if not frames:
        raise TooShortError(f"{video}: no video frames could be decoded")
    return np.stack(frames)


def _read_wav_int16(path: str, video: str) -> Tuple[np.ndarray, int]:
    if not os.path.isfile(path):
        raise TooShortError(f"{video}: has no audio stream")
    rate, audio = wavfile.read(path)
    if audio.ndim != 1 or audio.size == 0:
        raise TooShortError(f"{video}: decoded audio is empty")
    return audio, rate


def extract_compatible(video: str, workdir: str) -> Tuple[List[str], str]:
    """The reference's two ffmpeg commands: sorted JPEG paths and the WAV path in ``workdir``."""
    run_ffmpeg(["-y", "-i", video, "-threads", "1", "-f", "image2",
                os.path.join(workdir, "%06d.jpg")])
    wav = os.path.join(workdir, "audio.wav")
    try:
        run_ffmpeg(["-y", "-i", video, "-async", "1", "-ac", "1", "-vn", "-acodec", "pcm_s16le",
                    "-ar", str(SAMPLE_RATE), wav])
    except FFmpegError as err:
        if not err.no_stream:
            raise
        # No audio stream: reported as too short below, like an empty track.
    return sorted(glob.glob(os.path.join(workdir, "*.jpg"))), wav


def load_compatible(video: str, tmp_dir: Optional[str] = None, size: int = FACE_SIZE) -> AVClip:
    """Frames and audio through the reference's exact path (JPEG round trip, int16 WAV), via a
    private folder in `tmp_dir` (default: the system's) that is always removed."""
    with tempfile.TemporaryDirectory(prefix="lse-", dir=tmp_dir) as workdir:
        jpgs, wav = extract_compatible(video, workdir)
        frames = _stack_frames([_resize(cv2.imread(p), size) for p in jpgs], video)
        audio, rate = _read_wav_int16(wav, video)
        return AVClip(frames, audio, rate)


def _decode_audio_direct(video: str) -> np.ndarray:
    try:
        pcm = run_ffmpeg(["-i", video, "-vn", "-ac", "1", "-ar", SAMPLE_RATE, "-acodec", "pcm_s16le",
                          "-f", "s16le", "pipe:1"])
    except FFmpegError as err:
        if err.no_stream:
            return np.zeros(0, np.int16)
        raise
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


def load_direct(video: str, size: int = FACE_SIZE) -> AVClip:
    """Frames decoded straight to BGR (no JPEG) and audio piped from ffmpeg: faster, but NOT
    comparable with published numbers (the JPEG round trip moves LSE-D noticeably)."""
    capture = cv2.VideoCapture(video)
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(_resize(frame, size))
    finally:
        capture.release()
    audio = _decode_audio_direct(video)
    if audio.size == 0:
        raise TooShortError(f"{video}: has no audio stream")
    return AVClip(_stack_frames(frames, video), audio, SAMPLE_RATE)


class LipSyncScorer:
    """Scores face-cropped clips (LRS2-style: the whole frame resized to 224x224).

    ``decode``: "compatible" (the reference's JPEG/WAV path, comparable with published numbers)
    or "direct" (no temporary files, not comparable). ``tmp_dir``: where the compatible path's
    per-clip folders go (a private temporary folder by default, always cleaned up).
    """

    def __init__(self, net: SyncNetV2, vshift: int = VSHIFT, batch_size: int = BATCH_SIZE,
                 decode: str = "compatible", tmp_dir: Optional[str] = None):
        if decode not in DECODERS:
            raise ValueError(f"decode must be one of {DECODERS}, got {decode!r}")
        if vshift < 0 or batch_size < 1:
            raise ValueError("vshift must be >= 0 and batch_size >= 1")
        self.net = net
        self.vshift = vshift
        self.batch_size = batch_size
        self.decode = decode
        self.tmp_dir = tmp_dir

    def load(self, video: str) -> AVClip:
        if not os.path.isfile(video):
            raise FileNotFoundError(f"video not found: {video}")
        if self.decode == "direct":
            return load_direct(video)
        return load_compatible(video, self.tmp_dir)

    def score_clip(self, clip: AVClip, name: str = "clip") -> SyncScores:
        return score_clip(self.net, clip, self.vshift, self.batch_size, name)

    def score(self, video: str) -> SyncScores:
        scores = self.score_clip(self.load(video), video)
        logger.info("%s: LSE-D %.3f LSE-C %.3f offset %d (%d windows)", video, scores.lse_d,
                    scores.lse_c, scores.offset, scores.num_windows)
        return scores
