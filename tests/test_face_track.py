"""Choosing and following one person among several faces, on synthetic detections (no network).

Each scenario lists the boxes a detector would return per frame, ranked as a detector might
(often the wrong person first), and checks that the tracker returns the chosen person's box in
every frame where they are seen, and nobody else's.
"""
import numpy as np
import pytest

from ppgan.faceutils.face_boxes import (BoxDetector, MissingFaceError, fill_missing,
                                        nearest_appearances, smooth_boxes)
from ppgan.faceutils.face_track import (MAX_FACES, TENTATIVE_UPDATES, FaceChoice, FaceChoiceError,
                                        FaceTracker, Sighting)
from ppgan.utils.boxes import XYXYBox
from ppgan.utils.checks import face_select

from test_pipeline_parts import FakeAligner


def box(cx, cy, size):
    half = size // 2
    return XYXYBox(cx - half, cy - half, cx + half, cy + half)


def follow(frames, choice="largest", cuts=()):
    """The tracker's answer per frame for `frames` (lists of boxes), every frame detected."""
    tracker = FaceTracker(FaceChoice.of(face_select(choice)))
    seen = [tracker.update(i, faces, cut=i in cuts) for i, faces in enumerate(frames)]
    tracker.finish()
    return seen


def boxes_of(seen):
    return [None if s is None else s.box for s in seen]


def crossing(frames=30, occluded=()):
    """A (size 60) walks right along y=60, B (size 40, farther away) walks left along y=90:
    they swap sides, their boxes overlapping in the middle; in the frames `occluded` A is
    behind B and not detected. Each frame lists B first (the detector's ranking)."""
    a_track, scenes = [], []
    for i in range(frames):
        a = box(40 + 8 * i, 60, 60)
        b = box(280 - 8 * i, 90, 40)
        a_track.append(None if i in occluded else a)
        scenes.append([b] if i in occluded else [b, a])
    return scenes, a_track


@pytest.mark.parametrize("choice", ["largest", 0, "40,60"])
def test_crossing_faces_keep_the_chosen_person(choice):
    scenes, a_track = crossing()
    assert boxes_of(follow(scenes, choice)) == a_track
    # B, started on the right (index 1 from the left), is followed just as well.
    b_track = [faces[0] for faces in scenes]
    assert boxes_of(follow(scenes, 1)) == b_track


def test_a_person_hidden_behind_another_is_not_replaced_by_them():
    scenes, a_track = crossing(occluded=range(14, 19))
    seen = follow(scenes)
    assert boxes_of(seen) == a_track  # None while hidden, never B's box
    assert {s.appearance for s in seen if s is not None} == {0}  # and the same appearance after


def test_leaving_and_returning_never_takes_the_other_person():
    a, b = box(60, 60, 60), box(220, 60, 70)  # B is the larger: "largest" would take B
    scenes = [[b, a]] * 5 + [[b]] * 40 + [[b, box(40, 70, 60)]] * 5
    seen = follow(scenes, 0)
    assert boxes_of(seen) == [a] * 5 + [None] * 40 + [box(40, 70, 60)] * 5
    # Away for longer than LOST_AFTER: chosen again by the rule, as a new appearance.
    assert [s.appearance for s in seen if s is not None] == [0] * 5 + [1] * 5


def test_false_detections_on_the_background_do_not_steal_the_person():
    a = box(100, 80, 60)
    specks = [box(20 + 37 * i % 200, 150, 20) for i in range(30)]  # small, one frame each
    scenes = [[specks[i]] + ([] if i % 4 == 3 else [a]) for i in range(30)]
    seen = boxes_of(follow(scenes))
    assert seen == [None if i % 4 == 3 else a for i in range(30)]


def test_a_noisy_detector_neither_steals_the_person_nor_piles_up_tracks():
    """Hundreds of small random boxes a frame (a detector with random weights sees faces
    everywhere): the person is followed, and what the tracker keeps stays bounded."""
    rng = np.random.default_rng(3)
    a = box(160, 120, 60)
    tracker = FaceTracker(FaceChoice.of("largest"))
    for i in range(60):
        noise = [box(int(x), int(y), 24) for x, y in rng.integers(20, 300, (300, 2))]
        assert tracker.update(i, [a] + noise).box == a
        assert len(tracker._tracks) <= MAX_FACES * (TENTATIVE_UPDATES + 2)


