"""LSE-D / LSE-C evaluation: the Paddle SyncNet, MFCC, scores, decoding paths, CLIs, PSNR/SSIM.

The PyTorch SyncNet below is written independently from the layer list of syncnet_python's
``SyncNetModel.S`` (module names included), saved as a bare state dict like ``syncnet_v2.model``,
converted by tools/convert_weights.py and compared with the Paddle net. Its BatchNorm statistics are
calibrated on inputs of the real ranges, so the comparison runs on well-conditioned activations.
"""
import csv
import glob
import importlib.util
import os
import signal
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn as tnn
from scipy.io import wavfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, REPO)
warnings.filterwarnings("ignore", message="No ccache found")

import paddle  # noqa: E402

from media import (face_frame, ffmpeg, read_frames, save_random_generator, speech_like,  # noqa: E402
                   stop_when)
from ppgan.faceutils.detectors import build_detector  # noqa: E402
from ppgan.metrics import METRICS, PSNR, SSIM, build_metric, calculate_psnr, calculate_ssim  # noqa: E402
from ppgan.metrics import face_tracks as ft  # noqa: E402
from ppgan.metrics.lipsync import (LipSyncScorer, TooShortError, calc_pdist, compute_mfcc,  # noqa: E402
                                   load_compatible, load_direct, scores_from_dists)
from ppgan.metrics.syncnet_eval import SyncNetV2, load_syncnet_v2  # noqa: E402
from ppgan.utils.weights import WeightsError  # noqa: E402

pytestmark = pytest.mark.ffmpeg  # run with every ffmpeg build on the machine (conftest.py)

SR = 16000
FPS = 25


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_cli = _load_tool("eval_lipsync")
gen_cli = _load_tool("gen_videos_from_filelist")


# --------------------------------------------------------------------------------------------
# Independent PyTorch reference: syncnet_python's S
# --------------------------------------------------------------------------------------------
def _block2d(cin, cout, k, p):
    return [tnn.Conv2d(cin, cout, k, 1, p), tnn.BatchNorm2d(cout), tnn.ReLU()]


def _block3d(cin, cout, k, s=1, p=0):
    return [tnn.Conv3d(cin, cout, k, s, p), tnn.BatchNorm3d(cout), tnn.ReLU()]


class TorchS(tnn.Module):
    def __init__(self):
        super().__init__()
        self.netcnnaud = tnn.Sequential(
            *_block2d(1, 64, 3, 1), tnn.MaxPool2d(1, 1),
            *_block2d(64, 192, 3, 1), tnn.MaxPool2d(3, (1, 2)),
            *_block2d(192, 384, 3, 1), *_block2d(384, 256, 3, 1),
            *_block2d(256, 256, 3, 1), tnn.MaxPool2d(3, 2),
            *_block2d(256, 512, (5, 4), 0))
        self.netfcaud = tnn.Sequential(tnn.Linear(512, 512), tnn.BatchNorm1d(512), tnn.ReLU(),
                                       tnn.Linear(512, 1024))
        self.netfclip = tnn.Sequential(tnn.Linear(512, 512), tnn.BatchNorm1d(512), tnn.ReLU(),
                                       tnn.Linear(512, 1024))
        self.netcnnlip = tnn.Sequential(
            *_block3d(3, 96, (5, 7, 7), (1, 2, 2)), tnn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_block3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),
            tnn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *_block3d(256, 256, (1, 3, 3), 1, (0, 1, 1)),
            *_block3d(256, 256, (1, 3, 3), 1, (0, 1, 1)),
            *_block3d(256, 256, (1, 3, 3), 1, (0, 1, 1)), tnn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_block3d(256, 512, (1, 6, 6)))

    def forward_aud(self, x):
        mid = self.netcnnaud(x)
        return self.netfcaud(mid.view(mid.size(0), -1))

    def forward_lip(self, x):
        mid = self.netcnnlip(x)
        return self.netfclip(mid.view(mid.size(0), -1))


def _lips(rng, n):
    return (rng.random((n, 3, 5, 224, 224)) * 255).astype(np.float32)


def _mfcc_windows(rng, n):
    return (rng.standard_normal((n, 1, 13, 20)) * 10).astype(np.float32)


