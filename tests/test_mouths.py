"""Mouth marks: from the detectors (MTCNN's corners, BlazeFace's keypoint) through tracking,
interpolation, filling, smoothing and the detection cache, to the mouth blend's mask.

Real face: scikit-image's astronaut photo (MTCNN ships its weights). BlazeFace's released
weights are not available here: its keypoint plumbing is checked on hand-made network outputs.
"""
import logging

import cv2
import numpy as np
import pytest
from skimage import data

from ppgan.faceutils.detection_cache import entry_path, load_detections, save_detections
from ppgan.faceutils.face_boxes import (BoxDetector, fill_missing, fill_mouths, mouths_in_boxes,
                                        smooth_boxes, smooth_mouths)
from ppgan.faceutils.face_detection import FaceAlignment
from ppgan.faceutils.face_detection.detection.core import FaceDetector
from ppgan.faceutils.face_track import FaceChoice, Sighting
from ppgan.utils.blend import FEATHER, MOUTH_REACH, mouth_mask, paste_face
from ppgan.utils.boxes import Mouth, XYXYBox

from test_pipeline_parts import FakeAligner, frames_for


@pytest.fixture(scope="module")
def astronaut_bgr():
    return np.ascontiguousarray(data.astronaut()[..., ::-1])


def test_mtcnn_mouth_lies_between_its_corners_in_the_lower_half_of_the_box(astronaut_bgr):
    aligner = FaceAlignment(face_detector="mtcnn")
    # The best face (a machine may find a borderline second box: see test_mtcnn.py).
    [[(box, mouth), *_]] = aligner.get_all_detections_with_mouths(astronaut_bgr[None])
    assert box == aligner.get_all_detections_for_batch(astronaut_bgr[None])[0][0]
    [(_, marks)] = aligner.face_detector.detect_batch_with_landmarks(
        np.ascontiguousarray(astronaut_bgr[None, ..., ::-1]))
    left, right = marks[0, 3], marks[0, 4]  # LANDMARK_NAMES' mouth corners
    np.testing.assert_allclose(mouth, [*(left + right) / 2, np.linalg.norm(right - left) / 2],
                               rtol=1e-5)
    assert box.x1 < mouth.x < box.x2 and (box.y1 + box.y2) / 2 < mouth.y < box.y2
    assert 0.1 * (box.x2 - box.x1) < mouth.half_width < 0.4 * (box.x2 - box.x1)


def test_a_detector_without_landmarks_gives_no_mouths():
    class Boxes(FaceDetector):  # as S3FD: boxes only
        def detect_batch(self, images):
            return [np.array([[10, 20, 50, 70, 0.9]], np.float32)] * len(images)

    aligner = FaceAlignment.__new__(FaceAlignment)
    aligner.face_detector = Boxes()
    assert aligner.get_all_detections_with_mouths(np.zeros((2, 80, 80, 3), np.uint8)) == [
        [(XYXYBox(10, 20, 50, 70), None)]] * 2


def blazeface_outputs(faces):
    """Raw BlazeFace outputs whose anchors 0, 1, ... decode to the given boxes ([x1, y1, x2, y2]
    in 0..1 units), each with all 6 keypoints at the given points ((6, 2), 0..1) and score."""
    from ppgan.faceutils.face_detection.detection.blazeface.anchors import generate_anchors

    anchors = generate_anchors()
    raw_boxes = np.zeros((1, 896, 16), np.float32)
    raw_scores = np.full((1, 896, 1), -1000.0, np.float32)
    for k, ((x1, y1, x2, y2), points, score) in enumerate(faces):
        centre = anchors[k, :2]
        raw_boxes[0, k, :4] = [*(((x1 + x2) / 2, (y1 + y2) / 2) - centre) * 128,
                               (x2 - x1) * 128, (y2 - y1) * 128]
        raw_boxes[0, k, 4:] = ((np.asarray(points) - centre) * 128).ravel()
        raw_scores[0, k, 0] = np.log(score / (1 - score))
    return raw_boxes, raw_scores


