"""End to end: applications/tools/wav2lip.py with random generator weights saved by the test.

The generated mouths are noise, but every step runs: detection (the offline MTCNN) or --box,
generation, paste-back, encoding and muxing.
"""
import logging
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from media import (can_mount, face_box_in_frame, face_frame, ffmpeg, leftovers, probe, read_frames,
                   save_random_generator, small_disk, speech_like, write_video, write_wav)

pytestmark = pytest.mark.ffmpeg  # run with every ffmpeg build on the machine (conftest.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "applications", "tools", "wav2lip.py")
W, H, FACE, FX, FY = 320, 240, 200, 60, 20  # frame size, face photo size and position
SHIFT = 2  # pixels the face moves right per frame, so that frames are distinguishable
BOX = (15, 105, 110, 190)  # --box top, bottom, left, right around the face
# Mean absolute difference one H.264 pass (crf 18, 4:2:0) leaves on this detailed photo.
CODEC_TOLERANCE = 2.5
# The same on the mouth crop, the photo's most detailed part (measured 2.8-3.2 there on frames
# passed through unchanged; a generated mouth differs by 20 to 70).
MOUTH_CODEC_TOLERANCE = 4.0


def moving_frames(count, blank=()):
    return [np.full((H, W, 3), 110, np.uint8) if i in blank else face_frame(W, H, FACE, FX + SHIFT * i, FY)
            for i in range(count)]


@pytest.fixture(scope="module")
def media(tmp_path_factory, ffmpeg_build):  # the media are made with each ffmpeg build in turn
    root = tmp_path_factory.mktemp("media")
    os.environ["PPGAN_HOME"] = str(root / "cache")  # the exported static model is cached here
    return {
        "root": root,
        "weights": str(save_random_generator(root / "wav2lip_random.pdparams")),
        "video": str(write_video(root / "face.mp4", moving_frames(20))),
        "audio": str(write_wav(root / "speech.wav", speech_like(1.2))),  # 30 frames at 25 fps
        "photo": str(root / "face.png") if cv2.imwrite(str(root / "face.png"), moving_frames(1)[0]) else None,
    }


def run_cli(media, *args, outfile=None, check=True):
    from applications_cli import main  # noqa: imported through the path set in conftest

    outfile = outfile or str(media["root"] / f"out_{time.monotonic_ns()}.mp4")
    argv = ["--checkpoint_path", media["weights"], "--outfile", outfile, "--wav2lip_batch_size", "16", *args]
    code = main(argv)
    if check:
        assert code == 0
    return code, outfile


def outside_box_difference(out_frame, in_frame, box):
    top, bottom, left, right = box
    keep = np.ones(out_frame.shape[:2], bool)
    keep[top:bottom, left:right] = False
    return np.abs(out_frame.astype(float) - in_frame.astype(float))[keep].mean()


def test_video_with_box_gives_a_full_length_pingpong_video(media):
    _, out = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", *map(str, BOX))
    videos, audios, seconds = probe(out)
    assert (videos, audios) == (1, 1)
    assert abs(seconds - 1.2) <= 1 / 25 + 0.03  # to a frame, plus AAC's priming
    frames, source = read_frames(out), read_frames(media["video"])
    assert len(frames) == 30 and cv2.VideoCapture(out).get(cv2.CAP_PROP_FPS) == 25
    # Outside the face box the frames are the input's, through one H.264 pass; past the
    # video's end (20 frames) it plays backward: output frame 25 shows source frame 13.
    for out_index, source_index in ((0, 0), (10, 10), (19, 19), (25, 13), (29, 9)):
        assert outside_box_difference(frames[out_index], source[source_index], BOX) < CODEC_TOLERANCE
    assert outside_box_difference(frames[25], source[25 % 20], BOX) > 3 * CODEC_TOLERANCE  # not a jump to the start
    top, bottom, left, right = BOX
    inside = np.abs(frames[5][top:bottom, left:right].astype(float) - source[5][top:bottom, left:right]).mean()
    assert inside > 10  # the random generator's mouth really was pasted