@pytest.fixture(scope="module")
def root(tmp_path_factory, ffmpeg_build):
    """Every clip of the module is made (and scored) with each ffmpeg build in turn."""
    return tmp_path_factory.mktemp(f"lse_{ffmpeg_build}")


@pytest.fixture(scope="module")
def torch_syncnet(root):
    """(torch net in eval mode, its syncnet_v2.model file in the legacy format, as released)."""
    torch.manual_seed(0)
    net = TorchS()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (tnn.BatchNorm1d, tnn.BatchNorm2d, tnn.BatchNorm3d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.momentum = 1.0  # one train-mode pass sets the running stats to batch stats
        net.train()
        net.forward_lip(torch.from_numpy(_lips(rng, 3)))
        net.forward_aud(torch.from_numpy(_mfcc_windows(rng, 8)))
    net.eval()
    path = root / "syncnet_v2.model"
    torch.save(net.state_dict(), str(path), _use_new_zipfile_serialization=False)
    return net, path


@pytest.fixture(scope="module")
def weights(torch_syncnet, root):
    """The torch file converted by the CLI: the .pdparams every scoring test uses."""
    out = root / "syncnet_v2.pdparams"
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_weights.py"),
                             str(torch_syncnet[1]), "-o", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("syncnet_v2:"), result.stdout
    return out


@pytest.fixture(scope="module")
def net(weights):
    return load_syncnet_v2(weights)


# --------------------------------------------------------------------------------------------
# The network and its weights
# --------------------------------------------------------------------------------------------
def test_converted_syncnet_matches_torch(torch_syncnet, net):
    tnet, model_file = torch_syncnet
    rng = np.random.default_rng(1)
    lips, aud = _lips(rng, 2), _mfcc_windows(rng, 3)
    with torch.no_grad():
        expected = [tnet.forward_lip(torch.from_numpy(lips)).numpy(),
                    tnet.forward_aud(torch.from_numpy(aud)).numpy()]
    for out in expected:  # guard against a vacuous comparison
        assert out.shape[1] == 1024 and np.abs(out[0] - out[1]).max() > 0.1
    with paddle.no_grad():
        actual = [net.forward_lip(paddle.to_tensor(lips)).numpy(),
                  net.forward_aud(paddle.to_tensor(aud)).numpy()]
        # The original PyTorch file also loads directly (converted in memory).
        direct = load_syncnet_v2(model_file).forward_aud(paddle.to_tensor(aud)).numpy()
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4 * np.abs(e).max())
    np.testing.assert_allclose(direct, actual[1], rtol=1e-6, atol=1e-6)


def test_paddle_parameter_names_match_syncnet_python():
    names = set(SyncNetV2().state_dict())
    torch_names = {n.replace("running_mean", "_mean").replace("running_var", "_variance")
                   for n in TorchS().state_dict() if not n.endswith("num_batches_tracked")}
    assert names == torch_names


def test_weight_errors_are_clear(root, tmp_path):
    with pytest.raises(WeightsError, match="convert_weights.py"):
        load_syncnet_v2(None)
    with pytest.raises(WeightsError, match="not found"):
        load_syncnet_v2(tmp_path / "missing.pdparams")
    text = tmp_path / "notes.pdparams"
    text.write_text("not weights")
    with pytest.raises(WeightsError, match="not a Paddle weights file"):
        load_syncnet_v2(text)
    generator = save_random_generator(tmp_path / "wav2lip.pdparams")
    with pytest.raises(WeightsError, match="does not hold syncnet_python SyncNet weights"):
        load_syncnet_v2(generator)


# --------------------------------------------------------------------------------------------
# MFCC, distances and scores
# --------------------------------------------------------------------------------------------
def test_mfcc_equals_python_speech_features():
    import python_speech_features

    audio = np.round(speech_like(1.3, seed=3) * 20000).astype(np.int16)
    ours = compute_mfcc(audio, SR)
    reference = np.stack([np.array(c) for c in zip(*python_speech_features.mfcc(audio, SR))])
    # 100 per second: 1 + ceil((20800 - 400) / 160) frames of 25 ms every 10 ms
    assert ours.shape == (13, 129) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


def _torch_calc_pdist(feat1, feat2, vshift):
    # syncnet_python's calc_pdist, on torch tensors, as the reference computes it.
    f1, f2 = torch.from_numpy(feat1), torch.from_numpy(feat2)
    win = vshift * 2 + 1
    padded = torch.nn.functional.pad(f2, (0, 0, vshift, vshift))
    return [torch.nn.functional.pairwise_distance(f1[[i], :].repeat(win, 1), padded[i:i + win, :])
            for i in range(len(f1))]


