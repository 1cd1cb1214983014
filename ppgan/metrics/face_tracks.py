"""Real-video mode of the LSE scores: find, track and crop faces as syncnet_python's run_pipeline.

Steps and constants follow ``run_pipeline.py`` (and Wav2Lip's ``calculate_scores_real_videos.sh``,
which scores every crop it writes):

1. ``ffmpeg -y -i VIDEO -qscale:v 2 -async 1 -r 25 video.avi``; frames of that AVI as JPEGs
   (``-qscale:v 2``); its audio as 16 kHz mono int16 WAV;
2. faces on every frame, detected on a copy scaled by ``facedet_scale`` (0.25), kept above
   ``conf_th`` (0.9);
3. shots (scene cuts), then per shot of at least ``min_track`` frames: greedy IoU (> 0.5) tracks
   that tolerate ``num_failed_det`` (25) missing frames, kept when longer than ``min_track``
   (100) detections and larger than ``min_face_size`` (100 px) on average, boxes interpolated
   over the gaps;
4. crop: box size and centre median-filtered (kernel 13), the frame padded with gray 110, a
   square ``crop_scale`` (0.4) larger than the face, biased downwards to include the mouth,
   resized to 224x224 and written as an XVID AVI at 25 fps with the track's audio cut out by
   ``ffmpeg -ss/-to``; each crop is then scored like an LRS2 clip.

Deviations (documented, unavoidable or deliberate): our detectors replace the reference's S3FD
build (``sfd`` is the same network with Wav2Lip's face_alignment pre-processing; ``mtcnn`` works
offline); shots come from a small re-implementation of PySceneDetect's default ContentDetector
(mean HSV change >= 27, shots of >= 15 frames) rather than that package; a track takes at most one
face per frame (the reference's list-mutation quirk can take two when three faces overlap).
"""
import glob
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy import signal
from scipy.interpolate import interp1d

from ..faceutils.face_detection.detection.core import FaceDetector
from ..utils.ffmpeg_tools import run_ffmpeg

logger = logging.getLogger(__name__)

__all__ = ["TrackConfig", "FaceTrack", "bb_iou", "crop_track", "detect_faces", "detect_shots",
           "face_track_clips", "prepare_video", "track_shot"]

PAD_VALUE = 110  # gray border around frames, so crops near the edge keep their size
CROP_SIZE = 224
SMOOTH_KERNEL = 13
IOU_THRESHOLD = 0.5
SCENE_THRESHOLD = 27.0  # PySceneDetect ContentDetector defaults
MIN_SCENE_LEN = 15
SCENE_WIDTH = 256  # frames are compared downscaled, as PySceneDetect does by default


@dataclass
class TrackConfig:
    facedet_scale: float = 0.25
    conf_th: float = 0.9
    crop_scale: float = 0.40
    min_track: int = 100
    frame_rate: int = 25
    num_failed_det: int = 25
    min_face_size: int = 100
    det_batch_size: int = 8


@dataclass
class FaceTrack:
    frames: np.ndarray  # consecutive frame indices
    bboxes: np.ndarray  # (len(frames), 4) x1, y1, x2, y2


Detection = Tuple[int, np.ndarray, float]  # frame index, box, confidence


# -- 1. the reference's conversions -----------------------------------------------------------
def prepare_video(video: str, workdir: str, frame_rate: int = 25) -> Tuple[str, List[str], str]:
    """(video.avi, sorted frame JPEGs, audio.wav) inside ``workdir``, as run_pipeline makes them."""
    avi = os.path.join(workdir, "video.avi")
    frames_dir = os.path.join(workdir, "frames")
    os.makedirs(frames_dir, exist_ok=True)
    wav = os.path.join(workdir, "audio.wav")
    run_ffmpeg(["-y", "-i", video, "-qscale:v", "2", "-async", "1", "-r", str(frame_rate), avi])
    run_ffmpeg(["-y", "-i", avi, "-qscale:v", "2", "-threads", "1", "-f", "image2",
                os.path.join(frames_dir, "%06d.jpg")])
    run_ffmpeg(["-y", "-i", avi, "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", "16000", wav])
    return avi, sorted(glob.glob(os.path.join(frames_dir, "*.jpg"))), wav