def box_region_difference(out_frame, in_frame, rows, cols):
    return np.abs(out_frame[rows, cols].astype(float) - in_frame[rows, cols]).mean()


def spy_on_the_decoders(monkeypatch):
    """The names of the static generator's decoders as they are called, in a list."""
    from ppgan.apps.generator_runner import InferenceGenerator

    decoded = []
    for name in ("decode", "decode_lower"):
        method = getattr(InferenceGenerator, name)
        monkeypatch.setattr(InferenceGenerator, name, lambda self, mel, skips, name=name,
                            method=method: decoded.append(name) or method(self, mel, skips))
    return decoded


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_mouth_blend_keeps_the_upper_half_of_the_face_box(media, monkeypatch):
    """The default blend changes only the lower half of the box, which the generator redraws:
    above it the frames are the input's through one H.264 pass; --blend face changes it all."""
    top, bottom, left, right = BOX
    upper, lower = slice(top, (top + bottom) // 2), slice((top + 3 * bottom) // 4, bottom - 5)
    cols = slice(left, right)
    source = read_frames(media["video"])
    decoded = spy_on_the_decoders(monkeypatch)
    _, mouth = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", *map(str, BOX))
    assert decoded == ["decode_lower"] * 2  # 30 frames in steps of 16, only the rows pasted
    _, face = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", *map(str, BOX),
                      "--blend", "face")
    assert decoded[2:] == ["decode"] * 2
    mouth, face = read_frames(mouth), read_frames(face)
    for i in (0, 7, 19):
        assert box_region_difference(mouth[i], source[i], upper, cols) < CODEC_TOLERANCE
        assert box_region_difference(mouth[i], source[i], lower, slice(left + 10, right - 10)) > 10
        assert box_region_difference(face[i], source[i], upper, cols) > 3 * CODEC_TOLERANCE


class _Frames:
    """A VideoWriter's stand-in that keeps the frames."""

    def __init__(self):
        self.frames = []

    def write(self, frame):
        self.frames.append(frame.copy())


