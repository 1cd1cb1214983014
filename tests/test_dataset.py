"""Wav2LipDataset: sample layout in both modes, mel offsets (with the indiv_mels quirk),
determinism, skipping by rule, clear errors, and the loader built from a config section."""
import logging
import os

import cv2
import numpy as np
import pytest

from ppgan.datasets import build_dataloader
from ppgan.datasets import wav2lip_dataset as wd  # registers Wav2LipDataset
from ppgan.data_preparation.synthetic import make_synthetic_dataset, speech_audio, syllable_envelope
from ppgan.utils.audio import write_wav
from ppgan.datasets.wav2lip_dataset import Wav2LipDataset
from ppgan.utils.audio import load_wav, melspectrogram

T = 5
SMALL = 32  # image size for the numbered clips: flat images resize exactly


# ------------------------------------------------------------------------------- numbered clips
def frame_value(frame_id: int) -> int:
    return 10 + 3 * frame_id


def decode(images: np.ndarray) -> list:
    """Frame ids of (3, T, H, W) [0, 1] images written by `write_numbered_clip` (top rows)."""
    values = images[:, :, : images.shape[2] // 2].mean(axis=(0, 2, 3)) * 255
    return [int(round((v - 10) / 3)) for v in values]


def write_numbered_clip(clip_dir, num_frames, missing=(), audio_seconds=None, audio=True, seed=0):
    """Flat gray frames whose level encodes the frame id, and speech-like audio."""
    os.makedirs(clip_dir, exist_ok=True)
    for frame_id in range(num_frames):
        if frame_id not in missing:
            image = np.full((40, 40, 3), frame_value(frame_id), np.uint8)
            cv2.imwrite(os.path.join(clip_dir, f"{frame_id}.jpg"), image)
    if audio:
        seconds = num_frames / 25 if audio_seconds is None else audio_seconds
        rng = np.random.default_rng(seed)
        write_wav(os.path.join(clip_dir, "audio.wav"), speech_audio(syllable_envelope(seconds, rng), rng))


def write_filelist(folder, split, lines):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{split}.txt")
    with open(path, "w") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """Two 60-frame clips (one with gaps), plus unusable ones the dataset must skip."""
    root = str(tmp_path_factory.mktemp("numbered"))
    write_numbered_clip(os.path.join(root, "spk", "full"), 60, seed=1)
    write_numbered_clip(os.path.join(root, "spk", "gaps"), 60, missing={7, 19, 20, 33, 48}, seed=2)
    write_numbered_clip(os.path.join(root, "spk", "short"), 3 * T, seed=3)  # not more than 3T
    write_numbered_clip(os.path.join(root, "spk", "holes"), 40, missing=set(range(0, 40, 4)), seed=4)
    write_numbered_clip(os.path.join(root, "spk", "mute"), 40, audio=False)
    lists = os.path.join(root, "lists")
    write_filelist(lists, "train", ["spk/full extra text", "", "spk/gaps", "spk/short", "spk/holes",
                                    "spk/mute"])
    return root, lists


def numbered_dataset(numbered, **kwargs):
    root, lists = numbered
    kwargs.setdefault("seed", 0)
    return Wav2LipDataset(root, img_size=SMALL, filelists_path=lists, split="train", **kwargs)


def full_mel(root, clip):
    return melspectrogram(load_wav(os.path.join(root, "spk", clip, "audio.wav"))).T


def mel_at(spec, frame):
    start = (80 * frame) // 25  # int(80. * frame / 25), in exact integer arithmetic
    return spec[start:start + 16].T


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    make_synthetic_dataset(root, num_dirs=2, clips_per_dir=3, seconds=3.0, seed=0)
    return root, os.path.join(root, "filelists")


# -------------------------------------------------------------------------------------- layout
def test_wav2lip_sample_layout(synthetic):
    root, lists = synthetic
    sample = Wav2LipDataset(root, filelists_path=lists, seed=0)[0]
    assert set(sample) == {"x", "indiv_mels", "mel", "y"}
    assert sample["x"].shape == (6, T, 96, 96)
    assert sample["indiv_mels"].shape == (T, 1, 80, 16)
    assert sample["mel"].shape == (1, 80, 16)
    assert sample["y"].shape == (3, T, 96, 96)
    assert all(v.dtype == np.float32 for v in sample.values())
    assert 0 <= sample["y"].min() and sample["y"].max() <= 1 and sample["y"].max() > 0.5


def test_masked_lower_half_is_zero_and_wrong_window_differs(synthetic):
    root, lists = synthetic
    dataset = Wav2LipDataset(root, filelists_path=lists, seed=0)
    for idx in range(len(dataset)):
        x, y = dataset[idx]["x"], dataset[idx]["y"]
        assert np.all(x[:3, :, 48:] == 0)
        np.testing.assert_array_equal(x[:3, :, :48], y[:, :, :48])
        assert y[:, :, 48:].max() > 0.2  # the truth does have a lower half
        assert np.abs(x[3:] - y).mean() > 1e-3  # the reference window is another window


def test_syncnet_sample_layout(synthetic):
    root, lists = synthetic
    sample = Wav2LipDataset(root, filelists_path=lists, mode="syncnet", seed=0)[0]
    assert set(sample) == {"face", "mel", "label"}
    assert sample["face"].shape == (3 * T, 48, 96)
    assert sample["mel"].shape == (1, 80, 16)
    assert sample["label"].shape == (1,) and sample["label"][0] in (0.0, 1.0)
    assert all(v.dtype == np.float32 for v in sample.values())


def test_syncnet_face_is_lower_halves_frame_major(numbered):
    """Channels 3t..3t+2 are frame t's lower half (the numbered frames tell which frame)."""
    dataset = numbered_dataset(numbered, mode="syncnet")
    face = dataset[0]["face"]
    ids = [int(round((face[3 * t:3 * t + 3].mean() * 255 - 10) / 3)) for t in range(T)]
    assert ids == list(range(ids[0], ids[0] + T))
    assert face.shape == (3 * T, SMALL // 2, SMALL)


# ---------------------------------------------------------------------------------- mel offsets
def test_mel_windows_are_reference_slices(numbered):
    root, _ = numbered
    dataset = numbered_dataset(numbered)
    specs = {clip: full_mel(root, clip) for clip in ("full", "gaps")}
    for idx in range(40):
        sample = dataset[idx]
        clip = ("full", "gaps")[idx % 2]  # sample idx reads clip idx % clips
        spec = specs[clip]
        frames = decode(sample["y"])
        start = frames[0]
        assert frames == list(range(start, start + T))
        assert start >= 1  # indiv window 0 starts at frame start-1, which must exist
        np.testing.assert_array_equal(sample["mel"][0], mel_at(spec, start))
        for k in range(T):
            # The references' quirk: frame start+k gets the audio window of frame start+k-1.
            np.testing.assert_array_equal(sample["indiv_mels"][k, 0], mel_at(spec, start + k - 1))
        # So the window of the first frame is not `mel` (that of frame start) but the one before.
        assert not np.array_equal(sample["indiv_mels"][0, 0], sample["mel"][0])
        np.testing.assert_array_equal(sample["indiv_mels"][1, 0], sample["mel"][0])
        wrong = decode(sample["x"][3:])
        assert wrong[0] != start and wrong == list(range(wrong[0], wrong[0] + T))


def test_syncnet_labels_balanced_and_offsync_differs(numbered):
    root, _ = numbered
    dataset = numbered_dataset(numbered, mode="syncnet")
    specs = {clip: full_mel(root, clip) for clip in ("full", "gaps")}
    labels = []
    for idx in range(200):
        sample = dataset[idx]
        spec = specs[("full", "gaps")[idx % 2]]
        face = sample["face"]
        shown = [int(round((face[3 * t:3 * t + 3].mean() * 255 - 10) / 3)) for t in range(T)]
        assert shown == list(range(shown[0], shown[0] + T))
        # The frame the mel belongs to: the one whose reference window it equals.
        mel_frames = [f for f in range(60) if mel_at(spec, f).shape == (80, 16)
                      and np.array_equal(mel_at(spec, f), sample["mel"][0])]
        assert mel_frames, "mel is not a reference window"
        label = sample["label"][0]
        if label == 1.0:
            assert shown[0] in mel_frames
        else:
            assert shown[0] not in mel_frames
        labels.append(label)
    assert 0.35 < np.mean(labels) < 0.65


# --------------------------------------------------------------------------------- determinism
def test_same_seed_same_sample_and_idx_epoch_seed_change_it(numbered):
    first, second = numbered_dataset(numbered, seed=7), numbered_dataset(numbered, seed=7)
    for idx in (0, 3):
        a, b = first[idx], second[idx]
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(first[0]["y"], first[2]["y"])  # same clip, other window
    other_seed = numbered_dataset(numbered, seed=8)
    assert any(not np.array_equal(first[i]["y"], other_seed[i]["y"]) for i in range(4))
    before = [first[i]["y"] for i in range(4)]
    first.set_epoch(1)
    assert any(not np.array_equal(before[i], first[i]["y"]) for i in range(4))
    first.set_epoch(0)
    assert all(np.array_equal(before[i], first[i]["y"]) for i in range(4))


def test_same_batches_with_and_without_workers(numbered):
    root, lists = numbered
    batches = []
    for workers in (0, 2):
        cfg = dict(name="Wav2LipDataset", dataroot=root, filelists_path=lists, img_size=SMALL,
                   mode="syncnet", seed=3, samples_per_epoch=8, batch_size=4, num_workers=workers)
        batches.append([{k: v.numpy() for k, v in b.items()} for b in build_dataloader(cfg, False)])
    assert len(batches[0]) == len(batches[1]) == 2
    for a, b in zip(*batches):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_seed_none_is_fixed_per_dataset(numbered):
    dataset = numbered_dataset(numbered, seed=None)
    np.testing.assert_array_equal(dataset[1]["y"], dataset[1]["y"])


# ------------------------------------------------------------------------------ skip by rule
def test_short_gappy_and_mute_clips_skipped_and_logged(numbered, caplog):
    with caplog.at_level(logging.INFO, logger="ppgan.datasets.wav2lip_dataset"):
        dataset = numbered_dataset(numbered)
    assert [os.path.basename(c) for c in dataset.clips] == ["full", "gaps"]
    assert len(dataset) == 2  # the references' __len__: number of clips
    log = caplog.text
    assert "1 too short" in log and "1 no audio.wav" in log and "1 no complete window" in log


def test_windows_avoid_gaps(numbered):
    missing = {7, 19, 20, 33, 48}
    for mode in ("wav2lip", "syncnet"):
        dataset = numbered_dataset(numbered, mode=mode)
        for idx in range(1, 120, 2):  # odd idx: the clip with gaps
            sample = dataset[idx]
            windows = ([decode(sample["y"]), decode(sample["x"][3:])] if mode == "wav2lip" else
                       [[int(round((sample["face"][3 * t:3 * t + 3].mean() * 255 - 10) / 3))
                         for t in range(T)]])
            for ids in windows:
                assert ids == list(range(ids[0], ids[0] + T)) and not missing & set(ids)


def test_valid_starts_respect_audio_length(tmp_path):
    """Audio shorter than the frames: starts are limited to windows whose mel exists."""
    write_numbered_clip(str(tmp_path / "d" / "v"), 60, audio_seconds=1.0)  # mel: 81 steps
    write_filelist(str(tmp_path), "train", ["d/v"])
    dataset = Wav2LipDataset(str(tmp_path), img_size=SMALL, filelists_path=str(tmp_path), seed=0,
                             samples_per_epoch=50)
    # wav2lip: the last mel used is frame s+3's (indiv window 4 starts at s+3): 3.2*(s+3)+16 <= 81.
    starts = {decode(dataset[i]["y"])[0] for i in range(50)}
    assert max(starts) <= 17 and len(starts) > 5


def test_unreadable_clips_fall_back_then_fail_clearly(tmp_path, caplog):
    write_numbered_clip(str(tmp_path / "d" / "ok"), 40)
    write_numbered_clip(str(tmp_path / "d" / "tiny"), 40, audio_seconds=0.05)  # no mel window fits
    write_filelist(str(tmp_path), "train", ["d/tiny", "d/ok"])
    dataset = Wav2LipDataset(str(tmp_path), img_size=SMALL, filelists_path=str(tmp_path), seed=0)
    with caplog.at_level(logging.WARNING):
        sample = dataset[0]  # clip "tiny" cannot give a window: the next clip serves
    assert decode(sample["y"]) and "tiny" in caplog.text
    write_filelist(str(tmp_path), "val", ["d/tiny"])
    only_bad = Wav2LipDataset(str(tmp_path), img_size=SMALL, filelists_path=str(tmp_path), split="val")
    with pytest.raises(ValueError, match="could be read"):
        only_bad[0]


# -------------------------------------------------------------------------------------- errors
def test_clear_errors(tmp_path, numbered):
    root, lists = numbered
    with pytest.raises(ValueError, match="filelist not found: .*missing_dir.*train.txt"):
        Wav2LipDataset(root, filelists_path=str(tmp_path / "missing_dir"))
    empty = write_filelist(str(tmp_path / "empty"), "train", ["", "  "])
    with pytest.raises(ValueError, match=f"filelist is empty: {empty}"):
        Wav2LipDataset(root, filelists_path=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="dataroot is not a folder: .*nowhere"):
        Wav2LipDataset(str(tmp_path / "nowhere"), filelists_path=lists)
    write_filelist(str(tmp_path / "wrong"), "train", ["spk/full", "spk/absent"])
    with pytest.raises(ValueError, match="not found: .*absent"):
        Wav2LipDataset(root, filelists_path=str(tmp_path / "wrong"))
    write_filelist(str(tmp_path / "useless"), "val", ["spk/short", "spk/holes"])
    with pytest.raises(ValueError, match="no usable clip in .*useless.*val.txt"):
        Wav2LipDataset(root, filelists_path=str(tmp_path / "useless"), split="val")
    with pytest.raises(ValueError, match="mode"):
        Wav2LipDataset(root, filelists_path=lists, mode="lipgan")


def test_relative_paths_resolve_against_cwd(numbered, monkeypatch):
    root, lists = numbered
    monkeypatch.chdir(os.path.dirname(root))
    dataset = Wav2LipDataset(os.path.basename(root), img_size=SMALL,
                             filelists_path=os.path.join(os.path.basename(root), "lists"))
    assert len(dataset) == 2


# -------------------------------------------------------------------------------------- loader
def test_build_dataloader_yields_batches(synthetic):
    root, lists = synthetic
    cfg = {"name": "Wav2LipDataset", "dataroot": root, "filelists_path": lists, "split": "train",
           "mode": "wav2lip", "seed": 0, "batch_size": 2, "num_workers": 0}
    loader = build_dataloader(cfg, is_train=True)
    batches = list(loader)
    assert len(batches) == 2  # 5 train clips, batch 2, drop_last in training
    batch = batches[0]
    assert set(batch) == {"x", "indiv_mels", "mel", "y"}
    assert list(batch["x"].shape) == [2, 6, T, 96, 96]
    assert list(batch["indiv_mels"].shape) == [2, T, 1, 80, 16]
    assert str(batch["y"].dtype).endswith("float32")
    cfg.update(mode="syncnet", split="val", batch_size=1)
    val = list(build_dataloader(cfg, is_train=False))
    assert len(val) == 1 and list(val[0]["face"].shape) == [1, 3 * T, 48, 96]
    assert list(val[0]["label"].shape) == [1, 1]


def test_mel_computed_once_per_clip(numbered, monkeypatch):
    calls = []
    original = wd.melspectrogram
    monkeypatch.setattr(wd, "melspectrogram", lambda wav: calls.append(1) or original(wav))
    dataset = numbered_dataset(numbered)
    for idx in range(10):
        dataset[idx]
    assert len(calls) == 2


# ------------------------------------------------------------------------------ synthetic data
def test_synthetic_data_is_deterministic_and_mouths_follow_loudness(synthetic, tmp_path):
    root, _ = synthetic
    clip = os.path.join("synth01", "00002")
    again = str(tmp_path / "again")
    make_synthetic_dataset(again, num_dirs=2, clips_per_dir=3, seconds=3.0, seed=0)
    for name in ("audio.wav", "0.jpg", "40.jpg"):
        with open(os.path.join(root, clip, name), "rb") as a, open(os.path.join(again, clip, name), "rb") as b:
            assert a.read() == b.read()
    other = str(tmp_path / "other")
    make_synthetic_dataset(other, num_dirs=1, clips_per_dir=1, seconds=3.0, seed=1)
    with open(os.path.join(root, "synth00", "00000", "audio.wav"), "rb") as a, \
            open(os.path.join(other, "synth00", "00000", "audio.wav"), "rb") as b:
        assert a.read() != b.read()
    # Per frame: audio loudness and the dark open-mouth area go together, in every clip, and
    # much less so five frames (one syncnet window) apart.
    for clip in [os.path.join(d, v) for d in ("synth00", "synth01") for v in ("00000", "00001", "00002")]:
        wav = load_wav(os.path.join(root, clip, "audio.wav"))
        loudness = [np.sqrt(np.mean(wav[i * 640:(i + 1) * 640] ** 2)) for i in range(75)]
        mouth = []
        for i in range(75):
            image = cv2.resize(cv2.imread(os.path.join(root, clip, f"{i}.jpg")), (96, 96))
            mouth.append((image[54:82, 30:66].mean(axis=2) < 60).mean())  # around the mouth
        assert np.corrcoef(loudness, mouth)[0, 1] > 0.8, clip
        assert np.corrcoef(loudness[5:], mouth[:-5])[0, 1] < 0.5, clip
        assert np.std(mouth) > 0.02, clip  # the mouth does move


def test_make_synthetic_data_cli(tmp_path):
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                        "make_synthetic_data.py")
    spec = importlib.util.spec_from_file_location("make_synthetic_cli", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "syn"
    assert cli.main(["--out_dir", str(out), "--num_dirs", "1", "--clips_per_dir", "3",
                     "--seconds", "1"]) == 0
    listed = sum((open(out / "filelists" / f"{s}.txt").read().split() for s in ("train", "val", "test")), [])
    assert sorted(listed) == ["synth00/00000", "synth00/00001", "synth00/00002"]
    assert len(os.listdir(out / "synth00" / "00001")) == 26  # 25 frames + audio.wav
    assert cli.main(["--out_dir", str(tmp_path / "raw"), "--raw_videos", "--num_dirs", "1",
                     "--clips_per_dir", "1", "--seconds", "1", "--fps", "30"]) == 0
    assert os.path.isfile(tmp_path / "raw" / "synth00" / "00000.mp4")
    with pytest.raises(SystemExit):
        cli.main(["--out_dir", str(out), "--seconds", "0"])
