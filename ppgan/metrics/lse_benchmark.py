"""Scoring many videos: inputs (a file, a folder, a test filelist), per-video rows, CSV, means.

The test filelists of the Wav2Lip benchmark (``evaluation/test_filelists/lrs2.txt`` ...) hold one
``audio_src video`` pair per line; the generator writes line ``idx``'s result as ``{idx}.mp4``, so
scoring a filelist means scoring ``results_dir/{idx}.mp4`` for every line.
"""
import csv
import glob
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from ..faceutils.face_detection.detection.core import FaceDetector
from .face_tracks import TrackConfig, face_track_clips
from ..utils.atomic import DISK_FULL_ERRNOS, atomic_path
from ..utils.errors import one_line
from ..utils.ffmpeg_tools import FFmpegError
from .lipsync import LipSyncScorer, SyncScores, TooShortError

logger = logging.getLogger(__name__)

__all__ = ["VIDEO_ERRORS", "ScoreRow", "TestPair", "collect_videos", "mean_scores", "read_test_pairs",
           "RealVideoScorer", "score_videos", "write_csv", "CSV_COLUMNS"]

CSV_COLUMNS = ("path", "track", "lse_d", "lse_c", "offset", "windows")


@dataclass(frozen=True)
class TestPair:
    idx: int  # the line's index in the file: the generator's output is `{idx}.mp4`
    audio_src: str
    video: str


@dataclass(frozen=True)
class ScoreRow:
    path: str
    track: str  # "" for a face-cropped clip; the crop's number in real-video mode
    lse_d: float
    lse_c: float
    offset: int
    windows: int


def read_test_pairs(filelist: str) -> List[TestPair]:
    """The pairs of a test filelist; blank lines are ignored but still count for ``idx``."""
    pairs = []
    with open(filelist, encoding="utf-8") as f:
        for idx, line in enumerate(f):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{filelist}:{idx + 1}: expected 'audio_src video', "
                                 f"got {line.strip()!r}")
            pairs.append(TestPair(idx, fields[0], fields[1]))
    if not pairs:
        raise ValueError(f"{filelist}: no test pairs")
    return pairs


def collect_videos(path: str, pattern: str = "*.mp4") -> List[str]:
    """``path`` itself if it is a file, else the folder's files matching ``pattern``, sorted."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such video or folder: {path}")
    videos = sorted(p for p in glob.glob(os.path.join(path, pattern)) if os.path.isfile(p))
    if not videos:
        raise FileNotFoundError(f"no {pattern} files in {path}")
    return videos


ScoreFn = Callable[[str], List[Tuple[str, SyncScores]]]
# Problems of one input video (undecodable, too short, no face, ...): skipped, not fatal.
# ValueError covers our AudioError / InputError / NoFaceError; OSError missing files.
VIDEO_ERRORS = (TooShortError, FFmpegError, OSError, ValueError)


def score_videos(videos: Iterable[str], score_fn: ScoreFn,
                 skip_errors: Sequence[type] = VIDEO_ERRORS
                 ) -> Tuple[List[ScoreRow], List[Tuple[str, str]]]:
    """Rows for every video ``score_fn`` can score; ``(video, reason)`` for the others."""
    rows: List[ScoreRow] = []
    skipped: List[Tuple[str, str]] = []
    for video in videos:
        try:
            results = score_fn(video)
        except tuple(skip_errors) as err:  # one bad video must not end a 14k-video run
            if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
                raise  # every later video would fail alike
            reason = one_line(err) or type(err).__name__
            if reason.startswith(f"{video}: "):  # our messages name the file; don't repeat it
                reason = reason[len(video) + 2:]
            logger.warning("skipped %s: %s", video, reason)
            skipped.append((video, reason))
            continue
        if not results:
            logger.warning("skipped %s: no face track long enough to score", video)
            skipped.append((video, "no face track long enough to score"))
        rows.extend(ScoreRow(video, track, s.lse_d, s.lse_c, s.offset, s.num_windows)
                    for track, s in results)
    return rows, skipped


def write_csv(rows: Sequence[ScoreRow], path: str) -> str:
    """Writes the rows; the CSV appears only once complete."""
    with atomic_path(path) as partial, open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([r.path, r.track, f"{r.lse_d:.6f}", f"{r.lse_c:.6f}", r.offset,
                             r.windows])
    return path


def mean_scores(rows: Sequence[ScoreRow]) -> Tuple[float, float]:
    """(mean LSE-D, mean LSE-C): every row counts once, as the references average them."""
    if not rows:
        raise ValueError("no scores to average")
    return (sum(r.lse_d for r in rows) / len(rows), sum(r.lse_c for r in rows) / len(rows))


def clip_score_fn(scorer: LipSyncScorer) -> ScoreFn:
    """Face-cropped (LRS2-style) clips: one score per video."""
    return lambda video: [("", scorer.score(video))]


class RealVideoScorer:
    """Real videos: each face track is cropped as run_pipeline does, then scored as a clip."""

    def __init__(self, scorer: LipSyncScorer, detector: FaceDetector,
                 cfg: Optional[TrackConfig] = None):
        self.scorer = scorer
        self.detector = detector
        self.cfg = cfg or TrackConfig()

    def __call__(self, video: str) -> List[Tuple[str, SyncScores]]:
        if not os.path.isfile(video):
            raise FileNotFoundError(f"video not found: {video}")
        workdir = tempfile.mkdtemp(prefix="lse-real-", dir=self.scorer.tmp_dir)
        try:
            crops = face_track_clips(video, workdir, self.detector, self.cfg)
            return [(str(i), self.scorer.score(crop)) for i, crop in enumerate(crops)]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
