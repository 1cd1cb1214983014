"""The inference pipeline's pieces: frame mapping, mel windows, box filling/smoothing, pasting."""
import cv2
import numpy as np
import pytest

from ppgan.apps.wav2lip_predictor import _runs, pingpong_index
from ppgan.utils.audio import mel_window
from ppgan.faceutils.face_boxes import (BoxDetector, MissingFaceError, NoFaceError, fill_missing,
                                      pad_boxes, smooth_boxes)
from ppgan.utils.blend import blend_mask, feather_mask, first_face_row, mouth_mask, paste_face
from ppgan.utils.boxes import XYXYBox


def test_pingpong_plays_forward_then_backward():
    assert [pingpong_index(i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [pingpong_index(i, 1) for i in range(3)] == [0, 0, 0]
    assert [pingpong_index(i, 2) for i in range(4)] == [0, 1, 0, 1]


def test_runs_split_at_direction_changes():
    assert list(_runs([2, 3, 4, 3, 2, 1, 0, 1])) == [[2, 3, 4], [3, 2, 1, 0], [1]]
    assert list(_runs([5])) == [[5]]


def test_mel_windows_follow_the_reference_and_clamp_at_the_end():
    mel = np.arange(80 * 50, dtype=np.float32).reshape(80, 50)
    # Reference: start = int(i * 80 / fps); the final window is mel[:, -16:].
    for i, start in ((0, 0), (1, 3), (5, 16), (10, 32)):
        np.testing.assert_array_equal(mel_window(mel, i, 25.0), mel[:, start:start + 16])
    np.testing.assert_array_equal(mel_window(mel, 11, 25.0), mel[:, -16:])
    np.testing.assert_array_equal(mel_window(mel, 40, 25.0), mel[:, -16:])
    np.testing.assert_array_equal(mel_window(mel, 3, 30.0), mel[:, 8:24])


def reference_smoothing(boxes, T=5):
    """The original get_smoothened_boxes, written out as published."""
    boxes = np.array(boxes)
    for i in range(len(boxes)):
        if i + T > len(boxes):
            window = boxes[len(boxes) - T:]
        else:
            window = boxes[i:i + T]
        boxes[i] = np.mean(window, axis=0)
    return boxes


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6, 23])
def test_smoothing_equals_the_reference(count):
    # 3 and 4 frames: the reference's window start is negative and slices from the end.
    rng = np.random.default_rng(count)
    boxes = rng.integers(0, 500, size=(count, 4))
    np.testing.assert_array_equal(smooth_boxes(boxes.astype(float)), reference_smoothing(boxes))
    if count == 4:  # every frame takes the last box, as the reference does
        np.testing.assert_array_equal(smooth_boxes(boxes.astype(float)), np.tile(boxes[-1], (4, 1)))


def test_missing_boxes_are_interpolated_between_neighbours():
    boxes = [None, (0, 0, 10, 10), None, None, (30, 30, 40, 40), None]
    filled = fill_missing(boxes)
    np.testing.assert_allclose(filled[0], [0, 0, 10, 10])
    np.testing.assert_allclose(filled[2], [10, 10, 20, 20])
    np.testing.assert_allclose(filled[3], [20, 20, 30, 30])
    np.testing.assert_allclose(filled[5], [30, 30, 40, 40])
    with pytest.raises(NoFaceError, match="no face found in clip.mp4"):
        fill_missing([None, None], "clip.mp4")


def test_pads_grow_boxes_and_clamp_to_the_frame():
    boxes = np.array([[5, 5, 50, 50], [60, 10, 95, 78]], dtype=float)
    padded = pad_boxes(boxes, (10, 20, 3, 4), height=80, width=100)
    np.testing.assert_array_equal(padded, [[2, 0, 54, 70], [57, 0, 99, 80]])


