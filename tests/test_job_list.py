"""Job lists: `wav2lip.py --jobs jobs.csv` runs many jobs in one process, the networks loaded
once and a video's faces detected once; a broken job is skipped with its reason, a broken list
runs nothing.

Random generator weights and tiny clips: the outputs' mouths are noise, but each job runs the
whole pipeline.
"""
import os
import signal
import sys

import numpy as np
import pytest

from media import (face_frame, leftovers, probe, read_frames, save_random_generator, speech_like,
                   stop_when, write_video, write_wav)

pytestmark = [pytest.mark.ffmpeg, pytest.mark.one_build]  # what they check is no codec's doing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "applications", "tools", "wav2lip.py")
W, H, FACE, FX, FY, SHIFT = 320, 240, 200, 60, 20, 2  # as tests/test_wav2lip_app.py
BOX = (15, 105, 110, 190)  # top, bottom, left, right around the face
FRAMES = 8
CODEC_TOLERANCE = 2.5  # mean absolute difference of one H.264 pass on these frames
DETAIL_TOLERANCE = 5.0  # the same on the photo's most detailed parts (measured 2.2-3.4 there)


@pytest.fixture(scope="module")
def media(tmp_path_factory, ffmpeg_build):
    root = tmp_path_factory.mktemp("jobs")
    frames = [face_frame(W, H, FACE, FX + SHIFT * i, FY) for i in range(FRAMES)]
    return {
        "root": root,
        "weights": str(save_random_generator(root / "wav2lip_random.pdparams")),
        "video": str(write_video(root / "face.mp4", frames)),
        # 9 and 12 output frames (longer than the video), and 5 (shorter)
        "a": str(write_wav(root / "a.wav", speech_like(0.36))),
        "b": str(write_wav(root / "b.wav", speech_like(0.48, 1))),
        "short": str(write_wav(root / "short.wav", speech_like(0.2, 2))),
    }


