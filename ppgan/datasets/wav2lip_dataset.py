"""The LRS2-layout dataset for training the SyncNet expert and the Wav2Lip generators.

Layout (what `tools/preprocess_lrs2.py` and `tools/make_synthetic_data.py` write)::

    <dataroot>/<dir>/<vid>/{0..N}.jpg    face crops, one per 25 fps video frame (gaps allowed)
    <dataroot>/<dir>/<vid>/audio.wav     the clip's sound (16 kHz mono)
    <filelists_path>/{train,val,test}.txt  one `<dir>/<vid>` per line (text after a space ignored)

In a config (PaddleGAN's `dataset.train` / `dataset.test` sections)::

    dataset:
      train:
        name: Wav2LipDataset
        dataroot: data/lrs2_preprocessed
        filelists_path: filelists
        split: train
        mode: wav2lip          # or syncnet, for the expert
        img_size: 96
        syncnet_T: 5
        mel_step_size: 16
        fps: 25
        seed: 0                # null: a random seed, drawn once per dataset object
        samples_per_epoch: null  # null: the number of clips, as the references' __len__
        mel_cache_size: 256    # clips whose mel each worker keeps in memory
        batch_size: 8
        num_workers: 4

Samples (float32 numpy, images BGR in [0, 1], T = syncnet_T, H = W = img_size):

- mode `wav2lip`: `x` (6, T, H, W) = [ground-truth window with rows H//2.. zeroed, a wrong
  window of the same clip]; `indiv_mels` (T, 1, 80, mel_step_size); `mel` (1, 80, mel_step_size);
  `y` (3, T, H, W), the ground truth.
- mode `syncnet`: `face` (3*T, H - H//2, W), the lower halves of T frames stacked on channels
  (frame t in channels 3t..3t+2), in sync with `mel` (label 1) or a wrong window of the same clip
  (label 0), each with probability 1/2; `mel` (1, 80, mel_step_size); `label` (1,).

Sampling follows the references (original Wav2Lip `wav2lip_train.py` / `color_syncnet_train.py`,
PaddleGAN `Wav2LipDataset`), with their flaws fixed:

- Sample `idx` reads clip `(idx + epoch * len(self)) % num_clips`; the start frame, the wrong
  window and the syncnet label come from a NumPy generator seeded by (seed, epoch, idx), so a
  seed gives the same samples whatever the worker count. Call `set_epoch(e)` before each epoch
  for fresh windows (workers are forked per epoch, so the counter reaches them).
- Clips with no more than 3 * syncnet_T frames (the references' rule), without audio.wav, or
  without two complete windows (the wrong one must differ) are skipped at construction (logged). Windows are drawn only among start frames whose
  frames and mel ranges all exist, so there is no retry loop; a clip that fails while reading
  (a corrupt jpg, unreadable audio) is logged and the next clip is used, at most once round the
  dataset, after which a ValueError is raised.
- In syncnet mode the mel's frame always starts a complete window, also for off-sync samples
  (the references require it only when that window is shown), so where the mel comes from does
  not depend on the label.
- Each clip's mel-spectrogram is computed once and kept in an LRU cache (`mel_cache_size`
  clips per worker; about 100 KB for a 4 s clip).
"""
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import paddle

from ..models.generators.wav2lip import FACE_SIZE, MEL_STEP_SIZE, face_input, face_pixels
from ..utils.audio import DEFAULT_MEL, load_wav, melspectrogram
from .builder import DATASETS

logger = logging.getLogger(__name__)

MODES = ("wav2lip", "syncnet")
AUDIO_NAME = "audio.wav"


def mel_start(frame, fps: float, mel_fps: float = DEFAULT_MEL.frames_per_second):
    """The first mel step of `frame`'s audio window: the references' `int(80. * (frame / fps))`.

    Works on ints and on integer arrays (same float operations, so the same truncation).
    """
    if isinstance(frame, np.ndarray):
        return (mel_fps * (frame / float(fps))).astype(np.int64)
    return int(mel_fps * (frame / float(fps)))


def read_filelist(path: str) -> List[str]:
    """`<dir>/<vid>` entries of a filelist; text after the first space and blank lines dropped."""
    if not os.path.isfile(path):
        raise ValueError(f"filelist not found: {path}")
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                entries.append(line.split()[0])
    if not entries:
        raise ValueError(f"filelist is empty: {path}")
    return entries


def list_frame_ids(clip_dir: str) -> np.ndarray:
    """Sorted integer ids of the `<id>.jpg` files in a clip folder (other names ignored)."""
    ids = []
    with os.scandir(clip_dir) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext == ".jpg" and stem.isdigit():
                ids.append(int(stem))
    return np.array(sorted(ids), dtype=np.int64)


