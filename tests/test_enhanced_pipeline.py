"""--face_enhancement end to end: applications/tools/wav2lip.py with random generator and GPEN
weights saved here (GPEN at 16 px: the pipeline takes the size the weights were made for).

Both placements give a valid video as long as the audio; the face crop differs from the run
without enhancement, while the pixels well outside it stay the input's within one H.264 pass.
"""
import numpy as np
import paddle
import pytest

from media import probe, read_frames, save_random_generator, speech_like, write_video, write_wav
from test_wav2lip_app import BOX, CODEC_TOLERANCE, moving_frames

from ppgan.apps.face_enhancer import square_crop
from ppgan.faceutils.face_enhancement import FaceEnhancement

FRAMES = 15  # 0.6 s of audio at 25 fps
MARGIN = 6  # px around the enhanced crop that resizing may still touch


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from applications_cli import main  # noqa: imported through the path set in conftest

    root = tmp_path_factory.mktemp("enhanced")
    paddle.seed(31)
    gpen = FaceEnhancement.build(16)
    for name, p in gpen.named_parameters():
        if p.size == 1:  # noise strengths, 0 at init: let the encoder features count
            p.set_value(paddle.full([1], 0.5))
    paddle.save(gpen.state_dict(), str(root / "gpen16.pdparams"))
    video = str(write_video(root / "face.mp4", moving_frames(10)))
    audio = str(write_wav(root / "speech.wav", speech_like(FRAMES / 25)))
    common = ["--checkpoint_path", str(save_random_generator(root / "wav2lip.pdparams")),
              "--face", video, "--audio", audio, "--box", *map(str, BOX),
              "--wav2lip_batch_size", "16", "--enhancer_path", str(root / "gpen16.pdparams")]
    outputs = {}
    for name, extra in (("plain", []), ("frame", ["--face_enhancement"]),
                        ("generated", ["--face_enhancement", "--enhance_at", "generated"])):
        outputs[name] = str(root / f"{name}.mp4")
        assert main([*common, *extra, "--outfile", outputs[name]]) == 0
    return {name: read_frames(path) for name, path in outputs.items()}, outputs, video


def crop_and_outside(height, width):
    top, bottom, left, right = BOX
    x1, y1, x2, y2 = square_crop(np.array([left, top, right, bottom]), height, width)
    far = np.ones((height, width), bool)
    far[max(0, y1 - MARGIN):y2 + MARGIN, max(0, x1 - MARGIN):x2 + MARGIN] = False
    return (slice(y1, y2), slice(x1, x2)), far


@pytest.mark.parametrize("placement", ["frame", "generated"])
def test_enhanced_runs_are_full_length_videos(runs, placement):
    frames, paths, _ = runs
    videos, audios, seconds = probe(paths[placement])
    assert (videos, audios) == (1, 1) and abs(seconds - FRAMES / 25) <= 1 / 25 + 0.03
    assert len(frames[placement]) == FRAMES


def test_the_face_crop_changes_and_pixels_far_outside_do_not(runs):
    frames, _, video = runs
    source = read_frames(video)
    crop, far = crop_and_outside(*source[0].shape[:2])
    for i in (0, 7, 12):  # 12: the video plays backward past its 10 frames
        plain, enhanced = frames["plain"][i].astype(float), frames["frame"][i].astype(float)
        assert np.abs(enhanced[crop] - plain[crop]).mean() > 5  # the random GPEN's face is in
        src = source[i if i < 10 else 18 - i].astype(float)
        assert np.abs(enhanced - src)[far].mean() < CODEC_TOLERANCE


def test_paddlegans_placement_changes_only_the_box(runs):
    frames, _, video = runs
    top, bottom, left, right = BOX
    plain, enhanced = frames["plain"][3].astype(float), frames["generated"][3].astype(float)
    assert np.abs(enhanced[top:bottom, left:right] - plain[top:bottom, left:right]).mean() > 5
    outside = np.ones(plain.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert np.abs(enhanced - read_frames(video)[3].astype(float))[outside].mean() < CODEC_TOLERANCE
