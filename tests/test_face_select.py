"""End to end with two people: --face_select picks whose mouth is generated, and the other face
keeps the input's pixels (through one H.264 pass), also while the two swap sides.

The offline MTCNN finds the faces; random generator weights make the mouths noise, which is
easy to tell from the input. One predictor per choice, sharing the loaded networks.
"""
import os

import numpy as np
import pytest

from media import faces_frame, placed_face_box, read_frames, save_random_generator, speech_like, \
    write_video, write_wav

pytestmark = [pytest.mark.ffmpeg, pytest.mark.one_build]  # boxes and pixels: any build

W, H = 320, 240
# Mean absolute difference one H.264 pass leaves on these small, detailed face crops (measured
# 2.8-3.7 on faces passed through unchanged).
FACE_CODEC_TOLERANCE = 5.0
# A generated mouth differs by 15 to 70 (less where the 5-frame box smoothing, which averages
# the coming boxes, leads a moving face).
PASTED = 10.0


def side_by_side(i):
    """Frame i of the still clip: a small face on the left, a larger mirrored one on the right,
    drifting a pixel a frame towards each other."""
    return [(110, 20 + i, 60, False), (170, 150 - i, 30, True)]


def swapping(i):
    """Frame i of the crossing clip: A (larger, above) walks right, B (smaller, below, mirrored)
    walks left; they trade sides at about frame 7."""
    return [(150, 40 + 7 * i, 0, False), (110, 150 - 7 * i, 130, True)]


@pytest.fixture(scope="module")
def media(tmp_path_factory, ffmpeg_build):
    root = tmp_path_factory.mktemp("face_select")
    return {
        "root": root,
        "weights": str(save_random_generator(root / "wav2lip_random.pdparams")),
        "still": str(write_video(root / "two.mp4", [faces_frame(W, H, side_by_side(i))
                                                    for i in range(10)])),
        "swap": str(write_video(root / "swap.mp4", [faces_frame(W, H, swapping(i))
                                                    for i in range(16)])),
        "audio": str(write_wav(root / "speech.wav", speech_like(0.4))),  # 10 frames
        "long_audio": str(write_wav(root / "speech16.wav", speech_like(0.64))),  # 16 frames
    }


@pytest.fixture(scope="module")
def predictor_for(media):
    """Predictors of each choice, sharing one loaded generator and detector."""
    from ppgan.apps import Wav2LipPredictor

    return Wav2LipPredictor(checkpoint_path=media["weights"], face_detector="mtcnn",
                            wav2lip_batch_size=16).with_options


def region_difference(out, source, face, margin=0):
    """Mean absolute difference over the face box (grown by `margin`, and by --pads' 10 rows
    below), or over its mouth (the lower quarter) with margin=None."""
    x1, y1, x2, y2 = face
    if margin is None:
        rows, cols = slice((y1 + 3 * y2) // 4, y2), slice(x1 + 3, x2 - 3)
    else:
        rows = slice(max(0, y1 - margin), y2 + 10 + margin)
        cols = slice(max(0, x1 - margin), x2 + margin)
    return np.abs(out[rows, cols].astype(float) - source[rows, cols]).mean()


def assert_only_chosen_changed(out_path, source_path, placements, chosen):
    """In every frame the chosen face's mouth is generated and the other face is the input's."""
    out, source = read_frames(out_path), read_frames(source_path)
    assert len(out) == len(source)
    for i, (frame, original) in enumerate(zip(out, source)):
        faces = [placed_face_box(*p) for p in placements(i)]
        other = faces[1 - chosen]
        assert region_difference(frame, original, faces[chosen], None) > PASTED, i
        assert region_difference(frame, original, other, 8) < FACE_CODEC_TOLERANCE, i


@pytest.mark.parametrize("choice, chosen", [(None, 1), (0, 0)])  # None: the default, largest
def test_the_chosen_face_alone_is_lip_synced(media, predictor_for, caplog, choice, chosen):
    out = str(media["root"] / f"still_{choice}.mp4")
    with caplog.at_level("INFO"):
        predictor_for(face_select=choice).run(media["still"], media["audio"], out)
    assert "reused from" not in caplog.text  # another choice is another cache entry
    assert_only_chosen_changed(out, media["still"], side_by_side, chosen)


def test_a_point_on_the_command_line_picks_the_face_under_it(media):
    from applications_cli import main  # registered by conftest

    x1, y1, x2, y2 = placed_face_box(*side_by_side(0)[0])
    out = str(media["root"] / "still_point.mp4")
    assert main(["--face", media["still"], "--audio", media["audio"], "--outfile", out,
                 "--checkpoint_path", media["weights"], "--wav2lip_batch_size", "16",
                 "--face_detector", "mtcnn", "--face_select", f"{(x1 + x2) // 2},{y1 + 2}"]) == 0
    assert_only_chosen_changed(out, media["still"], side_by_side, 0)


def test_the_chosen_person_stays_chosen_when_the_two_swap_sides(media, predictor_for):
    """Index 0 is A, on the left in frame 0; from frame 9 on, A is on the right and B left."""
    assert placed_face_box(*swapping(0)[0])[0] < placed_face_box(*swapping(0)[1])[0]
    assert placed_face_box(*swapping(15)[0])[0] > placed_face_box(*swapping(15)[1])[2]
    out = str(media["root"] / "swap_0.mp4")
    predictor_for(face_select=0).run(media["swap"], media["long_audio"], out)
    assert_only_chosen_changed(out, media["swap"], swapping, 0)


@pytest.mark.parametrize("choice, message", [
    ("300,10", "--face_select 300,10: no face in frame 0 is at that point (it shows 2 faces"),
    ((10, 400), "--face_select 10,400 is not inside the 320x240 input frame"),
    (2, "--face_select 2: no frame shows 3 faces (at most 2;"),
])
def test_a_choice_the_video_cannot_meet_is_one_line(media, predictor_for, choice, message):
    from ppgan.utils.errors import UserError

    out = str(media["root"] / "refused.mp4")
    with pytest.raises(UserError) as error:
        predictor_for(face_select=choice, det_cache=False).run(media["still"], media["audio"], out)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert not os.path.exists(out)
