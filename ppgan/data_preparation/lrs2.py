"""Raw talking-face videos -> the LRS2 preprocessed layout that `Wav2LipDataset` reads.

For every `<data_root>/<dir>/<vid>.<ext>` (mp4 and the other extensions in VIDEO_EXTENSIONS)::

    <preprocessed_root>/<dir>/<vid>/{i}.jpg        face crop of 25 fps frame i (no face: no file)
    <preprocessed_root>/<dir>/<vid>/audio.wav      16 kHz mono 16-bit PCM
    <preprocessed_root>/<dir>/<vid>/preprocess_done.json   the clip's frame and face counts

and `<filelists_dir>/{train,val,test}.txt` listing the finished clips (`<dir>/<vid>` per line).

As the references (Wav2Lip `preprocess.py`): the crop is the detector's box with no padding, and
frames without a face are skipped, leaving gaps in the numbering that the dataset avoids.
Unlike them: frames stream through batched detection (memory does not grow with video length),
videos that are not 25 fps are first resampled to 25 fps by ffmpeg (into a private temporary
folder), the audio is decoded and resampled to 16 kHz mono as the inference pipeline reads audio,
a clip's folder appears only once complete (an interrupted clip leaves nothing), finished clips
are skipped on a rerun, and the clip list can be sharded over processes.

The command line is `tools/preprocess_lrs2.py`; this module is its library.
"""
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..datasets.wav2lip_dataset import AUDIO_NAME
from ..utils.atomic import DISK_FULL_ERRNOS, atomic_path
from ..utils.audio import load_wav, write_wav
from ..utils.checks import CheckError, split_fractions
from ..utils.errors import UserError
from ..utils.ffmpeg_tools import FFmpegError, run_ffmpeg
from ..utils.video import FrameSource

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".flv")
DONE_MARKER = "preprocess_done.json"
SPLITS = ("train", "val", "test")
TARGET_FPS = 25.0
AUDIO_RATE = 16000


class PreprocessError(UserError, ValueError):
    """A wrong preprocessing input (paths, shard settings); the message says which and why."""


@dataclass(frozen=True)
class ClipJob:
    """One raw video and where its preprocessed clip goes."""

    video: str
    out_dir: str
    name: str  # "<dir>/<vid>", the filelist entry


@dataclass
class ClipStats:
    frames: int = 0
    faces: int = 0
    source_fps: float = 0.0
    resampled: bool = False


@dataclass
class RunSummary:
    processed: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ planning