@pytest.mark.parametrize("reference", [False, True])
def test_blazeface_mouth_is_its_mouth_keypoint_in_the_boxes_order(tmp_path, monkeypatch, reference):
    import paddle

    from ppgan.faceutils.face_detection.detection.blazeface import BlazeFace, blazeface_detector

    weights = str(tmp_path / "blazeface.pdparams")
    paddle.save({k: v.numpy() for k, v in BlazeFace().state_dict().items()}, weights)
    # Two faces far apart, the weaker first; keypoint k of face f at a point of its own.
    boxes = [[0.1, 0.1, 0.3, 0.4], [0.6, 0.5, 0.9, 0.9]]
    points = [np.array([[x1 + 0.02 * (k + 1), y1 + 0.04 * (k + 1)] for k in range(6)])
              for x1, y1, _, _ in boxes]
    raw = blazeface_outputs([(boxes[0], points[0], 0.7), (boxes[1], points[1], 0.9)])
    aligner = FaceAlignment(face_detector="blazeface", path_to_detector=weights,
                            reference=reference)
    monkeypatch.setattr(aligner.face_detector, "raw_outputs", lambda images: raw)
    [faces] = aligner.get_all_detections_with_mouths(np.zeros((1, 128, 128, 3), np.uint8))
    assert [box for box, _ in faces] == aligner.get_all_detections_for_batch(
        np.zeros((1, 128, 128, 3), np.uint8))[0]
    # One anchor per face: by score in both orders, the stronger (given second) first.
    for (box, mouth), f in zip(faces, [1, 0]):
        np.testing.assert_allclose(np.array(box) / 128, boxes[f], atol=0.011)
        np.testing.assert_allclose(mouth[:2], points[f][3] * 128, atol=1e-3)  # the mouth centre
        width = (boxes[f][2] - boxes[f][0]) * 128
        assert mouth.half_width == pytest.approx(blazeface_detector.MOUTH_HALF_WIDTH * width,
                                                 rel=1e-4)


# ---- the mask ---------------------------------------------------------------------------