@pytest.mark.parametrize("vshift", [15, 2])
def test_distances_and_scores_follow_the_reference(vshift):
    rng = np.random.default_rng(vshift)
    f1 = rng.standard_normal((23, 1024)).astype(np.float32)
    f2 = (f1 * 0.5 + rng.standard_normal((23, 1024))).astype(np.float32)
    dists = _torch_calc_pdist(f1, f2, vshift)
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    ours = scores_from_dists(calc_pdist(f1, f2, vshift), vshift)
    np.testing.assert_allclose(ours.dists, torch.stack(dists).numpy(), rtol=1e-5)
    assert ours.lse_d == pytest.approx(minval.item(), rel=1e-6)
    assert ours.lse_c == pytest.approx((torch.median(mdist) - minval).item(), rel=1e-5, abs=1e-5)
    assert ours.offset == vshift - minidx.item()
    assert ours.num_windows == 23 and ours.framewise_conf.shape == (23,)


# --------------------------------------------------------------------------------------------
# Test clips: lossless video (FFV1) and PCM audio, so a shift is the only change
# --------------------------------------------------------------------------------------------
def _frames(count, size=160, seed=0):
    """A face whose mouth region changes every frame (so that windows differ)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        frame = face_frame(size, size, size, 0, 0)
        frame[95:120, 55:105] = rng.integers(0, 256, (25, 50, 3), dtype=np.uint8)
        frames.append(frame)
    return frames


def _write_clip(path, frames, pcm, lossless=True):
    height, width = frames[0].shape[:2]
    raw, wav = f"{path}.raw", f"{path}.wav"
    with open(raw, "wb") as f:
        for frame in frames:
            f.write(frame.tobytes())
    wavfile.write(wav, SR, pcm)
    video_codec = ["-c:v", "ffv1"] if lossless else ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    audio_codec = ["-c:a", "pcm_s16le"] if lossless else ["-c:a", "aac"]
    ffmpeg("-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", FPS, "-i", raw,
           "-i", wav, *video_codec, *audio_codec, path)
    os.remove(raw)
    os.remove(wav)
    return str(path)


def _pcm(seconds, seed=0):
    return np.round(speech_like(seconds, seed=seed) * 20000).astype(np.int16)


SHIFT = 3  # video frames


@pytest.fixture(scope="module")
def clips(root):
    frames = _frames(40)
    pcm = _pcm(40 / FPS)
    # Audio delayed by SHIFT frames (640 samples each), same length: only the alignment changes.
    shifted = np.concatenate([np.zeros(SHIFT * 640, np.int16), pcm[:-SHIFT * 640]])
    return {"frames": frames, "pcm": pcm,
            "sync": _write_clip(root / "sync.mkv", frames, pcm),
            "shifted": _write_clip(root / "shifted.mkv", frames, shifted)}


def test_compatible_path_does_the_jpeg_round_trip(clips, tmp_path):
    compatible = load_compatible(clips["sync"])
    direct = load_direct(clips["sync"])
    originals = np.stack([cv2.resize(f, (224, 224)) for f in clips["frames"]])
    # Direct decoding of the lossless clip gives the frames back; the JPEG round trip does not.
    np.testing.assert_array_equal(direct.frames, originals)
    assert np.abs(compatible.frames.astype(int) - originals).mean() > 0.5
    # The compatible frames are exactly cv2.imread of ffmpeg's own JPEGs, resized as the reference.
    subprocess.run([ffmpeg_path(), "-y", "-loglevel", "error", "-i", clips["sync"], "-threads", "1",
                    "-f", "image2", str(tmp_path / "%06d.jpg")], check=True)
    jpgs = sorted(glob.glob(str(tmp_path / "*.jpg")))
    assert len(jpgs) == 40
    np.testing.assert_array_equal(
        compatible.frames, np.stack([cv2.resize(cv2.imread(p), (224, 224)) for p in jpgs]))
    # The audio is ffmpeg's int16 WAV: PCM in, the very same samples out.
    assert compatible.audio.dtype == np.int16 and compatible.sample_rate == SR
    np.testing.assert_array_equal(compatible.audio, clips["pcm"])
    np.testing.assert_array_equal(direct.audio, clips["pcm"])


def ffmpeg_path():
    from ppgan.utils.ffmpeg_tools import ffmpeg_exe

    return ffmpeg_exe()


def _shift_error(shifted, sync, shift):
    """Max |shifted[i, o] - sync[i, o - shift]| where both compare real (unpadded) windows."""
    n, width = sync.shape
    rows, cols = np.meshgrid(np.arange(n), np.arange(width), indexing="ij")
    audio_index = rows + cols - 15  # the delayed track's audio window in shifted[i, o]
    valid = (audio_index >= shift) & (audio_index < n) & (cols >= shift)
    assert valid.sum() > 500
    expected = sync[rows[valid], cols[valid] - shift]
    return np.abs(shifted[valid] - expected).max() / np.abs(expected).max()


def test_shifted_audio_shifts_the_distance_matrix(clips, net):
    scorer = LipSyncScorer(net)
    sync, shifted = scorer.score(clips["sync"]), scorer.score(clips["shifted"])
    assert sync.dists.shape == shifted.dists.shape == (35, 31)
    # Audio delayed by SHIFT frames: shifted[i, o] compares video window i with audio window
    # i + o - 15 of the delayed track, i.e. window i + o - 15 - SHIFT of the original track,
    # which sync[i, o - SHIFT] compares. Exact up to float rounding, and only for SHIFT.
    errors = {shift: _shift_error(shifted.dists, sync.dists, shift) for shift in range(6)}
    assert errors[SHIFT] < 1e-5
    assert min(e for s, e in errors.items() if s != SHIFT) > 1e-3, errors


def test_too_short_clip_is_reported(root, net):
    clip = _write_clip(root / "short.mkv", _frames(5), _pcm(0.2))
    with pytest.raises(TooShortError, match="too short"):
        LipSyncScorer(net).score(clip)


# --------------------------------------------------------------------------------------------
# tools/eval_lipsync.py: folder, single files, filelist, CSV, errors
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results_dir(root):
    folder = root / "results"
    folder.mkdir()
    for idx, seed in ((0, 1), (2, 2)):  # as the generator names them; 1.mp4 was "skipped"
        _write_clip(folder / f"{idx}.mp4", _frames(20, seed=seed), _pcm(0.8, seed=seed),
                    lossless=False)
    _write_clip(folder / "9.mp4", _frames(4), _pcm(0.16), lossless=False)  # too short
    (folder / "notes.txt").write_text("not a video")
    return folder


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _run_eval(capsys, *args):
    code = eval_cli.main([str(a) for a in args])
    return code, capsys.readouterr()


@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
def test_folder_scores_equal_per_file_scores(results_dir, weights, root, capsys):
    code, out = _run_eval(capsys, results_dir, "--syncnet_path", weights, "-o", root / "all.csv")
    assert code == 0, out.err
    rows = _read_csv(root / "all.csv")
    assert [os.path.basename(r["path"]) for r in rows] == ["0.mp4", "2.mp4"]  # 9.mp4 skipped
    assert list(rows[0]) == ["path", "track", "lse_d", "lse_c", "offset", "windows"]
    assert "scored 2 of 3 video(s) (1 skipped)" in out.out
    mean_d = np.mean([float(r["lse_d"]) for r in rows])
    mean_c = np.mean([float(r["lse_c"]) for r in rows])
    assert f"LSE-D (mean min dist): {mean_d:.3f}" in out.out
    assert f"LSE-C (mean confidence): {mean_c:.3f}" in out.out
    for row in rows:
        code, out = _run_eval(capsys, row["path"], "--syncnet_path", weights, "-o", root / "one.csv")
        assert code == 0, out.err
        (single,) = _read_csv(root / "one.csv")
        assert single == row
        assert int(single["windows"]) == 15
    # The filelist mode scores RESULTS_DIR/{line index}.mp4 and skips the missing 1.mp4.
    filelist = root / "pairs.txt"
    filelist.write_text("spk1/00001 spk2/00001\nspk1/00002 spk2/00002\nspk1/00003 spk2/00003\n")
    code, out = _run_eval(capsys, "--filelist", filelist, "--results_dir", results_dir,
                          "--syncnet_path", weights, "-o", root / "list.csv")
    assert code == 0, out.err
    assert _read_csv(root / "list.csv") == rows
    assert "scored 2 of 3 video(s) (1 skipped)" in out.out


@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
def test_direct_decoding_scores_differ_and_say_so(results_dir, weights, root, capsys):
    code, out = _run_eval(capsys, results_dir / "0.mp4", "--syncnet_path", weights,
                          "--decode", "direct", "-o", root / "direct.csv")
    assert code == 0 and "not comparable" in out.out
    (direct,) = _read_csv(root / "direct.csv")
    assert direct["lse_d"] != _read_csv(root / "all.csv")[0]["lse_d"]


@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
def test_eval_stopped_by_sigterm_writes_no_csv_and_cleans_its_frames(results_dir, weights, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    csv_path = tmp_path / "scores.csv"
    code, err = stop_when([sys.executable, os.path.join(REPO, "tools", "eval_lipsync.py"),
                           str(results_dir), "--syncnet_path", str(weights), "--tmp_dir", str(work),
                           "-o", str(csv_path)], lambda: bool(os.listdir(work)))
    assert code == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "eval_lipsync: interrupted: no scores written"
    assert os.listdir(work) == [] and os.listdir(tmp_path) == ["work"]


@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
@pytest.mark.parametrize("case", ["no_weights", "no_input", "missing_input", "bad_weights",
                                  "bad_filelist", "nothing_scored"])
def test_eval_user_errors_are_one_line_exit_2(case, results_dir, weights, tmp_path, capsys):
    bad = tmp_path / "bad.pdparams"
    bad.write_text("x")
    broken = tmp_path / "pairs.txt"
    broken.write_text("only_one_field\n")
    args = {
        "no_weights": [results_dir],
        "no_input": ["--syncnet_path", weights],
        "missing_input": [tmp_path / "nope", "--syncnet_path", weights],
        "bad_weights": [results_dir, "--syncnet_path", bad],
        "bad_filelist": ["--filelist", broken, "--results_dir", results_dir, "--syncnet_path",
                         weights],
        "nothing_scored": [results_dir / "9.mp4", "--syncnet_path", weights],
    }[case]
    args = [str(a) for a in args] + ["-o", str(tmp_path / "s.csv")]
    try:
        code = eval_cli.main(args)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("eval_lipsync: error:")
    if case == "no_weights":
        assert "convert_weights.py" in err


# --------------------------------------------------------------------------------------------
# Real videos: shots, tracks and crops as run_pipeline.py
# --------------------------------------------------------------------------------------------
def _det(frame, x, size=120.0):
    return (frame, np.array([x, 50.0, x + size, 50.0 + size]), 0.99)


def test_track_shot_follows_iou_gaps_and_limits():
    cfg = ft.TrackConfig(min_track=10, min_face_size=100, num_failed_det=5)
    faces = [[] for _ in range(60)]
    for f in range(0, 30):
        if f not in (10, 11, 12):  # a 3-frame detection gap: bridged and interpolated
            faces[f].append(_det(f, 10.0 + f))
        faces[f].append(_det(f, 400.0))  # a second, still face
    for f in range(40, 60):  # the first face again after a 10-frame gap: a new track
        faces[f].append(_det(f, 10.0))
    faces[45].append(_det(45, 900.0, size=60))  # one small face: too short and too small
    tracks = ft.track_shot(faces, cfg)
    spans = sorted((t.frames[0], t.frames[-1], t.bboxes[0, 0]) for t in tracks)
    assert spans == [(0, 29, 10.0), (0, 29, 400.0), (40, 59, 10.0)]
    moving = next(t for t in tracks if t.bboxes[0, 0] == 10.0 and t.frames[0] == 0)
    np.testing.assert_allclose(moving.bboxes[11], [21.0, 50.0, 141.0, 170.0])  # interpolated
    assert len(faces[5]) == 2  # the caller's detections are left untouched
    assert ft.track_shot(faces, ft.TrackConfig(min_track=10, min_face_size=130)) == []


def test_crop_matches_run_pipeline_geometry():
    image = np.arange(100 * 120 * 3, dtype=np.uint8).reshape(100, 120, 3)
    crop = ft._crop(image, 20.0, 50.0, 60.0, 0.4)
    # Box 2s wide and 2s(1+cs) tall around the centre, shifted down by s*cs (mouth included).
    pad = int(20 * 1.8)
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
    expected = padded[int(50 + pad - 20):int(50 + pad + 36), int(60 + pad - 28):int(60 + pad + 28)]
    np.testing.assert_array_equal(crop, cv2.resize(expected, (224, 224)))


def _two_shot_video(path, per_shot=30):
    frames = []
    for shot, (x, background) in enumerate(((0, (110, 110, 110)), (160, (200, 60, 20)))):
        for _ in range(per_shot):
            frame = face_frame(480, 360, 320, x, 20)
            frame[:, :x] = background
            frame[:, x + 320:] = background
            frames.append(frame)
    return _write_clip(path, frames, _pcm(2 * per_shot / FPS))


@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
def test_real_video_mode_tracks_each_shot(root, weights, capsys):
    video = _two_shot_video(root / "talk.mkv")
    cfg = ft.TrackConfig(facedet_scale=1.0, min_track=10, min_face_size=40)
    workdir = root / "real"
    workdir.mkdir()
    crops = ft.face_track_clips(video, str(workdir), build_detector("mtcnn"), cfg)
    assert [os.path.basename(c) for c in crops] == ["00000.avi", "00001.avi"]
    for crop in crops:
        frames = read_frames(crop)
        # One crop per shot of 30 frames (ffmpeg's "-r 25" AVI conversion, which the reference
        # runs first, may repeat the first frames: hence up to 32).
        assert 30 <= len(frames) <= 32 and frames[0].shape == (224, 224, 3)
        clip = load_compatible(crop)
        assert abs(len(clip.audio) - len(frames) * 640) <= 640
    # The CLI in real mode: one row per face track.
    code, out = _run_eval(capsys, video, "--mode", "real", "--face_detector", "mtcnn",
                          "--facedet_scale", "1", "--min_track", "10", "--min_face_size", "40",
                          "--syncnet_path", weights, "-o", root / "real.csv")
    assert code == 0, out.err
    assert [r["track"] for r in _read_csv(root / "real.csv")] == ["0", "1"]


# --------------------------------------------------------------------------------------------
# tools/gen_videos_from_filelist.py
# --------------------------------------------------------------------------------------------
@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
def test_generator_writes_idx_videos_and_skips_unusable_pairs(root, capsys):
    data = root / "lrs2"
    for name in ("spk_a", "spk_b"):
        (data / name).mkdir(parents=True)
    face = [face_frame(240, 240, 240, 0, 0)] * 20
    _write_clip(data / "spk_a" / "00001.mp4", face, _pcm(0.8), lossless=False)
    _write_clip(data / "spk_b" / "00001.mp4", face[:6], _pcm(0.24), lossless=False)
    _write_clip(data / "spk_b" / "00002.mp4", [np.full((240, 240, 3), 110, np.uint8)] * 20,
                _pcm(0.8), lossless=False)
    # One faceless frame between two key frames of the default --det_every 5: only detecting
    # every frame, as the original does, finds it.
    blank_at_7 = face[:7] + [np.full((240, 240, 3), 110, np.uint8)] + face[8:]
    _write_clip(data / "spk_b" / "00003.mp4", blank_at_7, _pcm(0.8), lossless=False)
    filelist = root / "test.txt"
    filelist.write_text("spk_a/00001 spk_a/00001\nspk_a/00001 spk_b/00001\n"
                        "spk_a/00001 spk_b/00002\nspk_x/00009 spk_a/00001\n"
                        "spk_a/00001 spk_b/00003\n")
    results = root / "generated"
    code = gen_cli.main(["--filelist", str(filelist), "--data_root", str(data), "--results_dir",
                         str(results), "--checkpoint_path",
                         str(save_random_generator(root / "gen.pdparams")),
                         "--face_detector", "mtcnn", "--cpu"])
    assert code == 0
    assert sorted(os.listdir(results)) == ["0.mp4", "skipped.txt"]
    assert len(read_frames(results / "0.mp4")) == 20
    reasons = dict(line.split("\t") for line in (results / "skipped.txt").read_text().splitlines())
    assert sorted(reasons) == ["1", "2", "3", "4"]
    assert "fewer than the audio's" in reasons["1"]
    assert "no face" in reasons["2"]
    assert "not found" in reasons["3"]
    assert reasons["4"].startswith("no face in frame 7 of ")
    assert "1 video(s)" in capsys.readouterr().out


@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
def test_generator_stopped_by_sigterm_keeps_only_finished_videos(root):
    data = root / "lrs2_long"
    (data / "spk").mkdir(parents=True)
    _write_clip(data / "spk" / "00001.mp4", [face_frame(240, 240, 240, 0, 0)] * 60, _pcm(2.4),
                lossless=False)
    filelist = root / "long.txt"
    filelist.write_text("spk/00001 spk/00001\n" * 4)
    results = root / "stopped"
    results.mkdir()

    def writing_the_second():
        return "0.mp4" in os.listdir(results) and any(".part" in n for n in os.listdir(results))

    code, err = stop_when([sys.executable, os.path.join(REPO, "tools", "gen_videos_from_filelist.py"),
                           "--filelist", str(filelist), "--data_root", str(data), "--results_dir",
                           str(results), "--checkpoint_path", str(save_random_generator(root / "g2.pdparams")),
                           "--face_detector", "mtcnn", "--cpu"], writing_the_second)
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert "0.mp4" in os.listdir(results) and not [n for n in os.listdir(results) if ".part" in n]
    assert len(read_frames(results / "0.mp4")) == 60


@pytest.mark.one_build  # the command's behaviour, the same with either decoder build
def test_generator_user_errors_are_one_line_exit_2(root, capsys):
    with pytest.raises(SystemExit) as exit_:
        gen_cli.main(["--filelist", str(root / "missing.txt"), "--data_root", str(root),
                      "--results_dir", str(root / "x"), "--checkpoint_path", str(root / "y")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not found" in err


def test_mel_chunk_count_matches_the_original_loop():
    for frames in (15, 16, 17, 80, 81, 203):
        count, i = 0, 0
        while int(i * 80.0 / 25) + 16 <= frames:
            count, i = count + 1, i + 1
        assert gen_cli.mel_chunk_count(frames) == count


# --------------------------------------------------------------------------------------------
# PSNR / SSIM
# --------------------------------------------------------------------------------------------
def test_psnr_and_ssim():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (96, 96, 3)).astype(np.uint8)
    pred = np.clip(gt.astype(int) + 5, 0, 255).astype(np.uint8)
    noisy = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
    mse = np.mean((pred.astype(float) - gt) ** 2)
    assert calculate_psnr(pred, gt) == pytest.approx(10 * np.log10(255 ** 2 / mse))
    assert calculate_psnr(gt, gt) == float("inf")
    assert calculate_ssim(gt, gt) == pytest.approx(1.0)
    expected = structural_similarity(noisy.astype(float), gt.astype(float), data_range=255,
                                     channel_axis=2, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert calculate_ssim(noisy, gt) == pytest.approx(expected)
    noisier = np.clip(gt + rng.normal(0, 60, gt.shape), 0, 255).astype(np.uint8)
    assert calculate_ssim(noisier, gt) < calculate_ssim(noisy, gt) < 0.999
    # CHW input and the Y channel
    assert calculate_psnr(noisy.transpose(2, 0, 1), gt.transpose(2, 0, 1), input_order="CHW") == \
        pytest.approx(calculate_psnr(noisy, gt))
    assert calculate_psnr(pred, gt, test_y_channel=True) > calculate_psnr(pred, gt) - 1


def test_metric_classes_average_over_images():
    assert "PSNR" in METRICS and "SSIM" in METRICS
    rng = np.random.default_rng(1)
    gts = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    preds = np.clip(gts + rng.normal(0, 10, gts.shape), 0, 255).astype(np.uint8)
    psnr = build_metric({"name": "PSNR", "crop_border": 2})
    psnr.update(preds[:2], gts[:2])
    psnr.update(preds[2], gts[2])
    expected = np.mean([calculate_psnr(p, g, crop_border=2) for p, g in zip(preds, gts)])
    assert psnr.accumulate() == pytest.approx(expected)
    ssim = SSIM()
    ssim.update(list(preds), list(gts))
    assert ssim.accumulate() == pytest.approx(np.mean([calculate_ssim(p, g)
                                                       for p, g in zip(preds, gts)]))
    with pytest.raises(ValueError):
        PSNR().accumulate()
    with pytest.raises(ValueError):
        ssim.update(preds[:2], gts)
