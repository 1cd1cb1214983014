"""Every numeric setting is checked at the edge: a flag, a predictor argument or a config value
that its setting does not allow is one line naming it (exit status 2 for the tools), never a
traceback or a silent surprise later."""
import importlib.util
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from media import face_frame, save_random_generator, speech_like, write_wav

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = {"wav2lip": ("applications", "tools", "wav2lip.py"), "main": ("tools", "main.py")}
TOOLS.update({name: ("tools", f"{name}.py") for name in (
    "preprocess_lrs2", "gen_videos_from_filelist", "eval_lipsync", "make_synthetic_data",
    "benchmark_wav2lip")})
# What each tool needs besides the flag under test (parsing alone never opens these files).
REQUIRED = {
    "wav2lip": ["--face", "face.png", "--audio", "speech.wav"],
    "main": ["-c", "configs/wav2lip.yaml"],
    "preprocess_lrs2": ["--data_root", "raw", "--preprocessed_root", "pre"],
    "gen_videos_from_filelist": ["--filelist", "f.txt", "--results_dir", "r", "--data_root", "d",
                                 "--checkpoint_path", "w.pdparams"],
    "eval_lipsync": ["v.mp4", "--syncnet_path", "s.pdparams"],
    "make_synthetic_data": ["--out_dir", "out"],
    "benchmark_wav2lip": [],
}
W, H = 320, 240


def _tool(name):
    module_name = f"flags_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, os.path.join(ROOT, *TOOLS[name]))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return sys.modules[module_name]