def write_list(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "jobs.csv"
    path.write_text(text)
    return str(path)


def run_jobs(media, jobs_csv, *flags):
    from applications_cli import main  # registered by conftest

    return main(["--jobs", jobs_csv, "--checkpoint_path", media["weights"],
                 "--wav2lip_batch_size", "16", *flags])


def outside_box_difference(frame, source, box):
    top, bottom, left, right = box
    keep = np.ones(frame.shape[:2], bool)
    keep[top:bottom, left:right] = False
    return np.abs(frame.astype(float) - source.astype(float))[keep].mean()


@pytest.fixture
def counted(monkeypatch):
    """Counts of what a job list should do once: detector and generator loads, and the frames
    of each detection pass."""
    import ppgan.apps.video_faces as video_faces
    import ppgan.apps.wav2lip_predictor as predictor
    from ppgan.faceutils.face_boxes import BoxDetector

    counts = {"detector_loads": 0, "generator_loads": 0, "detected": []}
    aligner, generator_opener, track = (video_faces.FaceAlignment, predictor.generator_opener,
                                        BoxDetector.track)

    def counting_aligner(*args, **kwargs):
        counts["detector_loads"] += 1
        return aligner(*args, **kwargs)

    def counting_generator(*args, **kwargs):
        counts["generator_loads"] += 1
        return generator_opener(*args, **kwargs)

    def counting_track(self, frames):
        frames = list(frames)
        counts["detected"].append(len(frames))
        return track(self, frames)

    monkeypatch.setattr(video_faces, "FaceAlignment", counting_aligner)
    monkeypatch.setattr(predictor, "generator_opener", counting_generator)
    monkeypatch.setattr(BoxDetector, "track", counting_track)
    return counts


def test_a_list_loads_once_detects_a_video_once_and_skips_broken_jobs(media, counted, capsys,
                                                                       caplog):
    """Five jobs on one video, the list in a subfolder naming the media relatively: a missing
    face and a bad `pads` cell fail with their one-line reasons and leave no output; the good
    jobs load the detector and the generator once, and the two whose audio outlasts the video
    share one detection pass (the short one detects its 5 frames). `pads` applies per job:
    its 60 px lower edge widens the pasted box."""
    folder = media["root"] / "lists"
    jobs_csv = write_list(folder, "face,audio,outfile,pads\n"
                                  "../face.mp4,../a.wav,out1.mp4,\n"
                                  "../missing.mp4,../a.wav,out2.mp4,\n"
                                  "../face.mp4,../b.wav,out3.mp4,0 60 0 0\n"
                                  "../face.mp4,../a.wav,out4.mp4,0 x 0 0\n"
                                  "../face.mp4,../short.wav,out5.mp4,\n")
    with caplog.at_level("INFO"):
        code = run_jobs(media, jobs_csv, "--face_detector", "mtcnn", "--no_det_cache",
                        "--blend", "hard")
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 2
    assert counted == {"detector_loads": 1, "generator_loads": 1, "detected": [FRAMES, 5]}
    assert out == [f"wrote {folder / 'out1.mp4'}", f"wrote {folder / 'out3.mp4'}",
                   f"wrote {folder / 'out5.mp4'}", f"{jobs_csv}: 3 of 5 jobs done, 2 failed:",
                   f"line 3: ../missing.mp4 + ../a.wav -> out2.mp4: face file not found: "
                   f"{folder / '../missing.mp4'}",
                   "line 5: ../face.mp4 + ../a.wav -> out4.mp4: argument --pads: invalid int "
                   "value: 'x'"]
    assert "job 2/5 (line 3) ../missing.mp4 + ../a.wav -> out2.mp4: failed: face file not found" \
        in caplog.text
    assert "job 3/5 (line 4) ../face.mp4 + ../b.wav -> out3.mp4: done in" in caplog.text
    assert "reused from an earlier run in this process" in caplog.text
    assert sorted(os.listdir(folder)) == ["jobs.csv", "out1.mp4", "out3.mp4", "out5.mp4"]

    source = read_frames(media["video"])
    for name, frames in (("out1.mp4", 9), ("out3.mp4", 12), ("out5.mp4", 5)):
        assert probe(folder / name)[:2] == (1, 1)
        assert len(read_frames(folder / name)) == frames
    default_pads, low_pads = read_frames(folder / "out1.mp4")[3], read_frames(folder / "out3.mp4")[3]
    # Under the face box padded by the default 10 px (it ends at row 98), inside the one padded
    # by 60 px (148): untouched by the one, generated by the other (measured 2.8 and 28).
    below = (slice(105, 140), slice(FX + SHIFT * 3 + 80, FX + SHIFT * 3 + 100))
    assert np.abs(default_pads[below].astype(float) - source[3][below]).mean() < DETAIL_TOLERANCE
    assert np.abs(low_pads[below].astype(float) - source[3][below]).mean() > 3 * DETAIL_TOLERANCE


def test_a_switch_column_overrides_the_command_line_per_job(media):
    """`static`: `no` turns the command line's --static off for its job; an empty cell keeps it."""
    folder = media["root"] / "static"
    jobs_csv = write_list(folder, "face,audio,outfile,static\n"
                                  f"{media['video']},{media['b']},moving.mp4,no\n"
                                  f"{media['video']},{media['b']},still.mp4,\n")
    assert run_jobs(media, jobs_csv, "--static", "--box", *map(str, BOX)) == 0
    source = read_frames(media["video"])
    moving, still = read_frames(folder / "moving.mp4"), read_frames(folder / "still.mp4")
    assert len(moving) == len(still) == 12
    assert outside_box_difference(moving[7], source[7], BOX) < CODEC_TOLERANCE
    assert outside_box_difference(moving[7], source[0], BOX) > 3 * CODEC_TOLERANCE
    assert max(outside_box_difference(frame, source[0], BOX) for frame in still[::3]) < CODEC_TOLERANCE


@pytest.mark.parametrize("text, message", [
    ("", "is empty: it needs a header line naming the columns face,audio,outfile"),
    ("face,audio,outfile\n", "has a header but no jobs"),
    ("face,outfile\nf.mp4,o.mp4\n", "no column audio"),
    ("face,audio,outfile,colour\nf.mp4,a.wav,o.mp4,red\n", "unknown column 'colour'"),
    ("face,audio,outfile,help\nf.mp4,a.wav,o.mp4,yes\n", "unknown column 'help'"),
    ("face,audio,outfile,checkpoint_path\nf.mp4,a.wav,o.mp4,w.pdparams\n",
     "the column 'checkpoint_path' cannot vary per job (it chooses the loaded networks): give "
     "--checkpoint_path on the command line"),
    ("face,audio,outfile,face_detector\nf.mp4,a.wav,o.mp4,sfd\n", "'face_detector' cannot vary"),
    ("face,audio,outfile,jobs\nf.mp4,a.wav,o.mp4,x.csv\n", "'jobs' cannot vary"),
    ("face,audio,outfile,pads,pads\nf.mp4,a.wav,o.mp4,,\n", "the column 'pads' appears twice"),
    ("face,audio,outfile\nf.mp4,a.wav,o.mp4\n\ng.mp4,a.wav\n", "line 4: 2 cells where the header has 3"),
    ("face,audio,outfile\nf.mp4,a.wav,o.mp4\ng.mp4,a.wav,sub/../o.mp4\n",
     "lines 2 and 3 write the same outfile: sub/../o.mp4"),
    (b"face,audio,outfile\n\xff.mp4,a.wav,o.mp4\n", "is not UTF-8 text"),
    (None, "job list not found"),
])
def test_a_malformed_list_is_one_line_and_runs_nothing(tmp_path, capsys, monkeypatch, text,
                                                       message):
    from applications_cli import main
    from ppgan.apps import Wav2LipPredictor

    def no_job_runs(*_):
        raise AssertionError("a job ran")

    monkeypatch.setattr(Wav2LipPredictor, "run", no_job_runs)
    path = tmp_path / "jobs.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    assert main(["--jobs", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wav2lip.py: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err


def test_weights_that_do_not_load_end_the_list_before_any_job(tmp_path, capsys, monkeypatch):
    from applications_cli import main
    from ppgan.apps import Wav2LipPredictor

    monkeypatch.setattr(Wav2LipPredictor, "run", lambda *_: pytest.fail("a job ran"))
    jobs_csv = write_list(tmp_path, "face,audio,outfile\nf.mp4,a.wav,o.mp4\ng.mp4,a.wav,p.mp4\n")
    assert main(["--jobs", jobs_csv, "--checkpoint_path", str(tmp_path / "none.pdparams")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wav2lip.py: error: ") and "none.pdparams" in err[0]


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "j.csv", "--face", "f.mp4"], "argument --jobs: not allowed with --face"),
    (["--jobs", "j.csv", "--outfile", "o.mp4"], "argument --jobs: not allowed with --outfile"),
    (["--audio", "a.wav"], "the following arguments are required: --face (or --jobs)"),
    ([], "the following arguments are required: --face, --audio (or --jobs)"),
])
def test_jobs_or_the_files_of_one_job(capsys, argv, message):
    from applications_cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and f": error: {message}" in err, err