def test_a_cut_chooses_again_by_the_rule():
    before = [[box(60, 60, 60), box(220, 60, 40)]] * 6  # the largest on the left
    after = [[box(80, 100, 30), box(240, 80, 80)]] * 6  # a new shot: the largest on the right
    # Told of the cut (the colours changed): chosen afresh in the cut's frame.
    seen = follow(before + after, cuts={6})
    assert boxes_of(seen) == [box(60, 60, 60)] * 6 + [box(240, 80, 80)] * 6
    # Not told: nobody continues across the change, which is a new shot after 2 frames.
    seen = follow(before + after)
    assert boxes_of(seen) == [box(60, 60, 60)] * 6 + [None] + [box(240, 80, 80)] * 5
    assert seen[-1].appearance == 1
    # The new shot's first frame is filled with its own person's box, not the last shot's.
    filled = fill_missing(boxes_of(seen), "v", nearest_appearances(seen))
    np.testing.assert_array_equal(filled[6], box(240, 80, 80))


def test_index_counts_from_the_left_once_enough_faces_show():
    left, right = box(50, 50, 40), box(200, 50, 40)
    assert boxes_of(follow([[right], [right, left], [left, right]], 1)) == [None, right, right]
    with pytest.raises(FaceChoiceError, match="--face_select 2: no frame shows 3 faces"):
        follow([[right], [right, left]], 2)


def test_a_point_takes_the_face_under_it_or_refuses():
    left, right = box(50, 50, 40), box(200, 50, 40)
    assert boxes_of(follow([[], [left, right]], "195,35")) == [None, right]
    assert boxes_of(follow([[left, right]], "74,50")) == [left]  # just outside: the margin
    with pytest.raises(FaceChoiceError, match=r"--face_select 120,50: no face in frame 1 is at "
                                              r"that point \(it shows 2 faces"):
        follow([[], [left, right]], "120,50")


def test_point_mapping_goes_through_the_callers_transform():
    choice = FaceChoice.of((100.0, 60.0), to_frame=lambda x, y: (x / 2, y / 2))
    assert choice.point == (50.0, 30.0) and choice.shown == "100,60"


# ----------------------------------------------------------- through BoxDetector's key frames
def run(track, choice, every=5, batch_size=4):
    aligner = FakeAligner(track)
    frames = (np.full((40, 60, 3), 0, np.uint8) for _ in track)
    detector = BoxDetector(aligner, batch_size=batch_size, every=every,
                           choice=None if choice is None else FaceChoice.of(face_select(choice)))
    sightings = detector.track(_indexed(frames))
    return sightings, aligner.seen


def _indexed(frames):
    for i, frame in enumerate(frames):
        frame[0, 0, 0] = i
        yield frame