def test_feathered_paste_changes_only_the_box_and_has_no_hard_edge():
    frame = np.full((60, 80, 3), 100, np.uint8)
    face = np.full((96, 96, 3), 200, np.uint8)
    hard, soft = frame.copy(), frame.copy()
    paste_face(hard, face, XYXYBox(x1=20, y1=10, x2=70, y2=50), blend="hard")
    paste_face(soft, face, XYXYBox(x1=20, y1=10, x2=70, y2=50), blend="face")
    outside = np.ones((60, 80), bool)
    outside[10:50, 20:70] = False
    assert (soft[outside] == 100).all() and (hard[outside] == 100).all()
    assert (hard[10:50, 20:70] == 200).all()
    assert soft[30, 45, 0] == 200  # the middle is the generated face
    assert soft[10, 45, 0] < 110 and soft[30, 20, 0] < 110  # the border eases into the frame
    mask = feather_mask(40, 50)[..., 0]
    assert np.abs(np.diff(mask, axis=0)).max() < 0.25 and np.abs(np.diff(mask, axis=1)).max() < 0.25


@pytest.mark.parametrize("height", [40, 41, 96])
def test_mouth_paste_leaves_the_upper_half_of_the_box_untouched(height):
    frame = np.full((120, 80, 3), 100, np.uint8)
    face = np.full((96, 96, 3), 200, np.uint8)
    box = XYXYBox(x1=20, y1=10, x2=70, y2=10 + height)
    paste_face(frame, face, box, blend="mouth")
    outside = np.ones(frame.shape[:2], bool)
    outside[box.y1 + height // 2:box.y2, box.x1:box.x2] = False
    assert (frame[outside] == 100).all()  # the rows above the middle, and all outside the box
    assert frame[box.y1 + int(0.75 * height), 45, 0] == 200  # the mouth is the generated one
    mask = mouth_mask(height, 50)[..., 0]
    assert (mask[:(height + 1) // 2] == 0).all()
    assert np.abs(np.diff(mask, axis=0)).max() < 0.3 and np.abs(np.diff(mask, axis=1)).max() < 0.25


@pytest.mark.parametrize("blend, mouth, color_match", [
    ("mouth", None, False), ("mouth", (0.3, 0.8, 0.1), False), ("mouth", (0.6, 0.7, 0.2), True),
    ("face", None, False), ("face", None, True)])
def test_paste_equals_the_blend_of_the_whole_box(blend, mouth, color_match):
    """The paste computes only where its mask is not 0; the frame it leaves is the one the
    blend formula gives over the whole box."""
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (90, 120, 3), np.uint8)
    face = rng.integers(0, 256, (96, 96, 3), np.uint8)
    out = frame.copy()
    paste_face(out, face, XYXYBox(x1=15, y1=8, x2=95, y2=79), blend, color_match, mouth=mouth)
    region = frame[8:79, 15:95].astype(np.float32)
    resized = cv2.resize(face, (80, 71)).astype(np.float32)
    weight = blend_mask(blend, 71, 80, mouth)
    if color_match:
        rim = (weight[..., 0] > 0.02) & (weight[..., 0] < 0.98)
        resized += region[rim].mean(axis=0) - resized[rim].mean(axis=0)
    expected = frame.copy()
    expected[8:79, 15:95] = np.rint(np.clip(region + weight * (resized - region), 0, 255))
    np.testing.assert_array_equal(out, expected)
    assert (out != frame).any()


@pytest.mark.parametrize("blend, mouth, color_match", [
    ("mouth", None, False), ("mouth", (0.45, 0.7, 0.15), True), ("face", None, False),
    ("hard", None, False)])
def test_the_paste_reads_the_face_only_from_its_first_row(blend, mouth, color_match):
    """Whatever the box (smaller or larger than the face, odd, half its size, not square), the
    rows above `first_face_row` do not change the pasted frame, and the row at it does (or the
    bound would be loose): the generator need not draw them."""
    rng = np.random.default_rng(5)
    face = rng.integers(0, 256, (96, 96, 3), np.uint8)
    first = first_face_row(blend, 96)
    touched = False
    for height, width in [(7, 9), (31, 30), (48, 48), (48, 47), (95, 96), (96, 96), (97, 97),
                          (150, 121), (301, 300), (620, 600)]:
        frame = rng.integers(0, 256, (height + 20, width + 10, 3), np.uint8)
        box = XYXYBox(x1=4, y1=11, x2=4 + width, y2=11 + height)
        expected = frame.copy()
        paste_face(expected, face, box, blend, color_match, mouth=mouth)
        above = face.copy()
        above[:first] = rng.integers(0, 256, (first, 96, 3), np.uint8)
        out = frame.copy()
        paste_face(out, above, box, blend, color_match, mouth=mouth)
        np.testing.assert_array_equal(out, expected, err_msg=f"box {height}x{width}")
        at_first = face.copy()
        at_first[first] = 255 - face[first]
        out = frame.copy()
        paste_face(out, at_first, box, blend, color_match, mouth=mouth)
        touched |= bool((out != expected).any())
    assert touched


@pytest.mark.parametrize("blend", ["mouth", "face"])
def test_color_match_removes_a_generator_cast_at_the_rim(blend):
    """A generated face that is the frame's own face, blurred through 96 px and a few levels off
    in tone: colour matching brings the rim back to the frame, and a face with no cast is left
    as it was (to rounding)."""
    from skimage import data

    frame = np.ascontiguousarray(data.astronaut()[30:190, 170:290, ::-1])  # the face, BGR
    box = XYXYBox(x1=0, y1=0, x2=frame.shape[1], y2=frame.shape[0])
    blurred = cv2.resize(cv2.resize(frame, (96, 96), interpolation=cv2.INTER_AREA),
                         (96, 96)).astype(np.float32)
    weight = (feather_mask if blend == "face" else mouth_mask)(*frame.shape[:2])[..., 0]
    rim = (weight > 0.02) & (weight < 0.98)

    def rim_error(face: np.ndarray, color_match: bool) -> float:
        out = frame.copy()
        paste_face(out, np.clip(face, 0, 255).astype(np.uint8), box, blend, color_match)
        return float(np.abs(out.astype(np.float32) - frame)[rim].mean())

    cast = blurred + np.array([9, -6, 7], np.float32)
    assert rim_error(cast, True) < 0.6 * rim_error(cast, False)
    assert abs(rim_error(blurred, True) - rim_error(blurred, False)) < 0.1
    with pytest.raises(ValueError, match="feathered blend"):
        paste_face(frame.copy(), frame, box, "hard", color_match=True)


def test_frame_levels_follow_the_frame_rate():
    from ppgan.utils.silence import FLOOR_DB, frame_levels

    wav = np.concatenate([np.full(8000, 0.1, np.float32), np.zeros(8000, np.float32)])
    for fps, loud in ((25, 12), (10, 5)):
        levels = frame_levels(wav, 16000, fps, count=2 * loud + 2)
        np.testing.assert_allclose(levels[:loud], -20, atol=1e-4)
        assert (levels[loud + 1:] == FLOOR_DB).all()  # the silence, then past the audio's end


def test_silent_spans_need_the_minimum_length_and_fade_at_their_edges():
    from ppgan.utils.silence import silent_frames, source_shares

    levels = np.full(40, -20.0)
    levels[5:8] = -70  # 3 frames: too short
    levels[15:30] = -70
    silent = silent_frames(levels, below_speech_db=30, min_frames=10)
    assert np.flatnonzero(silent).tolist() == list(range(15, 30))
    assert not silent_frames(levels, below_speech_db=60, min_frames=10).any()
    shares = source_shares(silent, fade_frames=3)
    np.testing.assert_allclose(shares[13:20], [0, 0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(shares[26:31], [1, 0.75, 0.5, 0.25, 0])


def as_faces(entry):
    """A fake detector's answer for one frame: None (no face), a box, or a list of boxes."""
    if entry is None:
        return []
    return [tuple(box) for box in entry] if isinstance(entry, list) else [tuple(entry)]


class FakeAligner:
    """Stands in for FaceAlignment: each frame carries its index in pixel (0, 0); the faces of
    frame i are `track[i]` (see `as_faces`), every one with the mouth `mouths[i]` (no mouths:
    None, as S3FD). Records which frames it was asked about."""

    def __init__(self, track, mouths=None):
        self.track = track
        self.mouths = mouths
        self.seen = []

    def get_all_detections_with_mouths(self, images):
        indices = [int(image[0, 0, 0]) for image in images]
        self.seen.extend(indices)
        return [[(box, None if self.mouths is None else self.mouths[i])
                 for box in as_faces(self.track[i])] for i in indices]


def frames_for(count):
    for i in range(count):
        frame = np.zeros((40, 60, 3), np.uint8)
        frame[0, 0, 0] = i
        yield frame


def run_detector(track, every, batch_size=4):
    aligner = FakeAligner(track)
    boxes = BoxDetector(aligner, batch_size=batch_size, every=every).detect(frames_for(len(track)))
    return boxes, aligner.seen


def test_every_frame_is_the_reference_behaviour():
    track = [(i, 10, i + 20, 30) for i in range(23)]
    boxes, seen = run_detector(track, every=1)
    assert boxes == track and seen == list(range(23))


def test_key_frames_with_slow_motion_are_interpolated():
    track = [(i // 2, 10, i // 2 + 40, 50) for i in range(23)]  # 2.5 px per 5 frames: < 10% of 40
    boxes, seen = run_detector(track, every=5)
    assert np.abs(np.array(boxes) - np.array(track)).max() <= 1  # interpolation rounds
    assert seen == [0, 5, 10, 15, 20, 22]  # key frames, and the last frame


def test_fast_motion_and_missing_faces_detect_the_frames_between():
    track = [(0, 0, 40, 40)] * 6 + [(30, 0, 70, 40)] * 8 + [None] * 3 + [(30, 0, 70, 40)] * 6
    boxes, seen = run_detector(track, every=5)
    assert boxes == track  # the jump at frame 6 and the faceless frames 14-16 are exact
    assert set(seen) >= set(range(6, 10)) | set(range(11, 20))
    assert len(seen) < len(track)  # and the still stretches were not detected frame by frame


def test_strict_detects_every_frame_and_stops_at_the_first_faceless_one():
    # Frame 7 lies between the key frames 5 and 10, whose boxes agree: interpolation alone
    # would hide it.
    track = [(0, 0, 40, 40)] * 7 + [None] + [(0, 0, 40, 40)] * 8
    boxes, seen = run_detector(track, every=5)
    assert boxes[7] is not None
    aligner = FakeAligner(track)
    with pytest.raises(MissingFaceError, match="no face in frame 7") as raised:
        BoxDetector(aligner, batch_size=4, every=5, strict=True).detect(frames_for(len(track)))
    assert raised.value.frame == 7
    assert aligner.seen == list(range(8))  # every frame, and no further than the first batch past it


def test_detections_with_no_pixel_in_the_frame_are_no_faces():
    """A detector's noise (S3FD's random weights gave a thousand such boxes a frame): boxes that
    round to no width or height, or lie beyond the 60x40 frame, are passed over for the real
    face after them, and a frame with only those shows no face, filled from its neighbours."""
    face = (10, 5, 30, 25)
    noise = [(12, 0, 14, 0), (20, 7, 20, 18), (60, 10, 80, 30), (5, 40, 25, 52), (-9, 3, -2, 9)]
    track = [noise + [face], noise, noise + [face]]
    boxes, _ = run_detector(track, every=1)
    assert boxes == [face, None, face]
    assert fill_missing(boxes).tolist() == [list(face)] * 3
    edge = [(59, 39, 70, 50), (-5, -5, 1, 1)]  # one pixel of the frame each: faces, cut by the edge
    assert run_detector([edge], every=1)[0] == [edge[0]]


class SmallFacesMissed:
    """A detector that finds the face (the middle half of the image it is given) only in images
    at least `min_width` pixels wide, like a real one missing a face too small in a reduced copy."""

    def __init__(self, min_width):
        self.min_width = min_width
        self.widths = []

    def get_all_detections_with_mouths(self, images):
        self.widths.extend(image.shape[1] for image in images)
        return [[((w / 4, h / 4, 3 * w / 4, 3 * h / 4), None)] if w >= self.min_width else []
                for h, w in (image.shape[:2] for image in images)]


@pytest.mark.parametrize("max_size, retry_width", [(30, 60), (20, 40)])
def test_a_face_missed_in_the_reduced_copy_is_detected_on_a_copy_twice_as_large(max_size, retry_width):
    """On 60x40 frames: a copy 30 wide misses, the retry sees the frame itself (60 wide, at most
    the frame); a copy 20 wide misses, the retry sees one 40 wide, not the full frame."""
    detector = SmallFacesMissed(min_width=retry_width)
    boxes = BoxDetector(detector, batch_size=4, max_size=max_size).detect(frames_for(3))
    assert boxes == [(15, 10, 45, 30)] * 3  # in full-resolution coordinates
    assert detector.widths == [max_size] * 3 + [retry_width] * 3


def test_strict_retries_a_miss_up_to_the_full_frame():
    """The references look at the full frame: a face only found there is not a faceless frame."""
    detector = SmallFacesMissed(min_width=60)
    boxes = BoxDetector(detector, batch_size=4, max_size=20, strict=True).detect(frames_for(2))
    assert boxes == [(15, 10, 45, 30)] * 2
    assert detector.widths == [20, 20, 40, 40, 60, 60]
    with pytest.raises(MissingFaceError, match="frame 0"):
        BoxDetector(SmallFacesMissed(min_width=61), max_size=20, strict=True).detect(frames_for(2))


def test_predictor_blend_and_silence_arguments():
    from ppgan.apps import Wav2LipPredictor
    from ppgan.utils.video import InputError

    assert Wav2LipPredictor().blend == "mouth" and Wav2LipPredictor().silence is None
    assert Wav2LipPredictor(feather=False).blend == "hard"  # the earlier switch still works
    assert Wav2LipPredictor(blend="face").blend == "face"
    with pytest.raises(InputError, match="contradicts blend='face'"):
        Wav2LipPredictor(feather=False, blend="face")
    with pytest.raises(InputError, match="blend: must be one of mouth, face, hard"):
        Wav2LipPredictor(blend="soft")
    with pytest.raises(InputError, match=r"silence_threshold: must be a number in \(0, 100\]"):
        Wav2LipPredictor(silence_passthrough=True, silence_threshold=-3)
    with pytest.raises(InputError, match="silence_min_span: must be a number > 0"):
        Wav2LipPredictor(silence_min_span=0)


def test_only_the_mouth_blend_draws_only_the_lower_face():
    """The generator draws whole faces where the paste or the enhancer reads them."""
    from ppgan.apps import Wav2LipPredictor

    assert Wav2LipPredictor().lower_only()
    assert Wav2LipPredictor(face_enhancement=True, enhance_at="frame").lower_only()
    assert not Wav2LipPredictor(face_enhancement=True, enhance_at="generated").lower_only()
    assert not Wav2LipPredictor(blend="face").lower_only()
    assert not Wav2LipPredictor(blend="hard").lower_only()


def test_the_last_frame_between_key_frames_is_retried_on_the_frame_itself():
    """Frames read ahead keep their full size only where a retry may need it: key frames, and
    the last frame, a key frame too where the video ends between two."""
    detector = SmallFacesMissed(min_width=60)
    boxes = BoxDetector(detector, batch_size=4, every=5, max_size=30).detect(frames_for(7))
    assert boxes == [(15, 10, 45, 30)] * 7  # frames 1-4 interpolated between 0 and 5
    assert detector.widths == [30] * 3 + [60] * 3  # frames 0, 5 and 6, then again in full


@pytest.mark.parametrize("shown", [True, False])
def test_a_reported_bar_tells_each_item_once_however_often_it_redraws(shown):
    """tqdm redraws an iterated bar through `update` (here at every item): the hook still
    counts each item once, and `update` outside an iteration counts as given."""
    from ppgan.utils.progress import ReportedBar

    reports = []
    with ReportedBar(range(40), hook=lambda *report: reports.append(report), total=40,
                     desc="stage", mininterval=0, miniters=1, disable=not shown) as bar:
        for _ in bar:
            pass
    assert reports == [("stage", done, 40) for done in range(41)]
    reports.clear()
    with ReportedBar(hook=lambda *report: reports.append(report), total=30, desc="steps",
                     mininterval=0, disable=not shown) as bar:
        bar.update(16)
        bar.update(14)
    assert reports == [("steps", 0, 30), ("steps", 16, 30), ("steps", 30, 30)]
