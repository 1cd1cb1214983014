"""A disk cache of per-frame face detections, so a video is detected once, not once per run.

Dubbing one clip into ten languages runs the pipeline ten times on the same frames. The key is
the video file's content plus every setting that changes the detections, so editing the video
or changing a setting misses the cache instead of returning stale boxes.
"""
import hashlib
import json
import logging
import os
from typing import Any, List, Mapping, Optional, Tuple

import numpy as np

from .face_track import Sighting
from ..utils.atomic import atomic_path
from ..utils.boxes import Mouth, XYXYBox
from ..utils.download import content_digest, get_weights_home

logger = logging.getLogger(__name__)

# Bump when the detection code changes what it returns (2: retry size; 3: the chosen person,
# with the appearance each box belongs to; 4: the mouth mark).
FORMAT_VERSION = 4
# An entry's columns: x1, y1, x2, y2, appearance (all -1: no face), then the mouth's x, y and
# half width (NaN: none marked). Floats, which hold the integer columns exactly.
COLUMNS = 8


def detection_keys(video_path: str, settings: Mapping[str, Any], frames: int) -> Tuple[str, str]:
    """The keys of `video_path`'s detections with `settings`: of its first `frames` frames, and
    of all its frames. A pass that reached the video's end stores under the second: those boxes
    hold for any longer request too, so dubbing a clip to audio of several lengths (each as
    long as the clip or longer) detects it once."""
    video = content_digest(video_path)

    def key(frames_part: Any) -> str:
        described = json.dumps({"version": FORMAT_VERSION, "video": video, **settings,
                                "frames": frames_part}, sort_keys=True)
        return hashlib.sha256(described.encode()).hexdigest()[:32]

    return key(frames), key("all")


def entry_path(key: str) -> str:
    return os.path.join(get_weights_home(), "detections", key + ".npy")


def load_detections(key: str) -> Optional[List[Optional[Sighting]]]:
    """The cached sightings (None where the face was not found), or None on a miss."""
    path = entry_path(key)
    if not os.path.isfile(path):
        return None
    try:
        rows = np.load(path)
    except (OSError, ValueError):
        rows = None
    if rows is None or rows.ndim != 2 or rows.shape[1] != COLUMNS:  # or an older format's
        logger.warning("ignoring an unreadable detection cache entry %s", path)
        return None
    return [None if row[0] < 0 else Sighting(
        XYXYBox(*map(int, row[:4])), int(row[4]),
        None if np.isnan(row[5:]).any() else Mouth(*map(float, row[5:]))) for row in rows]


def save_detections(key: str, sightings: List[Optional[Sighting]]) -> None:
    """Store the sightings (readers never see a half-written entry). A cache that cannot be
    written (a full or read-only disk) costs the next run a detection, not this run's output."""
    path = entry_path(key)
    no_mouth = (np.nan,) * 3
    rows = np.array([(-1,) * 5 + no_mouth if s is None else
                     (*s.box, s.appearance, *(no_mouth if s.mouth is None else s.mouth))
                     for s in sightings], dtype=np.float64)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_path(path) as partial, open(partial, "wb") as out:
            np.save(out, rows.reshape(-1, COLUMNS))
    except OSError as err:
        logger.warning("face boxes not cached (%s: %s)", err.strerror, err.filename or path)