def test_mask_with_a_mouth_is_full_at_it_and_empty_beside_and_above_it():
    height, width = 100, 200
    plain = mouth_mask(height, width)[..., 0]
    mask = mouth_mask(height, width, (0.3, 0.1))[..., 0]
    assert (mask[:height // 2] == 0).all()  # the generator's upper half is never pasted
    assert mask[75, 60] == pytest.approx(plain[75, 100])  # full at the mouth, as the plain mask
    assert mask[75, 60] > 0.95
    # Full out to MOUTH_REACH half widths, nothing beyond them and the feather.
    reach, gone = (0.3 + MOUTH_REACH * 0.1) * width, (0.3 + MOUTH_REACH * 0.1 + FEATHER) * width
    assert mask[75, int(reach) - 1] == pytest.approx(plain[75, int(reach) - 1], abs=1e-6)
    assert (mask[:, int(np.ceil(gone)):] == 0).all()
    assert (plain[75, int(np.ceil(gone)):-int(FEATHER * width)] > 0.95).all()  # today's covers it
    assert (mask <= plain + 1e-6).all()  # clipped to the box's own feather
    assert np.abs(np.diff(mask, axis=1)).max() < 0.25  # no edge
    # It follows the mouth.
    moved = mouth_mask(height, width, (0.7, 0.1))[..., 0]
    np.testing.assert_allclose(moved, mask[:, ::-1], atol=1e-6)


def test_mask_without_a_mouth_is_todays():
    rows = (np.arange(60) + 0.5) / 60
    t = np.clip((rows - 0.5) / 0.15, 0, 1)
    b = np.clip((1 - rows) / 0.15, 0, 1)
    cols = np.minimum(np.arange(80) + 0.5, 79.5 - np.arange(80)) / 12
    step = lambda v: np.clip(v, 0, 1) ** 2 * (3 - 2 * np.clip(v, 0, 1))  # noqa: E731
    expected = np.outer(step(t) * step(b), step(cols))
    np.testing.assert_allclose(mouth_mask(60, 80)[..., 0], expected, atol=1e-6)
    np.testing.assert_array_equal(mouth_mask(60, 80, None), mouth_mask(60, 80))


def test_paste_with_a_mouth_keeps_the_far_cheek():
    frame = np.full((120, 200, 3), 100, np.uint8)
    face = np.full((96, 96, 3), 200, np.uint8)
    box = XYXYBox(0, 0, 200, 120)
    plain = frame.copy()
    paste_face(plain, face, box, "mouth")
    paste_face(frame, face, box, "mouth", mouth=(0.25, 0.75, 0.1))
    assert frame[90, 50, 0] == 200 and plain[90, 150, 0] == 200
    assert (frame[:, 130:] == 100).all()  # beyond 0.25 + (1.8 * 0.1 + 0.15) of the width
    assert (frame[:60] == 100).all()
    face_blend = np.full((120, 200, 3), 100, np.uint8)
    paste_face(face_blend, face, box, "face", mouth=(0.25, 0.75, 0.1))  # only "mouth" uses it
    assert face_blend[30, 150, 0] == 200


# ---- tracking, filling, smoothing --------------------------------------------------------

def test_mouths_are_interpolated_between_key_frames_with_their_boxes():
    track = [(i // 2, 10, i // 2 + 40, 50) for i in range(11)]  # slow: key frames 0, 5, 10 blend
    mouths = [Mouth(20 + i, 40, 8) if i % 5 == 0 else None for i in range(11)]  # only where seen
    for choice in (None, FaceChoice.of("largest")):
        aligner = FakeAligner(track, mouths)
        sightings = BoxDetector(aligner, batch_size=4, every=5, choice=choice).track(frames_for(11))
        assert aligner.seen == [0, 5, 10]
        np.testing.assert_allclose([s.mouth for s in sightings],
                                   [(20 + i, 40, 8) for i in range(11)], atol=1e-9)
    # One end without a mouth: the frames between have none.
    mouths[5] = None
    sightings = BoxDetector(FakeAligner(track, mouths), batch_size=4, every=5).track(frames_for(11))
    assert [s.mouth is None for s in sightings] == [False] + [True] * 9 + [False]
    # Scaled back from a reduced copy with its box.
    aligner = FakeAligner([(10, 10, 30, 30)], [Mouth(20, 25, 4)])
    detector = BoxDetector(aligner, max_size=30)
    frame = np.zeros((40, 60, 3), np.uint8)
    [sighting] = detector.track([frame])
    assert sighting.box == (20, 20, 60, 60) and sighting.mouth == pytest.approx((40, 50, 8))


def test_missing_mouths_follow_their_filled_box_and_are_smoothed_as_boxes():
    boxes = [XYXYBox(0, 0, 100, 100), None, XYXYBox(100, 0, 300, 200)]
    sightings = [Sighting(boxes[0], 0, Mouth(30, 70, 20)), None,
                 Sighting(boxes[2], 0, Mouth(250, 140, 40))]
    filled = fill_missing(boxes)
    mouths = fill_mouths(sightings, filled)
    # Frame 1's box is (50, 0, 200, 150): the mouth's shares (0.3 -> 0.75 across, 0.7 down,
    # 0.2 wide) blended halfway, on that box.
    np.testing.assert_allclose(mouths, [[30, 70, 20], [50 + 0.525 * 150, 0.7 * 150, 0.2 * 150],
                                        [250, 140, 40]])
    np.testing.assert_allclose(mouths_in_boxes(mouths, filled)[1], [0.525, 0.7, 0.2])
    assert fill_mouths([Sighting(boxes[0], 0), None, Sighting(boxes[2], 0)], filled) is None
    # Smoothing takes the boxes' windows: 3 rows, window 2 -> rows 0-1, 1-2 and the last 2.
    smoothed = smooth_mouths(mouths, window=2)
    np.testing.assert_allclose(smoothed[0], (mouths[0] + mouths[1]) / 2)
    assert smooth_boxes(filled, window=2)[0].tolist() == [25, 0, 150, 125]


# ---- the detection cache -----------------------------------------------------------------

def test_cache_keeps_mouths_and_misses_old_entries(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PPGAN_HOME", str(tmp_path))
    sightings = [Sighting(XYXYBox(1, 2, 30, 40), 0, Mouth(15.5, 33.25, 6.125)), None,
                 Sighting(XYXYBox(3, 4, 50, 60), 1)]
    save_detections("withmouths", sightings)
    assert load_detections("withmouths") == sightings
    loaded = load_detections("withmouths")
    assert all(isinstance(v, int) for v in loaded[0].box) and loaded[2].mouth is None
    np.save(entry_path("old"), np.array([[1, 2, 30, 40, 0], [-1] * 5], np.int64))  # format 3
    with caplog.at_level(logging.WARNING):
        assert load_detections("old") is None
    assert "ignoring" in caplog.text


# ---- end to end ----------------------------------------------------------------------------

class FrameList:
    """A stand-in for the video writer: keeps the frames."""

    def __init__(self):
        self.frames = []

    def write(self, frame):
        self.frames.append(frame.copy())


def test_the_pipeline_with_mtcnn_keeps_the_lower_face_beside_the_mouth(tmp_path):
    """A face box padded wide (--pads 0 10 60 60): with MTCNN's mouth the lower half's sides
    keep the frame's pixels while the mouth changes; the same boxes without mouths paste
    the whole lower half."""
    from media import face_frame, save_random_generator, speech_like, write_wav

    from ppgan.apps import Wav2LipPredictor
    from ppgan.apps.wav2lip_predictor import SourceFrames, _clip_mel
    from ppgan.utils.audio import load_wav
    from ppgan.utils.video import FrameSource

    photo = str(tmp_path / "face.png")
    frame = face_frame(480, 340, 300, 90, 10)
    cv2.imwrite(photo, frame)
    predictor = Wav2LipPredictor(
        checkpoint_path=save_random_generator(str(tmp_path / "random.pdparams")),
        engine="eager", face_detector="mtcnn", det_cache=False, pads=(0, 10, 60, 60))
    audio = str(write_wav(tmp_path / "speech.wav", speech_like(0.4)))
    mel = _clip_mel(load_wav(audio), audio)
    source = FrameSource(photo)
    try:
        frames = predictor.frames_to_sync(source, 1)
        generator = predictor.generator()
        outputs = []
        for mouths in (frames.mouths, None):
            writer = FrameList()
            predictor._lip_sync(generator, SourceFrames(source, frames.still, frames.boxes, mouths),
                                mel, np.zeros(3, np.float32), writer, None)
            outputs.append(writer.frames[0].astype(np.float64))
    finally:
        source.close()
    x1, y1, x2, y2 = frames.boxes[0]
    centre, _, half_width = frames.mouths[0]
    width = x2 - x1
    assert 0.4 < centre < 0.6 and half_width < 0.2  # a frontal face in a box padded wide
    reach = (MOUTH_REACH * half_width + FEATHER) * width
    left = slice(x1, int(x1 + centre * width - reach) - 1)
    lower = slice(y1 + (y2 - y1) * 5 // 8, y2 - (y2 - y1) // 8)
    mouth = slice(int(x1 + (centre - half_width) * width), int(x1 + (centre + half_width) * width))
    with_mouth, without = (np.abs(out - frame) for out in outputs)
    assert left.stop - left.start >= 10
    assert with_mouth[lower, left].max() == 0  # the cheek beside the mouth is the frame's
    assert with_mouth[lower, mouth].mean() > 10  # the random generator's mouth is pasted
    assert without[lower, left].mean() > 10  # no mouth: the lower half is pasted whole