def find_videos(data_root: str, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> List[str]:
    """Sorted `<data_root>/<dir>/<file>` paths whose extension is a video one (any case)."""
    paths = (os.path.join(data_root, folder, name)
             for folder, name in _two_levels(data_root, "data_root"))
    return [path for path in paths
            if os.path.splitext(path)[1].lower() in extensions and os.path.isfile(path)]


def _two_levels(root: str, what: str) -> Iterator[Tuple[str, str]]:
    """(folder, entry) for every `<root>/<folder>/<entry>`, sorted; `what` names root in the error."""
    if not os.path.isdir(root):
        raise PreprocessError(f"{what} is not a folder: {root}")
    for folder in sorted(os.listdir(root)):
        if os.path.isdir(os.path.join(root, folder)):
            for entry in sorted(os.listdir(os.path.join(root, folder))):
                yield folder, entry


def plan_jobs(data_root: str, preprocessed_root: str) -> List[ClipJob]:
    """One job per video, named `<parent dir>/<file stem>` (split with os.path, so any OS)."""
    videos = find_videos(data_root)
    if not videos:
        raise PreprocessError(f"no videos found in {os.path.join(data_root, '*', '*')} "
                              f"(extensions {', '.join(VIDEO_EXTENSIONS)})")
    jobs: Dict[str, ClipJob] = {}
    for video in videos:
        parent = os.path.basename(os.path.dirname(video))
        stem = os.path.splitext(os.path.basename(video))[0]
        name = f"{parent}/{stem}"
        if name in jobs:
            raise PreprocessError(f"two videos map to the same clip {name}: {jobs[name].video} "
                                  f"and {video}")
        jobs[name] = ClipJob(video, os.path.join(preprocessed_root, parent, stem), name)
    return list(jobs.values())


def shard_settings(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    """(rank, world_size): given values, else PADDLE_TRAINER_ID / PADDLE_TRAINERS_NUM, else (0, 1).

    `paddle.distributed.launch` sets those variables for every process it starts.
    """
    try:
        rank = int(os.environ.get("PADDLE_TRAINER_ID", 0)) if rank is None else int(rank)
        world_size = (int(os.environ.get("PADDLE_TRAINERS_NUM", 1)) if world_size is None
                      else int(world_size))
    except ValueError as err:
        raise PreprocessError(f"bad PADDLE_TRAINER_ID / PADDLE_TRAINERS_NUM: {err}") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise PreprocessError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    return rank, world_size


def shard(jobs: Sequence[ClipJob], rank: int, world_size: int) -> List[ClipJob]:
    """Every world_size-th job from `rank`: shards are disjoint and together cover all jobs."""
    return list(jobs[rank::world_size])


def is_finished(clip_dir: str) -> bool:
    return os.path.isfile(os.path.join(clip_dir, DONE_MARKER))


# -------------------------------------------------------------------------------------- ffmpeg
def extract_audio(video: str, wav_path: str) -> None:
    """The first audio stream as 16 kHz mono 16-bit WAV, decoded and resampled exactly as the
    pipeline reads audio (`load_wav`), whatever ffmpeg the machine has."""
    write_wav(wav_path, load_wav(video, AUDIO_RATE), AUDIO_RATE)


def resample_video(video: str, out_path: str, fps: float = TARGET_FPS) -> None:
    """The video stream at `fps` (ffmpeg's fps filter follows timestamps, so variable-rate input
    works too), losslessly encoded (FFV1 is built into every ffmpeg) so crops lose nothing."""
    run_ffmpeg(["-y", "-i", video, "-map", "0:v:0", "-an", "-vf", f"fps={fps:g}", "-c:v", "ffv1",
                out_path], output=out_path)


# --------------------------------------------------------------------------------------- faces
def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[List[np.ndarray]]:
    batch: List[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_face_crops(video: str, out_dir: str, box_detector, batch_size: int) -> Tuple[int, int]:
    """Detect faces batch by batch and write `{i}.jpg` crops; returns (frames, faces).

    Only one batch of frames is in memory at a time.
    """
    source = FrameSource(video)
    frames = faces = 0
    try:
        for batch in _batches(source.frames(), batch_size):
            for frame, box in zip(batch, box_detector.detect(batch)):
                crop = None if box is None else frame[box[1]:box[3], box[0]:box[2]]
                if crop is not None and crop.size:
                    cv2.imwrite(os.path.join(out_dir, f"{frames}.jpg"), crop)
                    faces += 1
                frames += 1
    finally:
        source.close()
    return frames, faces


def preprocess_clip(job: ClipJob, box_detector, batch_size: int = 32,
                    fps: float = TARGET_FPS) -> ClipStats:
    """Crops, audio and the done marker of one video, written into a hidden folder that becomes
    the clip's folder only when complete: an interrupted or failed clip leaves nothing."""
    probe = FrameSource(job.video)
    stats = ClipStats(source_fps=float(probe.fps), resampled=abs(probe.fps - fps) > 1e-3)
    probe.close()
    os.makedirs(os.path.dirname(os.path.abspath(job.out_dir)), exist_ok=True)
    with atomic_path(job.out_dir, directory=True) as clip_dir:
        extract_audio(job.video, os.path.join(clip_dir, AUDIO_NAME))
        if stats.resampled:
            with tempfile.TemporaryDirectory(prefix="ppgan-preprocess-") as tmp:
                resampled = os.path.join(tmp, "video.mkv")
                resample_video(job.video, resampled, fps)
                stats.frames, stats.faces = write_face_crops(resampled, clip_dir, box_detector,
                                                             batch_size)
        else:
            stats.frames, stats.faces = write_face_crops(job.video, clip_dir, box_detector,
                                                         batch_size)
        if stats.faces < stats.frames:
            logger.info("%s: no face in %d of %d frames (skipped, leaving gaps)", job.name,
                        stats.frames - stats.faces, stats.frames)
        if stats.faces == 0:
            logger.warning("%s: no face found in any frame", job.name)
        with open(os.path.join(clip_dir, DONE_MARKER), "w", encoding="utf-8") as handle:
            json.dump(asdict(stats), handle)
    return stats


def preprocess_all(jobs: Sequence[ClipJob], box_detector, batch_size: int = 32,
                   fps: float = TARGET_FPS, progress: bool = True, desc: str = "clips") -> RunSummary:
    """Preprocess the unfinished clips among `jobs`; a clip that fails is logged and left
    unfinished (a rerun tries it again), the others go on."""
    from tqdm import tqdm

    summary = RunSummary()
    for job in tqdm(jobs, desc=desc, unit="clip", disable=not progress):
        if is_finished(job.out_dir):
            summary.skipped.append(job.name)
            continue
        try:
            stats = preprocess_clip(job, box_detector, batch_size, fps)
        except (FFmpegError, OSError, ValueError) as err:  # a bad video, not a broken setup
            if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
                raise  # every later clip would fail alike
            logger.error("%s (%s): %s", job.name, job.video, err)
            summary.failed[job.name] = str(err)
            continue
        logger.debug("%s: %s", job.name, stats)
        summary.processed.append(job.name)
    logger.info("processed %d clips, skipped %d already finished, %d failed",
                len(summary.processed), len(summary.skipped), len(summary.failed))
    return summary


# ----------------------------------------------------------------------------------- filelists
def finished_clips(preprocessed_root: str) -> List[str]:
    """Sorted `<dir>/<vid>` names of the finished clips under the root that have any face."""
    return [f"{folder}/{vid}" for folder, vid in _two_levels(preprocessed_root, "preprocessed_root")
            if _marker_faces(os.path.join(preprocessed_root, folder, vid, DONE_MARKER))]


def _marker_faces(marker: str) -> int:
    """The face count a done marker records; 0 without a (readable) marker."""
    try:
        with open(marker, encoding="utf-8") as handle:
            return int(json.load(handle).get("faces", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def split_entries(entries: Sequence[str], val_fraction: float = 0.05,
                  test_fraction: float = 0.05, seed: int = 0) -> Dict[str, List[str]]:
    """A deterministic train/val/test split: the sorted entries shuffled by `seed`.

    A split with a positive fraction gets at least one clip as long as train keeps one.
    """
    try:
        val_fraction, test_fraction = split_fractions(val_fraction, test_fraction)
    except CheckError as err:
        raise PreprocessError(f"val_fraction and test_fraction: {err}") from None
    ordered = sorted(set(entries))
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    count = len(shuffled)
    n_val, n_test = round(count * val_fraction), round(count * test_fraction)
    if val_fraction > 0 and n_val == 0 and count - n_test >= 2:
        n_val = 1
    if test_fraction > 0 and n_test == 0 and count - n_val >= 2:
        n_test = 1
    return {"val": sorted(shuffled[:n_val]), "test": sorted(shuffled[n_val:n_val + n_test]),
            "train": sorted(shuffled[n_val + n_test:])}


def write_filelists(entries: Sequence[str], filelists_dir: str, val_fraction: float = 0.05,
                    test_fraction: float = 0.05, seed: int = 0) -> Dict[str, str]:
    """Write `{train,val,test}.txt` (atomically, so concurrent writers are harmless); returns
    split -> path."""
    os.makedirs(filelists_dir, exist_ok=True)
    paths = {}
    for split, names in split_entries(entries, val_fraction, test_fraction, seed).items():
        path = os.path.join(filelists_dir, f"{split}.txt")
        with atomic_path(path) as partial, open(partial, "w", encoding="utf-8") as handle:
            handle.writelines(f"{name}\n" for name in names)
        paths[split] = path
        logger.info("wrote %s (%d clips)", path, len(names))
    return paths


def build_box_detector(face_detector: str = "sfd", batch_size: int = 32,
                       detector_path: Optional[str] = None, max_size: int = 0):
    """A BoxDetector over PaddleGAN's FaceAlignment (imported here: it may load Paddle)."""
    from ..faceutils.face_boxes import BoxDetector
    from ..faceutils.face_detection import FaceAlignment, LandmarksType

    aligner = FaceAlignment(LandmarksType._2D, flip_input=False, face_detector=face_detector,
                            path_to_detector=detector_path)
    return BoxDetector(aligner, batch_size=batch_size, max_size=max_size)