def _one_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------- the parsers
BAD_FLAGS = [
    # applications/tools/wav2lip.py
    ("wav2lip", ["--fps", "0"], "--fps", "must be a number in (0, 1000] (got 0)"),
    ("wav2lip", ["--fps", "nan"], "--fps", "(got nan)"),
    ("wav2lip", ["--fps", "inf"], "--fps", "(got inf)"),
    ("wav2lip", ["--fps", "1e9"], "--fps", "must be a number in (0, 1000] (got 1e9)"),
    ("wav2lip", ["--fps", "-25"], "--fps", "must be a number in (0, 1000]"),
    ("wav2lip", ["--fps", "abc"], "--fps", "must be a number in (0, 1000] (got abc)"),
    ("wav2lip", ["--wav2lip_batch_size", "0"], "--wav2lip_batch_size",
     "must be an integer >= 1 (got 0)"),
    ("wav2lip", ["--wav2lip_batch_size", "2.5"], "--wav2lip_batch_size", "(got 2.5)"),
    ("wav2lip", ["--face_det_batch_size", "-1"], "--face_det_batch_size", "an integer >= 1"),
    ("wav2lip", ["--resize_factor", "0"], "--resize_factor", "must be an integer >= 1 (got 0)"),
    ("wav2lip", ["--det_every", "0"], "--det_every", "an integer >= 1"),
    ("wav2lip", ["--det_max_size", "10"], "--det_max_size",
     "0 (full resolution) or an integer >= 64"),
    ("wav2lip", ["--det_max_size", "-1"], "--det_max_size", "(got -1)"),
    ("wav2lip", ["--crop", "50", "20", "0", "-1"], "--crop", "(got 50 20 0 -1)"),
    ("wav2lip", ["--crop", "-5", "-1", "0", "-1"], "--crop", "top and left >= 0"),
    ("wav2lip", ["--crop", "0", "-1", "30", "30"], "--crop", "greater than top and left"),
    ("wav2lip", ["--crop", "0", "-3", "0", "-1"], "--crop", "(got 0 -3 0 -1)"),
    ("wav2lip", ["--box", "100", "50", "0", "80"], "--box",
     "0 <= top < bottom and 0 <= left < right"),
    ("wav2lip", ["--box", "-1", "50", "0", "80"], "--box", "-1 -1 -1 -1 (off)"),
    ("wav2lip", ["--box", "0", "50", "-5", "80"], "--box", "(got 0 50 -5 80)"),
    ("wav2lip", ["--pads", "0", "x", "0", "0"], "--pads", "invalid int value"),
    ("wav2lip", ["--face_select", "biggest"], "--face_select",
     "must be largest, a face's index from the left (an integer >= 0), or a point X,Y on it "
     "(pixels >= 0) (got biggest)"),
    ("wav2lip", ["--face_select", "-1"], "--face_select", "(got -1)"),
    ("wav2lip", ["--face_select", "1.5"], "--face_select", "(got 1.5)"),
    ("wav2lip", ["--face_select", "120,"], "--face_select", "(got 120,)"),
    ("wav2lip", ["--face_select", "120,-4"], "--face_select", "(got 120,-4)"),
    ("wav2lip", ["--face_select", "1,2,3"], "--face_select", "(got 1,2,3)"),
    ("wav2lip", ["--face_select", "1", "--reference_detection"], "--face_select",
     "contradicts --reference_detection"),
    ("wav2lip", ["--face_select", "largest", "--box", "0", "10", "0", "10"], "--face_select",
     "contradicts --box"),
    # tools/main.py
    ("main", ["--seed", "-1"], "--seed", "must be an integer from 0 to 2**64 - 1 (got -1)"),
    ("main", ["--seed", str(2 ** 64)], "--seed", "2**64 - 1"),
    # tools/preprocess_lrs2.py
    ("preprocess_lrs2", ["--batch_size", "0"], "--batch_size", "an integer >= 1 (got 0)"),
    ("preprocess_lrs2", ["--det_max_size", "32"], "--det_max_size", "an integer >= 64 (got 32)"),
    ("preprocess_lrs2", ["--rank", "-1"], "--rank", "an integer >= 0 (got -1)"),
    ("preprocess_lrs2", ["--world_size", "0"], "--world_size", "an integer >= 1 (got 0)"),
    ("preprocess_lrs2", ["--val_fraction", "1"], "--val_fraction", "a number in [0, 1) (got 1)"),
    ("preprocess_lrs2", ["--test_fraction", "nan"], "--test_fraction", "(got nan)"),
    ("preprocess_lrs2", ["--val_fraction", "0.6", "--test_fraction", "0.5"],
     "--val_fraction and --test_fraction", "below 1 together"),
    ("preprocess_lrs2", ["--split_seed", "-3"], "--split_seed", "an integer from 0"),
    # tools/gen_videos_from_filelist.py
    ("gen_videos_from_filelist", ["--wav2lip_batch_size", "0"], "--wav2lip_batch_size",
     "an integer >= 1"),
    ("gen_videos_from_filelist", ["--face_det_batch_size", "0"], "--face_det_batch_size",
     "an integer >= 1"),
    # tools/eval_lipsync.py
    ("eval_lipsync", ["--vshift", "-1"], "--vshift", "an integer >= 0 (got -1)"),
    ("eval_lipsync", ["--batch_size", "0"], "--batch_size", "an integer >= 1 (got 0)"),
    ("eval_lipsync", ["--facedet_scale", "0"], "--facedet_scale", "a number > 0 (got 0)"),
    ("eval_lipsync", ["--crop_scale", "-0.5"], "--crop_scale", "a number >= 0 (got -0.5)"),
    ("eval_lipsync", ["--min_track", "-1"], "--min_track", "an integer >= 0"),
    ("eval_lipsync", ["--min_face_size", "-1"], "--min_face_size", "an integer >= 0"),
    ("eval_lipsync", ["--num_failed_det", "-1"], "--num_failed_det", "an integer >= 0"),
    # tools/make_synthetic_data.py
    ("make_synthetic_data", ["--num_dirs", "0"], "--num_dirs", "an integer >= 1 (got 0)"),
    ("make_synthetic_data", ["--clips_per_dir", "0"], "--clips_per_dir", "an integer >= 1"),
    ("make_synthetic_data", ["--seconds", "inf"], "--seconds", "(got inf)"),
    ("make_synthetic_data", ["--seconds", "0.01"], "--seconds", "a number >= 0.2"),
    ("make_synthetic_data", ["--seed", "-1"], "--seed", "an integer from 0"),
    ("make_synthetic_data", ["--img_size", "8"], "--img_size", "an integer >= 16 (got 8)"),
    ("make_synthetic_data", ["--frame_size", "16"], "--frame_size", "an integer >= 32 (got 16)"),
    ("make_synthetic_data", ["--fps", "25", "0"], "--fps", "a number > 0 (got 0)"),
    ("make_synthetic_data", ["--val_fraction", "-0.1"], "--val_fraction", "a number in [0, 1)"),
    ("make_synthetic_data", ["--val_fraction", "0.5", "--test_fraction", "0.5"],
     "--val_fraction and --test_fraction",
     "below 1 together, so that train keeps some clips (got 0.5 + 0.5)"),
    # tools/benchmark_wav2lip.py
    ("benchmark_wav2lip", ["--batch", "0"], "--batch", "an integer >= 1 (got 0)"),
    ("benchmark_wav2lip", ["--clips", "10,0"], "--clips",
     "integers >= 1, comma-separated (got 10,0)"),
    ("benchmark_wav2lip", ["--clips", "ten"], "--clips", "(got ten)"),
    ("benchmark_wav2lip", ["--clip_1080p", "-10"], "--clip_1080p", "an integer >= 0 (got -10)"),
    ("benchmark_wav2lip", ["--det_max_size", "1"], "--det_max_size", "an integer >= 64 (got 1)"),
    ("wav2lip", ["--color_match", "--hard_paste"], "--color_match", "needs a feathered blend"),
    ("wav2lip", ["--precision", "int4"], "--precision", "invalid choice: 'int4'"),
    ("wav2lip", ["--fp16", "--precision", "fp32"], "--fp16", "contradicts --precision fp32"),
]