# -- 2. detection -----------------------------------------------------------------------------
def _detect_group(detector: FaceDetector, images: List[np.ndarray], scale: float,
                  conf_th: float) -> List[List[Tuple[np.ndarray, float]]]:
    # The reference detects on RGB copies resized by `scale` (bilinear) and maps boxes back.
    small = [cv2.resize(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), (0, 0), fx=scale, fy=scale,
                        interpolation=cv2.INTER_LINEAR) for im in images]
    results = []
    for boxes in detector.detect_batch(np.stack(small)):
        keep = boxes[boxes[:, 4] > conf_th]
        results.append([(box[:4].astype(np.float64) / scale, float(box[4])) for box in keep])
    return results


def detect_faces(jpgs: Sequence[str], detector: FaceDetector, cfg: TrackConfig
                 ) -> List[List[Detection]]:
    """Per frame, the faces above the confidence threshold, in the detector's score order."""
    detections: List[List[Detection]] = []
    for start in range(0, len(jpgs), cfg.det_batch_size):
        paths = jpgs[start:start + cfg.det_batch_size]
        images = [cv2.imread(p) for p in paths]
        # Batches need one frame size; a video keeps its size, so this split is a safeguard.
        for group in _same_size_groups(images):
            found = _detect_group(detector, [images[i] for i in group], cfg.facedet_scale,
                                  cfg.conf_th)
            for i, faces in zip(group, found):
                detections.append([(start + i, box, conf) for box, conf in faces])
    return detections


def _same_size_groups(images: List[np.ndarray]) -> List[List[int]]:
    groups: List[List[int]] = []
    for i, image in enumerate(images):
        if groups and images[groups[-1][0]].shape == image.shape:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


# -- 3. shots and tracks ----------------------------------------------------------------------
def _hsv_small(path: str) -> np.ndarray:
    image = cv2.imread(path)
    height, width = image.shape[:2]
    if width > SCENE_WIDTH:
        image = cv2.resize(image, (SCENE_WIDTH, max(1, round(height * SCENE_WIDTH / width))),
                           interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)