@pytest.mark.parametrize("command_line, cells, expected", [
    ([], {"pads": "0 20 -5 0", "resize_factor": "2"}, {"pads": [0, 20, -5, 0], "resize_factor": 2}),
    (["--pads", "1", "2", "3", "4", "--fps", "30"], {"pads": ""}, {"pads": [1, 2, 3, 4], "fps": 30.0}),
    (["--static"], {"static": "No"}, {"static": False}),
    (["--static"], {"static": ""}, {"static": True}),
    ([], {"static": "yes", "nosmooth": "1", "blend": "face"},
     {"static": True, "nosmooth": True, "blend": "face"}),
    ([], {"box": "15 105 110 190"}, {"box": [15, 105, 110, 190]}),
    ([], {"pads": "0 x 0 0"}, "argument --pads: invalid int value: 'x'"),
    ([], {"pads": "0 10"}, "argument --pads: expected 4 arguments"),
    ([], {"resize_factor": "0"}, "argument --resize_factor: must be an integer >= 1 (got 0)"),
    ([], {"box": "100 50 0 80"}, "argument --box: must be -1 -1 -1 -1 (off) or top bottom left right"),
    ([], {"blend": "soft"}, "argument --blend: invalid choice: 'soft'"),
    ([], {"static": "maybe"}, "argument --static: must be yes or no (got maybe)"),
    (["--blend", "face"], {"hard_paste": "yes"},
     "argument --hard_paste: is --blend hard; it contradicts --blend face"),
    ([], {"face": ""}, "the face cell is empty"),
])
def test_cells_read_as_their_flags_over_the_command_line(tmp_path, command_line, cells, expected):
    """A cell is parsed by the command's parser, so its checks and messages are the flag's; the
    paths are resolved against the list's folder."""
    from applications_cli import build_parser, parse_args
    from ppgan.apps.job_list import Job, JobFlags
    from ppgan.utils.cli import ArgumentsError

    flags = JobFlags(build_parser(), parse_args(["--jobs", "j.csv", *command_line]), fixed=())
    job = Job(2, {"face": "f.mp4", "audio": "/abs/a.wav", "outfile": "out/o.mp4", **cells})
    if isinstance(expected, str):
        with pytest.raises(ArgumentsError) as error:
            flags.arguments(job, str(tmp_path))
        assert str(error.value).startswith(expected), error.value
        return
    args = flags.arguments(job, str(tmp_path))
    assert (args.face, args.audio, args.outfile) == (str(tmp_path / "f.mp4"), "/abs/a.wav",
                                                     str(tmp_path / "out" / "o.mp4"))
    assert {name: getattr(args, name) for name in expected} == expected