def test_key_frames_ranking_different_people_interpolate_one_person_only():
    """The bug this fixes: the top-ranked face alternates between two people from one key frame
    to the next, and the references' choice follows it (smoothing then blends the two)."""
    a, b = box(12, 20, 16), box(46, 20, 12)
    track = [[a, b] if (i // 5) % 2 else [b, a] for i in range(23)]
    old, _ = run(track, None)
    assert {s.box for s in old} == {a, b}
    sightings, seen = run(track, 0)
    assert [s.box for s in sightings] == [a] * 23
    assert seen == [0, 5, 10, 15, 20, 22]  # still interpolated: only the key frames detected


def test_the_first_frame_with_faces_may_lie_between_key_frames():
    """Faces appear at frame 3; key frame 5 misses the one under the point: it is chosen at
    frame 3 all the same (a point is refused only on the first frame that shows faces)."""
    a, b = box(12, 20, 16), box(46, 20, 12)
    track = [None] * 3 + [[b, a]] * 2 + [[b]] + [[b, a]] * 10
    sightings, _ = run(track, "12,20")
    assert [None if s is None else s.box for s in sightings] == [None] * 3 + [a] * 2 + [None] + [a] * 10


def test_key_frames_of_another_appearance_are_not_interpolated():
    a, b = box(12, 20, 16), box(46, 20, 14)
    # A alone, then (a cut the colours do not show) B alone: frames between are detected.
    track = [[a]] * 8 + [[b]] * 15
    sightings, seen = run(track, "largest")
    assert [None if s is None else s.box for s in sightings] == [a] * 8 + [None] + [b] * 14
    assert set(range(6, 10)) <= set(seen)


def photo(name, width=96, height=54, shift=0):
    """A scikit-image photograph as a small BGR frame, its view moved right by `shift` pixels."""
    import cv2
    from skimage import data

    image = cv2.resize(getattr(data, name)(), (width + 20, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[:, shift:shift + width, ::-1])


def test_cuts_are_told_from_pans_flashes_and_white_balance():
    from ppgan.faceutils.face_track import frame_signature, is_cut

    astronaut = photo("astronaut")
    warm = np.clip(astronaut * np.array([0.87, 1.0, 1.15]), 0, 255).astype(np.uint8)
    assert is_cut(frame_signature(astronaut), frame_signature(photo("coffee")))
    assert is_cut(frame_signature(photo("chelsea")), frame_signature(photo("rocket")))
    for same_scene in (photo("astronaut", shift=10), np.clip(astronaut * 1.8, 0, 255).astype(np.uint8),
                       warm):
        assert not is_cut(frame_signature(astronaut), frame_signature(same_scene))


def test_a_cut_between_key_frames_is_detected_frame_by_frame():
    """The cut at frame 7 lies between key frames 5 and 10, whose faces (one person each,
    the detector says) sit at the same place."""
    a = box(30, 20, 16)
    track = [[a]] * 23
    aligner = FakeAligner(track)
    frames = [photo("astronaut" if i < 7 else "coffee") for i in range(23)]
    detector = BoxDetector(aligner, batch_size=4, every=5, choice=FaceChoice.of("largest"))
    sightings = detector.track(_indexed(frames))
    assert [s.appearance for s in sightings] == [0] * 7 + [1] * 16
    assert set(range(6, 10)) <= set(aligner.seen)


def test_strict_names_the_frame_where_the_chosen_face_is_missing():
    a, b = box(12, 20, 16), box(46, 20, 12)
    track = [[a, b]] * 3 + [[b]] + [[a, b]] * 3
    with pytest.raises(MissingFaceError, match="the chosen face is not in frame 3"):
        BoxDetector(FakeAligner(track), strict=True, choice=FaceChoice.of(0)).track(
            _indexed(np.zeros((40, 60, 3), np.uint8) for _ in track))


# ------------------------------------------------------------ filling and smoothing by person
def test_gaps_between_two_appearances_are_held_not_blended():
    a, b = (0, 0, 10, 10), (100, 0, 110, 10)
    sightings = [Sighting(a, 0), None, None, None, None, Sighting(b, 1), None]
    appearances = nearest_appearances(sightings)
    assert appearances.tolist() == [0, 0, 0, 1, 1, 1, 1]
    filled = fill_missing([None if s is None else s.box for s in sightings], "v", appearances)
    np.testing.assert_array_equal(filled, [a, a, a, b, b, b, b])
    # Halfway between two appearances: the later one's (a new shot's first frames are its own).
    assert nearest_appearances([Sighting(a, 0), None, Sighting(b, 1)]).tolist() == [0, 1, 1]
    # One appearance: blended, as before.
    same = fill_missing([a, None, (20, 0, 30, 10)], "v", np.zeros(3, int))
    np.testing.assert_array_equal(same[1], (10, 0, 20, 10))


def test_smoothing_never_averages_two_appearances():
    boxes = np.array([(0, 0, 10, 10)] * 6 + [(100, 0, 110, 10)] * 6, float)
    smoothed = smooth_boxes(boxes, appearances=np.repeat([0, 1], 6))
    np.testing.assert_array_equal(smoothed, boxes)
    assert (smooth_boxes(boxes)[3] != boxes[3]).any()  # across them it would blend


@pytest.mark.parametrize("resize_factor, rotate, crop", [
    (1, False, (0, -1, 0, -1)), (2, False, (0, -1, 0, -1)), (1, True, (5, -1, 7, -1)),
    (2, True, (3, 70, 4, -1))])
def test_a_point_of_the_input_lands_where_preprocessing_puts_that_pixel(
        tmp_path, resize_factor, rotate, crop):
    import cv2

    from ppgan.utils.video import FrameSource, InputError

    x, y = 101, 37
    image = np.zeros((120, 160, 3), np.uint8)
    image[y - 1:y + 2, x - 1:x + 2] = 255  # a 3x3 spot, whose centre survives resizing
    cv2.imwrite(str(tmp_path / "spot.png"), image)
    source = FrameSource(str(tmp_path / "spot.png"), resize_factor=resize_factor, rotate=rotate,
                         crop=crop)
    spot = source.read_frame(0)[..., 0].astype(float)
    rows, cols = np.indices(spot.shape)
    centre = ((cols * spot).sum() / spot.sum(), (rows * spot).sum() / spot.sum())
    np.testing.assert_allclose(source.frame_point(x, y), centre, atol=0.5)
    with pytest.raises(InputError, match="--face_select 160,5 is not inside the 160x120 input"):
        source.frame_point(160, 5)
    if crop[0]:  # the input's top left corner is the cropped frame's top right, cut off
        with pytest.raises(InputError, match="--face_select 0,0 is cut off by --crop"):
            source.frame_point(0, 0)