def detect_shots(jpgs: Sequence[str], threshold: float = SCENE_THRESHOLD,
                 min_scene_len: int = MIN_SCENE_LEN) -> List[Tuple[int, int]]:
    """[start, end) frame ranges split where the mean HSV change between frames >= threshold."""
    cuts = [0]
    previous = None
    for index, path in enumerate(jpgs):
        current = _hsv_small(path)
        if previous is not None:
            change = float(np.mean(np.abs(current - previous).mean(axis=(0, 1))))
            if change >= threshold and index - cuts[-1] >= min_scene_len:
                cuts.append(index)
        previous = current
    bounds = cuts + [len(jpgs)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def bb_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes, as the reference computes it."""
    inter_w = max(0.0, min(box_a[2], box_b[2]) - max(box_a[0], box_b[0]))
    inter_h = max(0.0, min(box_a[3], box_b[3]) - max(box_a[1], box_b[1]))
    inter = inter_w * inter_h
    area_a = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1])
    area_b = (box_b[2] - box_b[0]) * (box_b[3] - box_b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _grow_track(shot_faces: List[List[Detection]], cfg: TrackConfig) -> List[Detection]:
    """One greedy track: consumes (removes) the faces it takes from ``shot_faces``."""
    track: List[Detection] = []
    for frame_faces in shot_faces:
        for face in frame_faces:
            if not track:
                track.append(face)
            elif face[0] - track[-1][0] > cfg.num_failed_det:
                return track  # the face was lost for too long: this track is over
            elif bb_iou(face[1], track[-1][1]) > IOU_THRESHOLD:
                track.append(face)
            else:
                continue
            frame_faces.remove(face)
            break  # at most one face per frame and track
    return track


def track_shot(shot_faces: List[List[Detection]], cfg: TrackConfig) -> List[FaceTrack]:
    """All tracks of one shot long and large enough; boxes interpolated over missed frames."""
    shot_faces = [list(faces) for faces in shot_faces]  # consumed below; keep the caller's
    tracks = []
    while True:
        track = _grow_track(shot_faces, cfg)
        if not track:
            return tracks
        if len(track) <= cfg.min_track:
            continue
        frame_numbers = np.array([face[0] for face in track])
        boxes = np.array([face[1] for face in track])
        frames = np.arange(frame_numbers[0], frame_numbers[-1] + 1)
        interpolated = np.stack([interp1d(frame_numbers, boxes[:, k])(frames) for k in range(4)],
                                axis=1)
        size = max(np.mean(interpolated[:, 2] - interpolated[:, 0]),
                   np.mean(interpolated[:, 3] - interpolated[:, 1]))
        if size > cfg.min_face_size:
            tracks.append(FaceTrack(frames, interpolated))


# -- 4. crops ---------------------------------------------------------------------------------
def _smoothed_boxes(track: FaceTrack) -> Dict[str, np.ndarray]:
    boxes = track.bboxes
    raw = {"s": np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2,
           "y": (boxes[:, 1] + boxes[:, 3]) / 2, "x": (boxes[:, 0] + boxes[:, 2]) / 2}
    # scipy's medfilt pads with zeros: the reference's smoothing at track ends, kept as is.
    return {k: signal.medfilt(v, kernel_size=SMOOTH_KERNEL) for k, v in raw.items()}


def _crop(image: np.ndarray, size: float, cy: float, cx: float, crop_scale: float) -> np.ndarray:
    pad = int(size * (1 + 2 * crop_scale))
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), "constant", constant_values=PAD_VALUE)
    my, mx = cy + pad, cx + pad
    face = padded[int(my - size):int(my + size * (1 + 2 * crop_scale)),
                  int(mx - size * (1 + crop_scale)):int(mx + size * (1 + crop_scale))]
    return cv2.resize(face, (CROP_SIZE, CROP_SIZE))


def crop_track(jpgs: Sequence[str], track: FaceTrack, wav: str, out_path: str,
               cfg: TrackConfig) -> str:
    """Writes ``out_path`` (.avi): the track's face crops with the matching audio."""
    silent = out_path[:-4] + "t.avi"
    writer = cv2.VideoWriter(silent, cv2.VideoWriter_fourcc(*"XVID"), cfg.frame_rate,
                             (CROP_SIZE, CROP_SIZE))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write XVID AVI files (no FFmpeg video backend)")
    dets = _smoothed_boxes(track)
    try:
        for i, frame in enumerate(track.frames):
            writer.write(_crop(cv2.imread(jpgs[frame]), dets["s"][i], dets["y"][i], dets["x"][i],
                               cfg.crop_scale))
    finally:
        writer.release()
    audio = out_path[:-4] + ".wav"
    start = track.frames[0] / cfg.frame_rate
    end = (track.frames[-1] + 1) / cfg.frame_rate
    run_ffmpeg(["-y", "-i", wav, "-ss", f"{start:.3f}", "-to", f"{end:.3f}", audio])
    run_ffmpeg(["-y", "-i", silent, "-i", audio, "-c:v", "copy", "-c:a", "copy", out_path])
    os.remove(silent)
    return out_path


def face_track_clips(video: str, workdir: str, detector: FaceDetector,
                     cfg: Optional[TrackConfig] = None) -> List[str]:
    """The face-track crops (AVI paths in ``workdir``) of ``video``, in the reference's order."""
    cfg = cfg or TrackConfig()
    _, jpgs, wav = prepare_video(video, workdir, cfg.frame_rate)
    if not jpgs:
        return []
    faces = detect_faces(jpgs, detector, cfg)
    tracks: List[FaceTrack] = []
    for start, end in detect_shots(jpgs):
        if end - start >= cfg.min_track:
            tracks.extend(track_shot(faces[start:end], cfg))
    logger.info("%s: %d frames, %d face track(s)", video, len(jpgs), len(tracks))
    return [crop_track(jpgs, t, wav, os.path.join(workdir, f"{i:05d}.avi"), cfg)
            for i, t in enumerate(tracks)]