@pytest.mark.parametrize("tool, flags, flag, message", BAD_FLAGS,
                         ids=[f"{t}{''.join(f)}" for t, f, _, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_naming_it_exit_2(tool, flags, flag, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _tool(tool).parse_args(REQUIRED[tool] + flags)
    line = _one_line(capsys)
    assert exit_.value.code == 2
    assert f"error: argument {flag}: " in line or f"error: arguments {flag}: " in line, line
    assert message in line, line


@pytest.mark.parametrize("tool, flags", [
    ("wav2lip", ["--det_max_size", "0", "--box", "-1", "-1", "-1", "-1", "--crop", "10", "-1",
                 "5", "300", "--pads", "-5", "20", "-3", "0", "--fps", "29.97",
                 "--det_every", "1"]),
    ("wav2lip", ["--box", "0", "10", "0", "10", "--det_max_size", "64", "--resize_factor", "3"]),
    ("wav2lip", ["--face_select", "0"]),
    ("wav2lip", ["--face_select", "12.5, 40"]),
    ("wav2lip", ["--face_select", "largest", "--det_every", "1"]),
    ("preprocess_lrs2", ["--val_fraction", "0", "--test_fraction", "0.99", "--rank", "0",
                         "--world_size", "2", "--det_max_size", "360"]),
    ("make_synthetic_data", ["--fps", "25", "29.97", "--seconds", "0.2", "--val_fraction", "0.5"]),
    ("benchmark_wav2lip", ["--clips", "", "--clip_1080p", "0", "--det_max_size", "0"]),
    ("eval_lipsync", ["--vshift", "0", "--min_track", "0", "--crop_scale", "0"]),
])
def test_edge_values_that_mean_something_are_accepted(tool, flags):
    _tool(tool).parse_args(REQUIRED[tool] + flags)


def test_defaults_are_unchanged():
    args = _tool("wav2lip").parse_args(REQUIRED["wav2lip"])
    assert (args.fps, list(args.pads), args.face_det_batch_size) == (25.0, [0, 10, 0, 0], 16)
    assert (args.wav2lip_batch_size, args.resize_factor) == (128, 1)
    assert (list(args.crop), list(args.box)) == ([0, -1, 0, -1], [-1, -1, -1, -1])
    assert (args.det_max_size, args.det_every, args.face_select) == (360, 5, None)
    assert (args.precision, args.fp16) == ("auto", False)
    args = _tool("preprocess_lrs2").parse_args(REQUIRED["preprocess_lrs2"])
    assert (args.batch_size, args.det_max_size, args.rank, args.world_size) == (32, 0, None, None)
    assert (args.val_fraction, args.test_fraction, args.split_seed) == (0.05, 0.05, 0)
    args = _tool("benchmark_wav2lip").parse_args([])
    assert (args.clips, args.clip_1080p, args.batch, args.det_max_size) == ([10, 60], 10, 128, 360)


# ---------------------------------------------------------------------- the Python API
@pytest.mark.parametrize("kwargs, message", [
    ({"fps": 0}, "fps: must be a number in (0, 1000] (got 0)"),
    ({"fps": math.nan}, "fps: must be a number in (0, 1000] (got nan)"),
    ({"wav2lip_batch_size": 0}, "wav2lip_batch_size: must be an integer >= 1 (got 0)"),
    ({"face_det_batch_size": 1.5}, "face_det_batch_size: must be an integer >= 1 (got 1.5)"),
    ({"resize_factor": 0}, "resize_factor: must be an integer >= 1 (got 0)"),
    ({"det_every": True}, "det_every: must be an integer >= 1 (got True)"),
    ({"det_max_size": 20},
     "det_max_size: must be 0 (full resolution) or an integer >= 64 (got 20)"),
    ({"cpu_threads": -1}, "cpu_threads: must be an integer >= 0 (got -1)"),
    ({"crop": (50, 20, 0, -1)}, "crop: must be"),
    ({"crop": (0, -1, 0)}, "crop: must be"),
    ({"box": (-1, 5, 0, 5)}, "box: must be -1 -1 -1 -1 (off)"),
    ({"pads": (0, 10, 0)}, "pads: must be four integers"),
    ({"face_detector": "s3fd"}, "face_detector: must be one of sfd, blazeface, mtcnn (got s3fd)"),
    ({"face_select": "left"}, "face_select: must be largest, a face's index from the left"),
    ({"face_select": (1, 2, 3)}, "face_select: must be largest"),
    ({"face_select": -2}, "face_select: must be largest"),
    ({"face_select": 1, "reference_detection": True},
     "face_select 1 contradicts reference_detection"),
    ({"face_select": "largest", "box": (0, 10, 0, 10)}, "face_select largest contradicts box"),
    ({"color_match": True, "blend": "hard"}, "color_match needs a feathered blend"),
    ({"precision": "int4"}, "precision: must be one of auto, fp32, bf16, int8, fp16 (got int4)"),
    ({"precision": "bf16", "fp16": True}, "fp16 contradicts precision 'bf16'"),
])
def test_predictor_arguments_are_checked_on_construction(kwargs, message):
    from ppgan.apps import Wav2LipPredictor
    from ppgan.utils.video import InputError

    with pytest.raises(InputError) as error:
        Wav2LipPredictor(**kwargs)
    assert str(error.value).startswith(message), error.value


def test_predictor_takes_numpy_numbers():
    from ppgan.apps import Wav2LipPredictor

    predictor = Wav2LipPredictor(fps=np.float32(30), wav2lip_batch_size=np.int64(8),
                                 pads=np.zeros(4, int))
    assert (predictor.fps, predictor.batch_size, predictor.detection.pads) == (30.0, 8, (0, 0, 0, 0))


# ------------------------------------------------- wav2lip.py on real media: the frame decides
@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("flags")
    photo = str(root / "face.png")
    cv2.imwrite(photo, face_frame(W, H, 200, 60, 20))
    return {"root": root, "photo": photo,
            "audio": str(write_wav(root / "speech.wav", speech_like(0.5))),
            "weights": str(save_random_generator(root / "wav2lip_random.pdparams"))}


def _run_wav2lip(media, *flags):
    from applications_cli import main  # registered by conftest

    outfile = str(media["root"] / "out.mp4")
    argv = ["--face", media["photo"], "--audio", media["audio"], "--outfile", outfile,
            "--checkpoint_path", media["weights"], "--engine", "eager", *flags]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    assert not os.path.exists(outfile)
    return code


@pytest.mark.parametrize("flags, message", [
    (["--fps", "0"], "argument --fps: must be a number in (0, 1000] (got 0)"),
    (["--wav2lip_batch_size", "0"],
     "argument --wav2lip_batch_size: must be an integer >= 1 (got 0)"),
    (["--resize_factor", "0"], "argument --resize_factor: must be an integer >= 1 (got 0)"),
    (["--crop", "0", "300", "0", "-1"],
     "--crop 0 300 0 -1 (top bottom left right) is not inside the 320x240 frame"),
    (["--crop", "0", "-1", "320", "-1"], "is not inside the 320x240 frame"),
    (["--resize_factor", "2", "--crop", "0", "-1", "0", "200"], "is not inside the 160x120 frame"),
    (["--resize_factor", "300"], "--resize_factor 300 leaves no pixels of the 320x240 frame"),
    (["--resize_factor", "2", "--box", "0", "200", "0", "100"], "is not inside the 160x120 frame"),
    (["--face_detector", "mtcnn", "--pads", "-40", "-40", "0", "0"], "--pads -40 -40 0 0"),
])
def test_wav2lip_cli_refuses_in_one_line(media, capsys, flags, message):
    assert _run_wav2lip(media, *flags) == 2
    assert message in _one_line(capsys)


def test_negative_pads_that_leave_a_face_are_fine(media):
    from applications_cli import main

    outfile = str(media["root"] / "shrunk.mp4")
    assert main(["--face", media["photo"], "--audio", media["audio"], "--outfile", outfile,
                 "--checkpoint_path", media["weights"], "--engine", "eager", "--face_detector",
                 "mtcnn", "--pads", "-5", "5", "-5", "-5"]) == 0
    assert os.path.isfile(outfile)


def test_fps_0_on_a_photo_end_to_end_is_one_line(media):
    result = subprocess.run([sys.executable, os.path.join(ROOT, *TOOLS["wav2lip"]), "--face",
                             media["photo"], "--audio", media["audio"], "--fps", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("error: argument --fps: must be a number in (0, 1000] (got 0)")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --------------------------------------------------------------------- tools/main.py configs
CONFIG = os.path.join(ROOT, "configs", "wav2lip.yaml")
HQ_CONFIG = os.path.join(ROOT, "configs", "wav2lip_hq.yaml")
SYNCNET_CONFIG = os.path.join(ROOT, "configs", "syncnet.yaml")


@pytest.mark.parametrize("config, option, message", [
    (CONFIG, "dataset.train.batch_size=0",
     "dataset.train.batch_size: must be an integer >= 1 (got 0)"),
    (CONFIG, "model.syncnet_wt=1.5", "model.syncnet_wt: must be a number in [0, 1] (got 1.5)"),
    (CONFIG, "total_iters=-1", "total_iters: must be an integer >= 1 (got -1)"),
    (CONFIG, "total_iters=2.5", "total_iters: must be an integer >= 1 (got 2.5)"),
    (CONFIG, "dataset.test.num_workers=-2",
     "dataset.test.num_workers: must be an integer >= 0 (got -2)"),
    (CONFIG, "dataset.train.img_size=64", "dataset.train.img_size: must be 96"),
    (CONFIG, "dataset.train.mel_step_size=20", "dataset.train.mel_step_size: must be 16"),
    (CONFIG, "model.syncnet_T=3", "model.syncnet_T: must be 5"),
    (CONFIG, "dataset.train.fps=0", "dataset.train.fps: must be a number > 0 (got 0)"),
    (CONFIG, "dataset.train.samples_per_epoch=-3",
     "dataset.train.samples_per_epoch: must be null or an integer >= 1 (got -3)"),
    (CONFIG, "dataset.train.seed=-1", "dataset.train.seed: must be null or an integer from 0"),
    (CONFIG, "model.max_eval_steps=0",
     "model.max_eval_steps: must be null or an integer >= 1 (got 0)"),
    (CONFIG, "model.sync_threshold=-0.5", "model.sync_threshold: must be a number >= 0 (got -0.5)"),
    (CONFIG, "model.syncnet_wt_switch=.nan",
     "model.syncnet_wt_switch: must be a number in [0, 1] (got nan)"),
    (CONFIG, "model.expert_bn_train_mode=maybe",
     "model.expert_bn_train_mode: must be true or false (got maybe)"),
    (CONFIG, "lr_scheduler.learning_rate=0",
     "lr_scheduler.learning_rate: must be a number > 0 (got 0)"),
    (CONFIG, "lr_scheduler.learning_rate=.inf",
     "lr_scheduler.learning_rate: must be a number > 0 (got inf)"),
    (CONFIG, "lr_scheduler.decay_epochs=-1", "lr_scheduler.decay_epochs: must be an integer >= 0"),
    (CONFIG, "optimizer.optimizer_G.beta1=1",
     "optimizer.optimizer_G.beta1: must be a number in [0, 1) (got 1)"),
    (CONFIG, "log_config.interval=0", "log_config.interval: must be an integer >= 1 (got 0)"),
    (CONFIG, "log_config.visual_interval=-500",
     "log_config.visual_interval: must be null or an integer >= 0 (got -500)"),
    (CONFIG, "validate.interval=abc",
     "validate.interval: must be null or an integer >= 0 (got abc)"),
    (CONFIG, "snapshot_config.interval=2.5",
     "snapshot_config.interval: must be null or an integer >= 0"),
    (HQ_CONFIG, "model.disc_wt=0.99",
     "model.disc_wt: must be at most 1 - model.syncnet_wt_switch = 0.97, so that"),
    (HQ_CONFIG, "model.syncnet_wt=0.95",
     "model.disc_wt: must be at most 1 - model.syncnet_wt = 0.05, so that"),
    (SYNCNET_CONFIG, "dataset.test.syncnet_T=4", "dataset.test.syncnet_T: must be 5"),
])
def test_bad_config_override_is_one_line_before_training(tmp_path, capsys, config, option, message):
    from tools_main import main  # registered by conftest

    out = tmp_path / "out"
    assert main(["-c", config, "-o", f"output_dir={out}", option]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"main.py: error: {message}"), line
    assert not out.exists()  # refused before the run folder, the data or the nets


def test_bad_value_in_the_config_file(tmp_path, capsys):
    from tools_main import main

    with open(CONFIG) as handle:
        cfg = yaml.safe_load(handle)
    cfg["dataset"]["train"]["batch_size"] = 0
    cfg["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["-c", str(path)]) == 2
    assert _one_line(capsys).startswith(
        "main.py: error: dataset.train.batch_size: must be an integer >= 1 (got 0)")


def test_checked_config_values_are_converted():
    from ppgan.utils.config import get_config

    cfg = get_config(CONFIG, ["dataset.train.batch_size='4'", "lr_scheduler.learning_rate=1",
                              "validate.interval=null", "total_iters=2e8"])
    assert cfg.dataset.train.batch_size == 4 and cfg.lr_scheduler.learning_rate == 1.0
    assert isinstance(cfg.lr_scheduler.learning_rate, float) and cfg.validate.interval is None
    assert cfg.total_iters == 200000000 and isinstance(cfg.total_iters, int)


def test_bad_config_override_end_to_end_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, *TOOLS["main"]), "-c", CONFIG, "-o",
                             f"output_dir={tmp_path / 'out'}", "dataset.train.batch_size=0"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "main.py: error: dataset.train.batch_size: must be an integer >= 1 (got 0)"), result.stderr