def test_a_video_is_detected_once_for_any_request_past_its_end(media, monkeypatch, tmp_path):
    """Detection reuse, on disk and in memory: the boxes of a pass that reached the video's end
    serve any longer request (audio of another length); a shorter one is detected anew (its
    last frame is a key frame); without the disk cache a predictor's memory still serves."""
    from ppgan.apps.video_faces import DetectionMemory, DetectionOptions, face_boxes
    from ppgan.utils.boxes import XYXYBox
    from ppgan.utils.video import FrameSource

    monkeypatch.setenv("PPGAN_HOME", str(tmp_path))  # an empty disk cache
    detected_frames = []

    class CountingDetector:
        def get_all_detections_with_mouths(self, images):
            detected_frames.append(len(images))
            return [[(XYXYBox(130, 30, 180, 90), None)]] * len(images)

    def boxes_and_detections(count, cache, memory=None):
        memory = memory or DetectionMemory()
        memory.detectors[("sfd", None, False, "cpu", "fp32")] = CountingDetector()  # as if loaded
        before, source = sum(detected_frames), FrameSource(media["video"])
        try:
            boxes = face_boxes(source, count, DetectionOptions(every=1, cache=cache), "cpu", {},
                               memory)
        finally:
            source.close()
        return len(boxes), sum(detected_frames) - before

    assert boxes_and_detections(12, cache=True) == (FRAMES, FRAMES)
    assert boxes_and_detections(30, cache=True) == (FRAMES, 0)  # from disk
    assert boxes_and_detections(FRAMES, cache=True) == (FRAMES, 0)
    assert boxes_and_detections(5, cache=True) == (5, 5)
    assert boxes_and_detections(5, cache=True) == (5, 0)
    entries = sorted(os.listdir(tmp_path / "detections"))
    memory = DetectionMemory()
    assert boxes_and_detections(12, cache=False, memory=memory) == (FRAMES, FRAMES)
    assert boxes_and_detections(30, cache=False, memory=memory) == (FRAMES, 0)
    assert sorted(os.listdir(tmp_path / "detections")) == entries  # nothing stored on disk


def test_with_options_shares_the_networks_and_keeps_them(media):
    from ppgan.apps import Wav2LipPredictor

    predictor = Wav2LipPredictor(checkpoint_path=media["weights"], engine="eager")
    sibling = predictor.with_options(pads=(0, 0, 0, 0), static=True, engine="eager")
    assert sibling.static and sibling.detection.pads == (0, 0, 0, 0)
    assert not predictor.static and predictor.detection.pads == (0, 10, 0, 0)
    assert sibling.generator() is predictor.generator()
    with pytest.raises(ValueError, match="cannot change checkpoint_path, engine: they choose"):
        predictor.with_options(checkpoint_path="other.pdparams", engine="static")


def test_ctrl_c_stops_the_list_and_leaves_no_output_of_the_running_job(media):
    """The first job is written; Ctrl-C while the second is encoding ends the list with 130,
    the second's partial output removed and the third never started."""
    folder = media["root"] / "stopped"
    long_audio = write_wav(media["root"] / "long.wav", speech_like(30.0))
    jobs_csv = write_list(folder, "face,audio,outfile\n"
                                  f"{media['video']},{media['short']},first.mp4\n"
                                  f"{media['video']},{long_audio},second.mp4\n"
                                  f"{media['video']},{media['a']},third.mp4\n")
    command = [sys.executable, CLI, "--jobs", jobs_csv, "--checkpoint_path", media["weights"],
               "--box", *map(str, BOX), "--wav2lip_batch_size", "8"]

    def second_is_encoding():
        return os.path.exists(folder / "first.mp4") and bool(leftovers(folder))

    code, err = stop_when(command, second_is_encoding, signal.SIGINT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "wav2lip.py: interrupted: the running job's output not written"
    assert "job 2/3 (line 3)" in err and "stopped; 1 job(s) done before it, 0 failed" in err
    assert "Traceback" not in err
    assert sorted(os.listdir(folder)) == ["first.mp4", "jobs.csv"]