def window_starts(frame_ids: np.ndarray, length: int) -> np.ndarray:
    """Ids s such that s, s+1, ..., s+length-1 all exist (frame_ids sorted and unique)."""
    if len(frame_ids) < length:
        return frame_ids[:0]
    # Sorted unique ints: the window is complete iff the id `length-1` places on is s+length-1.
    ends = frame_ids[length - 1:]
    starts = frame_ids[:len(ends)]
    return starts[ends - starts == length - 1]


class _ClipFailed(Exception):
    """A clip could not be read while sampling; the dataset moves on to the next clip."""


@DATASETS.register()
class Wav2LipDataset(paddle.io.Dataset):
    """LRS2-layout clips as Wav2Lip generator samples or SyncNet expert samples (see module doc)."""

    def __init__(self, dataroot: str, img_size: int = FACE_SIZE, filelists_path: str = "filelists",
                 split: str = "train", mode: str = "wav2lip", syncnet_T: int = 5,
                 mel_step_size: int = MEL_STEP_SIZE, fps: float = 25, seed: Optional[int] = None,
                 samples_per_epoch: Optional[int] = None, mel_cache_size: int = 256):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if syncnet_T < 1 or mel_step_size < 1 or img_size < 2 or fps <= 0:
            raise ValueError("syncnet_T, mel_step_size must be >= 1, img_size >= 2 and fps > 0")
        if not os.path.isdir(dataroot):
            raise ValueError(f"dataroot is not a folder: {dataroot}")
        self.dataroot = dataroot
        self.img_size = int(img_size)
        self.mode = mode
        self.syncnet_T = int(syncnet_T)
        self.mel_step_size = int(mel_step_size)
        self.fps = float(fps)
        # seed=None still gives one fixed seed per dataset object, so forked workers agree.
        self.seed = int(np.random.SeedSequence().entropy if seed is None else seed) % 2**64
        self.epoch = 0
        self.mel_cache_size = max(1, int(mel_cache_size))
        # Each DataLoader worker process holds its own copy of this cache.
        self._mel_cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self.filelist = os.path.join(filelists_path, f"{split}.txt")
        self.clips: List[str] = []
        self.starts: List[np.ndarray] = []  # complete windows (candidates for the wrong window)
        self._scan(read_filelist(self.filelist))
        self.samples_per_epoch = int(samples_per_epoch or len(self.clips))

    # ----------------------------------------------------------------------------- construction
    def _scan(self, entries: Sequence[str]) -> None:
        skipped = {"too short": 0, "no audio.wav": 0, "no complete window": 0}
        for entry in entries:
            clip_dir = os.path.normpath(os.path.join(self.dataroot, entry))
            if not os.path.isdir(clip_dir):
                raise ValueError(f"video folder listed in {self.filelist} not found: {clip_dir}")
            ids = list_frame_ids(clip_dir)
            starts = window_starts(ids, self.syncnet_T)
            # The references need more than 3*T frames (`len(img_names) <= 3 * syncnet_T`: skip).
            if len(ids) <= 3 * self.syncnet_T:
                skipped["too short"] += 1
            elif not os.path.isfile(os.path.join(clip_dir, AUDIO_NAME)):
                skipped["no audio.wav"] += 1
            elif len(starts) < 2 or len(self._sync_starts(starts)) == 0:
                skipped["no complete window"] += 1  # a wrong window must differ from the right one
            else:
                self.clips.append(clip_dir)
                self.starts.append(starts)
        if sum(skipped.values()):
            logger.info("%s: skipped %s of %d clips", self.filelist,
                        ", ".join(f"{n} {why}" for why, n in skipped.items() if n), len(entries))
        if not self.clips:
            raise ValueError(f"no usable clip in {self.filelist} (dataroot {self.dataroot}): each "
                             f"needs more than {3 * self.syncnet_T} frames, {AUDIO_NAME} and two "
                             f"complete {self.syncnet_T}-frame windows")
        logger.info("%s: %d clips (mode %s)", self.filelist, len(self.clips), self.mode)

    def _sync_starts(self, starts: np.ndarray) -> np.ndarray:
        """Start frames allowed for the in-sync window, before the audio length is known."""
        if self.mode == "wav2lip":
            # indiv_mels of frame s starts at frame s-1's mel (see `_indiv_mels`): s >= 1.
            return starts[starts >= 1]
        return starts

    # ---------------------------------------------------------------------------------- sampling
    def set_epoch(self, epoch: int) -> None:
        """Use fresh windows this epoch (the same ones again for the same epoch and seed)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, idx: int) -> Dict[str, np.ndarray]:
        idx = int(idx)
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        first = (idx + self.epoch * self.samples_per_epoch) % len(self.clips)
        # Bounded fallback: a clip that fails to read hands over to the next, once round at most.
        for step in range(len(self.clips)):
            clip = (first + step) % len(self.clips)
            try:
                return self._sample(clip, rng)
            except _ClipFailed as err:
                logger.warning("skipping clip %s: %s", self.clips[clip], err)
        raise ValueError(f"no clip listed in {self.filelist} could be read (dataroot {self.dataroot})")

    def _sample(self, clip: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        spec = self._mel(clip)
        start = self._choose_start(clip, len(spec), rng)
        wrong = self._choose_wrong(clip, start, rng)
        mel = self._mel_window(spec, start)[None]
        if self.mode == "syncnet":
            in_sync = bool(rng.integers(2))
            window = self._read_window(clip, start if in_sync else wrong)
            return {"face": self._lower_halves(window), "mel": mel,
                    "label": np.array([float(in_sync)], dtype=np.float32)}
        truth = self._read_window(clip, start)
        return {"x": face_input(truth, self._read_window(clip, wrong), channel_axis=0),
                "indiv_mels": self._indiv_mels(spec, start), "mel": mel, "y": truth}

    def _choose_start(self, clip: int, mel_len: int, rng: np.random.Generator) -> int:
        candidates = self._sync_starts(self.starts[clip])
        # Last frame whose mel window is used: s itself, and in wav2lip mode also s+T-2 (indiv_mels).
        last = candidates + (max(0, self.syncnet_T - 2) if self.mode == "wav2lip" else 0)
        fits = mel_start(np.maximum(candidates, last), self.fps) + self.mel_step_size <= mel_len
        candidates = candidates[fits]
        if len(candidates) == 0:
            raise _ClipFailed(f"audio too short for any window ({mel_len} mel steps)")
        return int(candidates[rng.integers(len(candidates))])

    def _choose_wrong(self, clip: int, start: int, rng: np.random.Generator) -> int:
        """Any other complete window of the clip, uniformly (as the references)."""
        starts = self.starts[clip]
        pick = int(rng.integers(len(starts) - 1))
        # Skip over `start` itself: positions at or after it shift by one.
        if pick >= int(np.searchsorted(starts, start)):
            pick += 1
        return int(starts[pick])

    # ------------------------------------------------------------------------------------- audio
    def _mel(self, clip: int) -> np.ndarray:
        """The clip's mel, (steps, 80): computed once, then served from the LRU cache."""
        cached = self._mel_cache.get(clip)
        if cached is not None:
            self._mel_cache.move_to_end(clip)
            return cached
        path = os.path.join(self.clips[clip], AUDIO_NAME)
        try:
            spec = np.ascontiguousarray(melspectrogram(load_wav(path)).T)
        except ValueError as err:  # AudioError: unreadable or empty
            raise _ClipFailed(str(err)) from None
        self._mel_cache[clip] = spec
        if len(self._mel_cache) > self.mel_cache_size:
            self._mel_cache.popitem(last=False)
        return spec

    def _mel_window(self, spec: np.ndarray, frame: int) -> np.ndarray:
        """(80, mel_step_size) audio of `frame`: the references' `crop_audio_window`."""
        begin = mel_start(frame, self.fps)
        return spec[begin:begin + self.mel_step_size].T

    def _indiv_mels(self, spec: np.ndarray, start: int) -> np.ndarray:
        """(T, 1, 80, mel_step_size): one window per frame of the ground-truth window.

        Reference quirk, kept for weight compatibility: the window of frame s+k starts at frame
        s+k-1, one frame (40 ms) before the `mel` window inference uses for that frame (the
        references' `get_segmented_mels` adds 1 for "1-indexing" and then crops at i - 2).
        """
        windows = [self._mel_window(spec, start + k - 1) for k in range(self.syncnet_T)]
        return np.stack(windows)[:, None]

    # ------------------------------------------------------------------------------------ images
    def _read_window(self, clip: int, start: int) -> np.ndarray:
        """(3, T, H, W) float32 BGR in [0, 1] for frames start..start+T-1."""
        frames = []
        for frame_id in range(start, start + self.syncnet_T):
            path = os.path.join(self.clips[clip], f"{frame_id}.jpg")
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise _ClipFailed(f"cannot read {path}")
            frames.append(image)
        window = face_pixels(frames, self.img_size)
        return np.ascontiguousarray(window.transpose(3, 0, 1, 2))

    def _lower_halves(self, window: np.ndarray) -> np.ndarray:
        """(3, T, H, W) -> (3T, H - H//2, W), frame-major channels as the expert expects."""
        lower = window[:, :, self.img_size // 2:]
        return np.ascontiguousarray(lower.transpose(1, 0, 2, 3).reshape(-1, *lower.shape[2:]))
