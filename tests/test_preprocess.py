"""tools/preprocess_lrs2.py on synthetic raw videos (one at 30 fps, one with faceless frames):
the layout the dataset reads, 25 fps frames, 16 kHz mono audio, resuming, sharding, errors."""
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import wave

import numpy as np
import pytest

from ppgan.data_preparation import lrs2 as pp
from ppgan.data_preparation.synthetic import make_raw_videos
from ppgan.datasets.wav2lip_dataset import Wav2LipDataset
from ppgan.utils.ffmpeg_tools import ffmpeg_exe

from media import stop_when

pytestmark = pytest.mark.ffmpeg  # run with every ffmpeg build on the machine (conftest.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = 2.0
RATES = [25, 30, 25, 25]  # clip synth00/00001 is 30 fps
FACELESS = {"synth01/00001": [20, 21, 22]}
NAMES = ["synth00/00000", "synth00/00001", "synth01/00000", "synth01/00001"]


def load_cli():
    spec = importlib.util.spec_from_file_location(
        "preprocess_cli", os.path.join(ROOT, "tools", "preprocess_lrs2.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLI = load_cli()


def run_cli(*args):
    return CLI.main([*map(str, args), "--face_detector", "mtcnn", "--batch_size", "8", "--no_progress"])


@pytest.fixture(scope="module")
def raw(tmp_path_factory, ffmpeg_build):  # the videos are made with each ffmpeg build in turn
    root = tmp_path_factory.mktemp("raw")
    make_raw_videos(str(root), num_dirs=2, clips_per_dir=2, seconds=SECONDS, fps=RATES, seed=0,
                    faceless=FACELESS)
    return root


@pytest.fixture(scope="module")
def processed(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    pre, lists = out / "pre", out / "filelists"
    assert run_cli("--data_root", raw, "--preprocessed_root", pre, "--filelists_dir", lists,
                   "--val_fraction", 0.25, "--test_fraction", 0.25) == 0
    return pre, lists


def jpg_ids(clip_dir):
    return sorted(int(n[:-4]) for n in os.listdir(clip_dir) if n.endswith(".jpg"))


def test_layout_frames_and_audio(processed):
    pre, _ = processed
    for name in NAMES:
        clip_dir = os.path.join(pre, *name.split("/"))
        marker = json.load(open(os.path.join(clip_dir, pp.DONE_MARKER)))
        assert marker["frames"] == int(SECONDS * 25), name  # 25 fps, also for the 30 fps video
        assert marker["resampled"] == (name == "synth00/00001")
        missing = sorted(set(range(marker["frames"])) - set(jpg_ids(clip_dir)))
        assert missing == FACELESS.get(name, []), name  # faceless frames leave gaps, no others
        with wave.open(os.path.join(clip_dir, "audio.wav")) as audio:
            assert (audio.getnchannels(), audio.getframerate(), audio.getsampwidth()) == (1, 16000, 2)
            assert audio.getnframes() == SECONDS * 16000  # AAC padding dropped, whatever ffmpeg


def test_crops_hold_the_face(processed):
    import cv2

    pre, _ = processed
    crop = cv2.imread(os.path.join(pre, "synth00", "00000", "10.jpg"))
    # MTCNN's box on a face drawn 115 px wide: a crop of about that size, not the whole frame.
    assert 60 < crop.shape[0] < 150 and 50 < crop.shape[1] < 150


def test_filelists_split_all_clips(processed):
    _, lists = processed
    splits = {s: open(os.path.join(lists, f"{s}.txt")).read().split() for s in pp.SPLITS}
    assert sorted(sum(splits.values(), [])) == NAMES
    assert all(len(splits[s]) == 1 for s in ("val", "test"))


def test_dataset_reads_the_output(processed, tmp_path):
    pre, _ = processed
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("\n".join(NAMES) + "\n")
    for mode, key in (("wav2lip", "x"), ("syncnet", "face")):
        dataset = Wav2LipDataset(str(pre), filelists_path=str(lists), mode=mode, seed=0)
        assert len(dataset) == 4
        for idx in range(4):
            assert np.isfinite(dataset[idx][key]).all()


def test_second_run_skips_finished_clips(raw, processed, caplog):
    pre, lists = processed
    before = {n: os.path.getmtime(os.path.join(pre, *n.split("/"), "0.jpg")) for n in NAMES}
    with caplog.at_level(logging.INFO):
        assert run_cli("--data_root", raw, "--preprocessed_root", pre, "--filelists_dir", lists) == 0
    assert "processed 0 clips, skipped 4 already finished" in caplog.text
    assert before == {n: os.path.getmtime(os.path.join(pre, *n.split("/"), "0.jpg")) for n in NAMES}


def test_half_done_clip_is_redone(raw, tmp_path, caplog):
    pre = tmp_path / "pre"
    job = [j for j in pp.plan_jobs(str(raw), str(pre)) if j.name == "synth00/00000"][0]
    os.makedirs(job.out_dir)
    open(os.path.join(job.out_dir, "999.jpg"), "wb").close()  # left by an interrupted run
    jobs = pp.plan_jobs(str(raw), str(pre))
    detector = pp.build_box_detector("mtcnn", 8)
    with caplog.at_level(logging.INFO):
        summary = pp.preprocess_all(jobs[:1], detector, 8, progress=False)
    assert summary.processed == ["synth00/00000"]
    assert not os.path.exists(os.path.join(job.out_dir, "999.jpg"))
    assert pp.is_finished(job.out_dir) and len(jpg_ids(job.out_dir)) == 50


def test_sigterm_leaves_only_finished_clips(raw, tmp_path):
    pre = tmp_path / "pre"

    def mid_clip():  # a clip's hidden folder exists: the run is writing it
        return any(".part" in name for _, dirs, _ in os.walk(pre) for name in dirs)

    code, err = stop_when([sys.executable, os.path.join(ROOT, "tools", "preprocess_lrs2.py"),
                           "--data_root", str(raw), "--preprocessed_root", str(pre),
                           "--face_detector", "mtcnn", "--no_progress"], mid_clip)
    assert code == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == (
        "preprocess_lrs2: interrupted: finished clips are kept, a rerun resumes")
    for folder, dirs, files in os.walk(pre):
        assert not [name for name in dirs + files if ".part" in name]
        if any(name.endswith(".jpg") for name in files):
            assert pp.DONE_MARKER in files  # a clip folder exists only complete


def test_sharding_is_disjoint_and_complete(raw, tmp_path, monkeypatch, caplog):
    jobs = pp.plan_jobs(str(raw), str(tmp_path))
    shards = [pp.shard(jobs, rank, 3) for rank in range(3)]
    names = [j.name for s in shards for j in s]
    assert sorted(names) == NAMES and len(set(names)) == len(names)
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    assert pp.shard_settings(None, None) == (1, 2)
    pre, lists = tmp_path / "pre", tmp_path / "lists"
    # Rank 1 of 2 (from the environment): only its half, and no filelists yet.
    with caplog.at_level(logging.INFO):
        assert run_cli("--data_root", raw, "--preprocessed_root", pre, "--filelists_dir", lists) == 0
    done = sorted(n for n in NAMES if pp.is_finished(os.path.join(pre, *n.split("/"))))
    assert done == [j.name for j in pp.shard(jobs, 1, 2)] and not lists.exists()
    assert "--write_filelists" in caplog.text
    # Rank 0 finishes last and finds every clip done: it writes the filelists.
    assert run_cli("--data_root", raw, "--preprocessed_root", pre, "--filelists_dir", lists,
                   "--rank", 0, "--world_size", 2) == 0
    listed = sorted(sum((open(lists / f"{s}.txt").read().split() for s in pp.SPLITS), []))
    assert listed == NAMES
    # The separate step rewrites them from the finished clips alone, identically.
    first = {s: (lists / f"{s}.txt").read_text() for s in pp.SPLITS}
    assert CLI.main(["--preprocessed_root", str(pre), "--filelists_dir", str(lists),
                     "--write_filelists"]) == 0
    assert first == {s: (lists / f"{s}.txt").read_text() for s in pp.SPLITS}


def test_split_is_deterministic(tmp_path):
    names = [f"d/{i:03d}" for i in range(40)]
    split = pp.split_entries(names, 0.1, 0.05, seed=0)
    assert split == pp.split_entries(list(reversed(names)), 0.1, 0.05, seed=0)
    assert (len(split["val"]), len(split["test"]), len(split["train"])) == (4, 2, 34)
    assert sorted(sum(split.values(), [])) == names
    tiny = pp.split_entries(["a/1", "a/2", "a/3"], 0.05, 0.05)
    assert all(len(v) == 1 for v in tiny.values())


def test_video_without_audio_fails_alone(tmp_path, caplog):
    data = tmp_path / "data" / "spk"
    data.mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=64x64:d=1:r=25", "-c:v", "libx264", str(data / "mute.mp4")],
                   check=True)
    with caplog.at_level(logging.ERROR):
        code = run_cli("--data_root", tmp_path / "data", "--preprocessed_root", tmp_path / "pre",
                       "--filelists_dir", tmp_path / "lists")
    assert code == 1 and "spk/mute" in caplog.text
    assert not pp.is_finished(str(tmp_path / "pre" / "spk" / "mute"))


@pytest.mark.parametrize("args, message", [
    (["--data_root", "{tmp}/nowhere", "--preprocessed_root", "{tmp}/pre"], "data_root is not a folder"),
    (["--data_root", "{tmp}", "--preprocessed_root", "{tmp}/pre"], "no videos found"),
    (["--data_root", "{tmp}", "--preprocessed_root", "{tmp}/pre", "--rank", "2", "--world_size", "2"],
     "rank"),
    (["--preprocessed_root", "{tmp}/pre"], "--data_root is required"),
    (["--preprocessed_root", "{tmp}/nowhere", "--write_filelists"], "not a folder"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    try:
        code = run_cli(*args)
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