@pytest.mark.one_build  # no video is encoded
@pytest.mark.parametrize("box", [(30, 20, 130, 120), (41, 17, 88, 70), (10, 5, 310, 235)])
def test_the_lower_face_gives_the_frames_the_whole_face_gives(media, box):
    """Pasted with the mouth blend, the faces drawn from LOWER_FIRST_ROW on make the frames the
    whole faces make, in fp32: equal but where the two programs' sums round a level apart
    (they sum in another order on other shapes, 1e-7 apart)."""
    from ppgan.apps.generator_runner import load_generator
    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor, generate
    from ppgan.models.generators.wav2lip import frame_faces

    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (H, W, 3), np.uint8) for _ in range(8)]
    boxes = np.array([box] * len(frames))
    mels = rng.standard_normal((len(frames), 80, 16)).astype(np.float32)
    generator = load_generator(media["weights"], precision="fp32")
    faces = frame_faces(frames, boxes)
    predictor = Wav2LipPredictor(precision="fp32")
    shares = np.zeros(len(frames), np.float32)
    pasted = {}
    for lower_only in (True, False):
        writer = _Frames()
        predictor.paste_and_write(writer, [f.copy() for f in frames],  # pasted in place
                                  generate(generator, mels, faces, None, lower_only), boxes,
                                  False, shares)
        pasted[lower_only] = np.stack(writer.frames).astype(int)
    off = np.abs(pasted[True] - pasted[False])
    assert off.max() <= 1 and (off > 0).mean() < 1e-3
    assert (pasted[True] != np.stack(frames)).any()


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_silence_passthrough_shows_the_source_frames_in_long_silences(media):
    """Speech, a 0.2 s pause (under --silence_min_span 0.4), speech, 1 s of silence, speech: the
    frames inside the long silence are the source's (through one H.264 pass), mouth included;
    the pause and the speech keep the generated mouth."""
    from ppgan.apps.wav2lip_predictor import pingpong_index

    pause, gap = np.zeros(int(0.2 * 16000), np.float32), np.zeros(16000, np.float32)
    speech = [speech_like(0.6, seed) for seed in range(3)]
    audio = write_wav(media["root"] / "gaps.wav",
                      np.concatenate([speech[0], pause, speech[1], gap, speech[2][:6400]]))
    _, out = run_cli(media, "--face", media["video"], "--audio", str(audio), "--box", *map(str, BOX),
                     "--silence_passthrough")
    frames, source = read_frames(out), read_frames(media["video"])
    assert len(frames) == 70  # frames 15-19: the pause; 35-59: the silence, faded over 3 frames
    top, bottom, left, right = BOX
    mouth = (slice((top + 3 * bottom) // 4, bottom - 5), slice(left + 10, right - 10))

    def mouth_difference(i):
        return np.abs(frames[i][mouth].astype(float) - source[pingpong_index(i, 20)][mouth]).mean()

    for i in range(38, 57, 3):
        assert mouth_difference(i) < MOUTH_CODEC_TOLERANCE
        assert np.abs(frames[i].astype(float) - source[pingpong_index(i, 20)]).mean() < CODEC_TOLERANCE
    for i in (5, 17, 30, 65):
        assert mouth_difference(i) > 10
    assert MOUTH_CODEC_TOLERANCE < mouth_difference(36) < mouth_difference(33)  # the fade in


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_photo_input(media):
    _, out = run_cli(media, "--face", media["photo"], "--audio", media["audio"], "--box", *map(str, BOX),
                     "--fps", "20")
    frames = read_frames(out)
    assert len(frames) == 24 and cv2.VideoCapture(out).get(cv2.CAP_PROP_FPS) == 20
    photo = cv2.imread(media["photo"])
    assert max(outside_box_difference(f, photo, BOX) for f in frames) < CODEC_TOLERANCE


@pytest.mark.one_build  # the generator's path: the same with any encoder build
def test_a_photo_is_encoded_once_and_matches_the_per_frame_path(media, monkeypatch):
    """A photo's face features are computed once; the frames equal those of a lossless video of
    the same photo repeated, where every frame goes through the whole network (each generator
    call's float output may differ in the last bits, so up to one level per pixel before H.264)."""
    from ppgan.apps.generator_runner import InferenceGenerator

    encoded = []
    encode_face = InferenceGenerator.encode_face
    monkeypatch.setattr(InferenceGenerator, "encode_face",
                        lambda self, faces: encoded.append(len(faces)) or encode_face(self, faces))
    photo = cv2.imread(media["photo"])
    repeated = str(write_video(media["root"] / "repeated.mkv", [photo] * 30, lossless=True))
    assert np.array_equal(read_frames(repeated)[17], photo)
    box = ["--box", *map(str, BOX)]
    _, from_photo = run_cli(media, "--face", media["photo"], "--audio", media["audio"], *box)
    assert encoded == [1]
    _, from_video = run_cli(media, "--face", repeated, "--audio", media["audio"], *box)
    assert encoded == [1, 16, 14]  # 30 frames in steps of --wav2lip_batch_size 16
    once, per_frame = read_frames(from_photo), read_frames(from_video)
    assert len(once) == len(per_frame) == 30
    top, bottom, left, right = BOX
    for a, b in zip(once, per_frame):
        assert np.abs(a.astype(float) - b).mean() < 0.1
        assert np.abs(a[top:bottom, left:right].astype(float) - photo[top:bottom, left:right]).mean() > 10


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_static_uses_the_first_frame_only(media):
    _, out = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", *map(str, BOX),
                     "--static")
    frames, first = read_frames(out), read_frames(media["video"])[0]
    assert len(frames) == 30
    assert max(outside_box_difference(f, first, BOX) for f in frames[::7]) < CODEC_TOLERANCE


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_resize_rotate_and_crop_change_the_frame_geometry(media):
    _, out = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", "5", "50", "10", "60",
                     "--resize_factor", "2")
    assert read_frames(out)[0].shape[:2] == (H // 2, W // 2)
    _, out = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", "100", "180", "20", "100",
                     "--rotate")
    rotated = cv2.rotate(read_frames(media["video"])[3], cv2.ROTATE_90_CLOCKWISE)
    frame = read_frames(out)[3]
    assert frame.shape[:2] == (W, H)
    assert outside_box_difference(frame, rotated, (100, 180, 20, 100)) < CODEC_TOLERANCE
    _, out = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", "0", "80", "40", "120",
                     "--crop", "10", "200", "30", "-1")
    frame, source = read_frames(out)[2], read_frames(media["video"])[2][10:200, 30:]
    assert frame.shape[:2] == (190, W - 30)
    assert outside_box_difference(frame, source, (0, 80, 40, 120)) < CODEC_TOLERANCE


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_detected_faces_with_smoothing_and_nosmooth(media, caplog):
    for extra in ((), ("--nosmooth",)):
        _, out = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--face_detector", "mtcnn",
                         *extra)
        frames, source = read_frames(out), read_frames(media["video"])
        assert len(frames) == 30
        x1, y1, x2, y2 = face_box_in_frame(FACE, FX + SHIFT * 4, FY)
        # Far from the face the frame is untouched; on the mouth it changed.
        assert np.abs(frames[4][:, :40].astype(float) - source[4][:, :40]).mean() < CODEC_TOLERANCE
        mouth = (slice((y1 + 3 * y2) // 4, y2), slice(x1 + 10, x2 - 10))
        assert np.abs(frames[4][mouth].astype(float) - source[4][mouth]).mean() > 10


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_middle_frames_without_a_face_are_filled(media, caplog):
    video = write_video(media["root"] / "gap.mp4", moving_frames(20, blank=range(8, 12)))
    with caplog.at_level("INFO"):
        run_cli(media, "--face", str(video), "--audio", media["audio"], "--face_detector", "mtcnn")
    assert "no face in 4 of 20 frames" in caplog.text
    code, out = run_cli(media, "--face", str(video), "--audio", media["audio"], "--face_detector", "mtcnn",
                        "--strict_face", check=False)
    assert code == 2 and not os.path.exists(out)


@pytest.fixture(scope="module")
def bad_inputs(media):
    root = media["root"]
    (root / "corrupt.mp4").write_bytes(open(media["video"], "rb").read()[:600])
    (root / "notes.txt").write_text("hello\n")
    blank = root / "blank.png"
    cv2.imwrite(str(blank), np.full((H, W, 3), 110, np.uint8))
    silent = root / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25:d=1", "-c:v", "libx264", silent)
    write_wav(root / "empty.wav", np.zeros(0))
    import paddle
    from ppgan.models import SyncNetColor

    paddle.save(SyncNetColor().state_dict(), str(root / "syncnet.pdparams"))
    return root


@pytest.mark.one_build  # refused before anything is encoded
@pytest.mark.parametrize("case,message", [
    ({"face": "missing.mp4"}, "face file not found"),
    ({"face": "notes.txt"}, "cannot read"),
    ({"face": "corrupt.mp4"}, "cannot read"),
    ({"face": "blank.png", "detector": True}, "no face found"),
    ({"audio": "missing.wav"}, "audio file not found"),
    ({"audio": "silent.mp4"}, "has no audio stream"),
    ({"audio": "empty.wav"}, "contains no audio samples"),
    ({"outdir": "no/such/folder"}, "output folder does not exist"),
    ({"box": ("10", "500", "0", "50")}, "is not inside the 320x240 frame"),
    ({"weights": "missing.pdparams"}, "not found"),
    ({"weights": "syncnet.pdparams"}, "holds SyncNetColor weights, not Wav2Lip"),
])
def test_bad_input_is_one_line_and_leaves_no_output(media, bad_inputs, capsys, case, message):
    root = bad_inputs
    face = str(root / case["face"]) if "face" in case else media["video"]
    audio = str(root / case["audio"]) if "audio" in case else media["audio"]
    outfile = str(root / case.get("outdir", ".") / "bad_out.mp4")
    args = ["--face", face, "--audio", audio]
    args += ["--face_detector", "mtcnn"] if case.get("detector") else ["--box", *case.get("box", map(str, BOX))]
    if "weights" in case:
        args += ["--checkpoint_path", str(root / case["weights"])]
    code, _ = run_cli(media, *args, outfile=outfile, check=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("wav2lip.py: error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not os.path.exists(outfile)
    assert not leftovers(root)


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_unwritable_output_folder(media, capsys):
    # /proc refuses new files even to root, for whom permission bits would not.
    code, _ = run_cli(media, "--face", media["video"], "--audio", media["audio"], "--box", *map(str, BOX),
                      outfile="/proc/o.mp4", check=False)
    assert code == 2 and "output folder is not writable: /proc" in capsys.readouterr().err


@pytest.mark.one_build  # the stop handling, the same with either ffmpeg build
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_leaves_no_partial_output(media, stop):
    """Ctrl-C, a job scheduler's SIGTERM (`timeout`, `docker stop`) and a closed terminal's
    SIGHUP all stop the run promptly with 128 + the signal, no output and nothing hidden."""
    long_audio = write_wav(media["root"] / "long.wav", speech_like(30.0))
    folder = media["root"] / f"stopped_{stop.name}"
    folder.mkdir()
    outfile = folder / "interrupted.mp4"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, CLI, "--face", media["video"], "--audio", str(long_audio),
                             "--outfile", str(outfile), "--checkpoint_path", media["weights"],
                             "--box", *map(str, BOX), "--wav2lip_batch_size", "8"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=folder,
                            # A shell runs background jobs with SIGINT ignored, and Python keeps
                            # an inherited SIG_IGN: give the CLI the default, as in a terminal.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    while "lip sync" not in seen:  # wait until frames are being written
        line = proc.stderr.readline()
        assert line, f"the CLI ended before writing frames: {seen}"
        seen += line
    time.sleep(1.0)
    proc.send_signal(stop)
    try:  # generous: on a loaded 2-core machine one generator chunk can take many seconds
        rest = proc.communicate(timeout=180)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"no exit within 180 s of {stop.name}: " + proc.communicate()[1][-1500:])
    assert proc.returncode == 128 + stop, rest
    assert "Traceback" not in rest and rest.strip().splitlines()[-1] == (
        "wav2lip.py: interrupted: no output written")
    assert os.listdir(folder) == []  # no output, no temporary, nothing in the working folder


@pytest.mark.one_build  # the stop handling, the same with either ffmpeg build
def test_a_stop_during_face_detection_ends_the_frames_read_ahead(media):
    """Detection decodes frames ahead on a thread: a SIGTERM then still ends the run at once,
    the thread finished before the video is closed, with no output and no traceback."""
    video = write_video(media["root"] / "long_face.mp4", moving_frames(25)[::-1] * 24)
    long_audio = write_wav(media["root"] / "long_for_detection.wav", speech_like(24.0))
    folder = media["root"] / "stopped_detecting"
    folder.mkdir()
    outfile = folder / "interrupted.mp4"
    proc = subprocess.Popen([sys.executable, CLI, "--face", str(video), "--audio", str(long_audio),
                             "--outfile", str(outfile), "--checkpoint_path", media["weights"],
                             "--face_detector", "mtcnn", "--no_det_cache", "--det_every", "1",
                             "--det_max_size", "0"],
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
                            cwd=folder)
    seen = ""
    while "face detection" not in seen:
        line = proc.stderr.readline()
        assert line, f"the CLI ended before detecting: {seen}"
        seen += line
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        rest = proc.communicate(timeout=180)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("no exit within 180 s of SIGTERM: " + proc.communicate()[1][-1500:])
    assert "lip sync" not in rest, "the stop landed after detection: make the video longer"
    assert proc.returncode == 128 + signal.SIGTERM, rest
    assert "Traceback" not in rest and rest.strip().splitlines()[-1] == (
        "wav2lip.py: interrupted: no output written")
    assert os.listdir(folder) == []


@pytest.mark.skipif(not can_mount(), reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("free_kb", [8, 128])  # full at once; full while encoding
def test_a_full_disk_says_so_and_leaves_nothing(media, tmp_path, capsys, free_kb):
    with small_disk(tmp_path / "disk", "256k") as disk:
        outfile = disk / "out.mp4"
        filler = disk / "filler"
        filler.write_bytes(b"\0" * ((256 - free_kb) << 10))
        # About 150 kB of video with the whole box's noise pasted (the mouth blend's is smaller).
        long_audio = write_wav(tmp_path / "long.wav", speech_like(4.0))
        code, _ = run_cli(media, "--face", media["video"], "--audio", str(long_audio),
                          "--box", *map(str, BOX), "--blend", "face", outfile=str(outfile),
                          check=False)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1, err
        assert err[-1] == f"wav2lip.py: error: no space left on device: {outfile}"
        assert sorted(os.listdir(disk)) == ["filler"]


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_detection_cache_is_reused_and_invalidated(media, caplog):
    video = str(write_video(media["root"] / "cached.mp4", moving_frames(21)[1:]))  # new content
    args = ("--face", video, "--audio", media["audio"], "--face_detector", "mtcnn")

    def reused(*extra):
        caplog.clear()
        with caplog.at_level("INFO"):
            run_cli(media, *args, *extra)
        return "reused from" in caplog.text

    assert not reused()  # first run detects
    assert reused()  # same video, same settings
    assert not reused("--det_max_size", "300")  # another setting
    assert not reused("--no_det_cache")
    write_video(video, moving_frames(20)[::-1])  # the same file name, other content
    assert not reused()
    assert reused()


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_without_weights_and_offline_the_error_says_where_to_put_them(media, capsys, monkeypatch, tmp_path):
    import ppgan.apps.wav2lip_predictor as predictor

    monkeypatch.setenv("PPGAN_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(predictor, "WAV2LIP_URL", "http://127.0.0.1:9/wav2lip_hq.pdparams")  # nothing listens
    from applications_cli import main

    outfile = str(tmp_path / "o.mp4")
    code = main(["--face", media["video"], "--audio", media["audio"], "--outfile", outfile])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("wav2lip.py: error: cannot download http://127.0.0.1:9/wav2lip_hq.pdparams")
    assert str(tmp_path / "empty_cache" / "wav2lip_hq.pdparams") in err
    assert not os.path.exists(outfile)


def _detect_slowly(detected):
    def slow_detection(stage, done, total):
        detected.append(done)
        time.sleep(0.1)
    return slow_detection


@pytest.mark.one_build  # when a load fails: the same with any encoder build
def test_weights_that_do_not_load_end_the_run_before_the_detection(media, tmp_path):
    from ppgan.apps import Wav2LipPredictor
    from ppgan.utils.weights import WeightsError

    broken = tmp_path / "broken.pdparams"
    broken.write_bytes(b"not a weights file")
    detected = []
    predictor = Wav2LipPredictor(checkpoint_path=str(broken), face_detector="mtcnn",
                                 det_cache=False)
    outfile = tmp_path / "o.mp4"
    with pytest.raises(WeightsError, match="is not a Paddle weights file"):
        predictor.run(media["video"], media["audio"], str(outfile),
                      progress=_detect_slowly(detected))
    assert detected == [] and not outfile.exists()


@pytest.mark.one_build  # when a load fails: the same with any encoder build
def test_programs_that_do_not_open_stop_the_detection_at_once(media, tmp_path):
    """The generator's programs open while the faces are found; a model that does not open
    ends the run with its own one-line error at once, not after the detection (here slowed to
    0.1 s a frame: the opening has 2 s to fail, on a machine busy with other tests)."""
    from ppgan.apps import Wav2LipPredictor
    from ppgan.utils.static_graph import ModelFileError

    exported = tmp_path / "exported"
    exported.mkdir()
    for stage in ("face_encoder", "decoder", "decoder_lower"):
        for suffix in (".json", ".pdiparams"):
            (exported / (stage + suffix)).write_bytes(b"truncated")
    video = write_video(tmp_path / "face.mp4", moving_frames(30))
    detected = []
    predictor = Wav2LipPredictor(checkpoint_path=str(exported), face_detector="mtcnn",
                                 det_cache=False)
    outfile = tmp_path / "o.mp4"
    with pytest.raises(ModelFileError, match="cannot load the inference model .*face_encoder.json"):
        predictor.run(str(video), media["audio"], str(outfile), progress=_detect_slowly(detected))
    assert max(detected, default=0) < 20  # of 30 (1.2 s of audio)
    assert not outfile.exists()


@pytest.mark.one_build  # which thread loads what: the same with any encoder build
def test_exports_run_on_the_calling_thread_before_the_detection(media, tmp_path, monkeypatch):
    """Paddle's eager and tracing state is process-wide: a network's export on first use (its
    tracing, int8's calibration) beside a detector running Paddle on another thread failed
    (int8 with S3FD). So exports run before the detection, on the run's own thread, and only
    the opening of the exported programs goes beside it."""
    import threading

    import ppgan.apps.generator_runner as runner
    from ppgan.apps import Wav2LipPredictor

    monkeypatch.setenv("PPGAN_HOME", str(tmp_path / "cache"))  # nothing exported yet
    events = []

    def recorded(name, function):
        def call(*args, **kwargs):
            events.append((name, threading.current_thread() is threading.main_thread()))
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(runner, "export_stages", recorded("export", runner.export_stages))
    monkeypatch.setattr(runner, "open_stages", recorded("open", runner.open_stages))
    predictor = Wav2LipPredictor(checkpoint_path=media["weights"], face_detector="mtcnn",
                                 det_cache=False)
    detected = []
    predictor.run(media["video"], media["audio"], str(tmp_path / "o.mp4"),
                  progress=lambda stage, done, total: detected.append((stage, len(events))))
    assert events == [("export", True), ("open", False)]
    first_detection = next(count for stage, count in detected if stage == "face detection")
    assert first_detection >= 1  # the export came first


@pytest.mark.parametrize("name, count", [("one_frame.mp4", 1), ("stream.ts", 12), ("clip.mkv", 12)])
def test_frame_source_reads_every_frame_after_a_seek_back(media, name, count):
    """Opening reads frame 0; reading from 0 again used to seek in the container, which a
    one-frame MP4 and an MPEG-TS accept and then return nothing from ("no face found")."""
    from ppgan.utils.video import FrameSource

    path = media["root"] / name
    write_video(path, moving_frames(count))
    source = FrameSource(str(path))
    sequential = list(source.frames(0))
    assert len(sequential) == count
    for start in (count - 1, 0, count // 2, 0):
        again = list(source.frames(start, start + 2))
        assert len(again) == min(2, count - start)
        for offset, frame in enumerate(again):
            np.testing.assert_array_equal(frame, sequential[start + offset])
    source.close()


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_an_av1_video_is_decoded_by_pyav(media, monkeypatch, caplog):
    """OpenCV 4's FFmpeg has no AV1 software decoder; such a video is read through PyAV. Where
    this OpenCV decodes AV1 (OpenCV 5), it is made to read nothing from it, as OpenCV 4 does."""
    av1 = media["root"] / "face_av1.webm"
    ffmpeg("-i", media["video"], "-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "30", av1)
    if cv2.VideoCapture(str(av1)).read()[0]:
        opencv_capture = cv2.VideoCapture

        class WithoutAV1:  # opens the file, but no frame comes out of it
            def __init__(self, path, *args):
                self._capture, self._blind = opencv_capture(path, *args), str(path) == str(av1)

            def read(self):
                return (False, None) if self._blind else self._capture.read()

            def __getattr__(self, name):
                return getattr(self._capture, name)
        monkeypatch.setattr(cv2, "VideoCapture", WithoutAV1)
    assert not cv2.VideoCapture(str(av1)).read()[0]  # the case the fallback is for
    with caplog.at_level(logging.INFO, logger="ppgan"):
        _, out = run_cli(media, "--face", str(av1), "--audio", media["audio"],
                         "--box", *map(str, BOX))
    assert "decoding with PyAV" in caplog.text
    frames, source = read_frames(out), read_frames(media["video"])
    assert len(frames) == 30
    assert outside_box_difference(frames[3], source[3], BOX) < 3 * CODEC_TOLERANCE  # AV1 + H.264


def _increasing_reports(reports, stage):
    """The (done, total) a stage reported, checked to count up from 0 to its total."""
    counts = [(done, total) for name, done, total in reports if name == stage]
    assert counts, f"no {stage} reports"
    dones = [done for done, _ in counts]
    assert dones[0] == 0 and dones == sorted(dones)
    assert {total for _, total in counts} == {dones[-1]}  # one total, reached at the end
    return dones[-1]


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_progress_hook_follows_detection_then_lip_sync(media):
    from ppgan.apps import Wav2LipPredictor

    reports = []
    predictor = Wav2LipPredictor(checkpoint_path=media["weights"], face_detector="mtcnn",
                                 det_cache=False, wav2lip_batch_size=16)
    predictor.run(media["photo"], media["audio"], str(media["root"] / "progress.mp4"),
                  progress=lambda *report: reports.append(report))
    assert _increasing_reports(reports, "face detection") == 1  # a photo: one frame
    assert _increasing_reports(reports, "lip sync") == 30  # the audio's 1.2 s at 25 fps
    stages = [name for name, _, _ in reports]
    assert stages.index("lip sync") > max(i for i, s in enumerate(stages) if s == "face detection")
    assert [done for name, done, _ in reports if name == "lip sync"] == [0, 16, 30]  # by step


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_detection_progress_of_a_video_shorter_than_the_audio_ends_at_its_last_frame(media):
    from ppgan.apps.video_faces import DetectionMemory, DetectionOptions, face_boxes
    from ppgan.utils.video import FrameSource

    reports = []
    source = FrameSource(media["video"])
    try:
        boxes = face_boxes(source, 30, DetectionOptions(detector="mtcnn", cache=False), "cpu", {},
                           DetectionMemory(), progress=lambda *report: reports.append(report))
    finally:
        source.close()
    assert len(boxes) == 20
    assert _increasing_reports(reports, "face detection") == 20
    assert len(reports) == 21  # 0, then after each frame


@pytest.mark.one_build  # geometry, boxes or decoding: the same with any encoder build
def test_siblings_choose_their_detector_and_enhancer_and_share_each_one_loaded(media, tmp_path):
    """What the web app's runs do: `with_options` siblings with another face detector or
    enhancer share the generator, and each enhancer (by name and weights) is loaded once."""
    import paddle

    from ppgan.apps import Wav2LipPredictor
    from ppgan.faceutils.face_enhancement import FaceEnhancement
    from ppgan.utils.video import InputError

    gpen_weights = []
    for seed in (1, 2):  # GPEN at 16 px: the enhancer takes the size its weights were made for
        paddle.seed(seed)
        gpen_weights.append(str(tmp_path / f"gpen16_{seed}.pdparams"))
        paddle.save(FaceEnhancement.build(16).state_dict(), gpen_weights[-1])
    base = Wav2LipPredictor(checkpoint_path=media["weights"], engine="eager")
    enhanced = [base.with_options(face_detector="mtcnn", face_enhancement=True,
                                  enhancer_path=gpen_weights[0], blend=blend)
                for blend in ("mouth", "face")]
    other = base.with_options(face_enhancement=True, enhancer_path=gpen_weights[1])
    assert enhanced[0].detection.detector == "mtcnn" and enhanced[1].blend == "face"
    assert (enhanced[0].generator() is enhanced[1].generator() is other.generator()
            is base.generator())
    assert enhanced[0].enhancer() is enhanced[1].enhancer()
    assert other.enhancer() is not enhanced[0].enhancer() and base.enhancer() is None
    with pytest.raises(InputError, match="face_detector"):
        base.with_options(face_detector="yolo")
