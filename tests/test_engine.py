"""The Trainer's machinery on a tiny model: exact resume after Ctrl-C, logging, --load,
--evaluate-only, CLI errors, the resumable sampler, LinearDecay and portable optimizer states.

The tiny model keeps these fast; tests/test_training.py runs the real Wav2Lip models.
"""
import glob
import os
import re
import signal

import cv2
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
import yaml

from ppgan.datasets import DATASETS
from ppgan.engine.checkpoint import portable_optimizer_state, restore_optimizer_state, structured_names
from ppgan.engine.iter_loader import IterLoader, ResumableBatchSampler
from ppgan.models import MODELS, BaseModel
from ppgan.solver import LinearDecay
from media import can_mount, small_disk
from tools_main import main  # registered by conftest


# ------------------------------------------------------------------------- tiny model and data
class TinyDataset(paddle.io.Dataset):
    """Random regression samples keyed by (seed, epoch, index), like Wav2LipDataset."""

    def __init__(self, num_samples: int = 7, seed: int = 0):
        super().__init__()
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, idx: int):
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        x = rng.standard_normal(4).astype(np.float32)
        return {"x": x, "y": np.array([x.sum() * 0.5 + 1.0], dtype=np.float32)}


class TinyNet(nn.Layer):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1D(8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.body(x)


class TinyModel(BaseModel):
    """Regression with a BatchNorm; `interrupt_at` sends `interrupt_signal` (SIGINT: Ctrl-C) to
    itself during that iteration."""

    def __init__(self, interrupt_at=(), max_eval_steps=None, threshold=0.0, interrupt_signal="SIGINT"):
        super().__init__()
        self.nets["netG"] = TinyNet()
        self.interrupt_at = list(interrupt_at)
        self.interrupt_signal = signal.Signals[interrupt_signal]
        self.threshold = threshold
        self.switched = False
        self.evals = 0  # runtime state that changes the loss: a resume must restore it
        self.calls = 0

    def setup_input(self, batch):
        self.x, self.y = batch["x"], batch["y"]

    def train_iter(self):
        self.calls += 1
        name, optimizer = self.optimizer_for("netG")
        optimizer.clear_grad()
        loss = F.mse_loss(self.nets["netG"](self.x), self.y) * (1.0 + 0.5 * self.evals)
        if self.calls in self.interrupt_at:
            os.kill(os.getpid(), self.interrupt_signal)  # a real Ctrl-C (or SIGTERM), mid-iteration
        self.backward_step(loss, name)
        self.losses["mse"] = loss.item()
        # Two 2x2 "images" per sample, so the collage writer has something to draw.
        self.visual_items = {"a": paddle.zeros([2, 3, 2, 2]), "b": paddle.ones([2, 3, 2, 2])}

    def test_iter(self):
        self.nets["netG"].eval()
        with paddle.no_grad():
            self.accumulate_eval(mse=F.mse_loss(self.nets["netG"](self.x), self.y).item())
        self.nets["netG"].train()

    def on_eval_end(self, results):
        self.switched = self.switched or results["mse"] > self.threshold
        self.evals += 1

    def runtime_state(self):
        return {"switched": self.switched, "evals": self.evals}

    def set_runtime_state(self, state):
        self.switched, self.evals = state["switched"], state["evals"]


class TinyImageModel(TinyModel):
    """TinyModel whose validation "generates" images 16 levels (of 255) off the ground truth."""

    GENERATES_IMAGES = True

    def eval_images(self):
        truth = paddle.zeros([2, 3, 5, 12, 12])  # (B, C, T, H, W) as Wav2Lip's
        return truth + 16 / 255, truth


if "TinyModel" not in MODELS:
    MODELS.register(TinyModel)
    MODELS.register(TinyImageModel)
    DATASETS.register(TinyDataset)


def _write_config(folder, **model):
    cfg = {
        "total_iters": 10,
        "output_dir": str(folder / "out"),
        "model": {"name": "TinyModel", "max_eval_steps": 2, **model},
        "dataset": {"train": {"name": "TinyDataset", "num_samples": 7, "seed": None,
                              "batch_size": 2, "num_workers": 0},
                    "test": {"name": "TinyDataset", "num_samples": 4, "seed": 99,
                             "batch_size": 2, "num_workers": 0}},
        "optimizer": {"optimizer_G": {"name": "Adam", "net_names": ["netG"], "beta1": 0.5}},
        # Milestones inside both halves of the run: the schedule's position must be restored too.
        "lr_scheduler": {"name": "MultiStepDecay", "learning_rate": 0.01, "milestones": [3, 7],
                         "gamma": 0.5},
        "validate": {"interval": 3, "save_img": False},
        # PaddleGAN's spelling of visual_interval.
        "log_config": {"interval": 1, "visiual_interval": 5},
        "enable_visualdl": True,
        "snapshot_config": {"interval": 100},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _run_dir(folder):
    runs = sorted(glob.glob(str(folder / "out" / "tiny-*")), key=os.path.getmtime)
    return runs[-1]


def _checkpoint(folder, iteration):
    return paddle.load(os.path.join(_run_dir(folder), f"iter_{iteration}_checkpoint.pdparams"),
                       return_numpy=True)


def _flat(tree, prefix=""):
    """{path: array} for every numeric leaf of a nested checkpoint."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, (np.ndarray, float, int)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = np.asarray(value, dtype=np.float64)
    return out


def _assert_same_state(a, b):
    fa, fb = _flat({k: v for k, v in a.items() if k != "rng_state"}), _flat(
        {k: v for k, v in b.items() if k != "rng_state"})
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_allclose(fa[key], fb[key], rtol=1e-6, atol=1e-7, err_msg=key)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    assert main(["-c", _write_config(folder, threshold=0.0), "--seed", "3"]) == 0
    return folder


def test_resume_after_ctrl_c_matches_an_uninterrupted_run(tmp_path, full_run):
    config = _write_config(tmp_path, threshold=0.0, interrupt_at=[4])
    assert main(["-c", config, "--seed", "3"]) == 130  # Ctrl-C: finish iteration 4, save, stop
    saved = sorted(os.listdir(_run_dir(tmp_path)))
    assert "iter_4_checkpoint.pdparams" in saved and "iter_5_weight.pdparams" not in saved
    interrupted = _checkpoint(tmp_path, 4)
    assert interrupted["iteration"] == 4 and interrupted["model_state"]["switched"]
    assert interrupted["loader"] == {"epoch": 1, "batches_done": 1, "seed": 3}

    resume_cfg = _write_config(tmp_path, threshold=0.0)
    path = os.path.join(_run_dir(tmp_path), "iter_4_checkpoint.pdparams")
    assert main(["-c", resume_cfg, "--seed", "3", "--resume", path]) == 0
    resumed = _checkpoint(tmp_path, 10)
    full = _checkpoint(full_run, 10)
    assert resumed["iteration"] == full["iteration"] == 10
    assert resumed["optimizers"]["optimizer_G"]["LR_Scheduler"]["last_lr"] == pytest.approx(0.0025)
    _assert_same_state(resumed, full)
    log = open(os.path.join(_run_dir(tmp_path), "log.txt")).read()
    assert "Iter: 5/10" in log and "Iter: 4/10" not in log


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path, stop):
    """A job scheduler's SIGTERM or a closed terminal's SIGHUP: finish the iteration, save, and
    exit with 128 + the signal."""
    config = _write_config(tmp_path, threshold=0.0, interrupt_at=[4], interrupt_signal=stop)
    assert main(["-c", config, "--seed", "3"]) == 128 + signal.Signals[stop]
    saved = sorted(os.listdir(_run_dir(tmp_path)))
    assert "iter_4_checkpoint.pdparams" in saved and "iter_5_weight.pdparams" not in saved
    assert not [name for name in saved if ".part" in name]


@pytest.mark.skipif(not can_mount(), reason="mounting a small tmpfs needs root")
def test_a_full_disk_stops_training_with_one_line_and_no_partial_checkpoint(tmp_path, capsys):
    config = _write_config(tmp_path)  # its output_dir, tmp_path/out, is the small disk
    with small_disk(tmp_path / "out", "64k") as disk:
        (disk / "filler").write_bytes(b"\0" * (56 << 10))
        code = main(["-c", config])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1, err
        assert re.fullmatch(r"main\.py: error: no space left on device: .*\.pdparams", err[-1]), err[-1]
        assert "Traceback" not in "\n".join(err)
        run = _run_dir(tmp_path)
        assert not [name for name in os.listdir(run) if ".part" in name]


def test_load_is_not_resume(tmp_path, full_run):
    """Control: weights alone (fresh optimizer, schedule and data order) end elsewhere."""
    weights = os.path.join(_run_dir(full_run), "iter_10_weight.pdparams")
    config = _write_config(tmp_path, threshold=0.0)
    assert main(["-c", config, "--seed", "3", "--load", weights]) == 0
    loaded = _checkpoint(tmp_path, 10)
    full = _checkpoint(full_run, 10)
    with pytest.raises(AssertionError):
        _assert_same_state(loaded, full)


def test_log_lines_follow_paddlegan(full_run):
    lines = open(os.path.join(_run_dir(full_run), "log.txt")).read().splitlines()
    pattern = (r"^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] ppgan INFO: Iter: 7/10 lr: 5\.000e-03 "
               r"mse: \d+\.\d{3} batch_cost: \d+\.\d+ sec, reader_cost: \d+\.\d+ sec, "
               r"ips: \d+\.\d+ samples/s, eta: \d+:\d\d:\d\d$")
    assert any(re.match(pattern, line) for line in lines), "\n".join(lines[-15:])
    assert any("Eval at iter 9 (2 steps of 2 samples): mse:" in line for line in lines)


def test_collages_at_the_visual_interval_and_visualdl_warning(full_run):
    run = _run_dir(full_run)
    assert sorted(os.listdir(os.path.join(run, "visual_train"))) == [
        "iter_10_0.jpg", "iter_10_1.jpg", "iter_5_0.jpg", "iter_5_1.jpg"]
    collage = cv2.imread(os.path.join(run, "visual_train", "iter_5_1.jpg"))
    assert collage.shape == (2, 4, 3)  # one row (no time axis), a | b side by side
    np.testing.assert_allclose(collage[:, :2], 0, atol=3)
    np.testing.assert_allclose(collage[:, 2:], 255, atol=3)
    log = open(os.path.join(run, "log.txt")).read()
    try:
        import visualdl  # noqa: F401
    except ImportError:
        assert "enable_visualdl is set but the visualdl package is not installed" in log
    else:
        assert os.path.isdir(os.path.join(run, "visualdl"))


def test_second_ctrl_c_aborts_without_saving(tmp_path, capsys):
    config = _write_config(tmp_path, interrupt_at=[2])
    # Both signals arrive within iteration 2: the second one aborts at once.
    model_cls = MODELS.get("TinyModel")
    original = model_cls.train_iter

    def twice(self):
        if self.calls + 1 == 2:
            os.kill(os.getpid(), signal.SIGINT)
        original(self)

    model_cls.train_iter = twice
    try:
        assert main(["-c", config]) == 130
    finally:
        model_cls.train_iter = original
    assert "aborted without saving" in capsys.readouterr().err
    assert not glob.glob(os.path.join(_run_dir(tmp_path), "*.pdparams"))


def test_evaluate_only_reports_and_writes_no_weights(tmp_path, full_run):
    weights = os.path.join(_run_dir(full_run), "iter_10_weight.pdparams")
    assert main(["-c", _write_config(tmp_path), "--load", weights, "--evaluate-only"]) == 0
    log = open(os.path.join(_run_dir(tmp_path), "log.txt")).read()
    assert re.search(r"Eval at iter 0 \(2 steps of 2 samples\): mse: \d+\.\d{4}", log)
    assert not glob.glob(os.path.join(_run_dir(tmp_path), "*.pdparams"))


def _with_metrics(config):
    cfg = yaml.safe_load(open(config))
    cfg["validate"]["metrics"] = {"psnr": {"name": "PSNR"}, "ssim": {"name": "SSIM"}}
    with open(config, "w") as file:
        yaml.safe_dump(cfg, file)
    return config


def test_validation_scores_the_metrics_of_the_config(tmp_path):
    config = _with_metrics(_write_config(tmp_path, name="TinyImageModel"))
    assert main(["-c", config, "--evaluate-only"]) == 0
    log = open(os.path.join(glob.glob(str(tmp_path / "out" / "tiny-*"))[0], "log.txt")).read()
    found = re.search(r"Eval at iter 0 .*: mse: \d+\.\d+, psnr: (\d+\.\d+), ssim: (\d+\.\d+)", log)
    assert found, log
    # A constant error of 16: MSE 256; SSIM of two flat images is the C1 term alone.
    c1 = (0.01 * 255) ** 2
    assert float(found.group(1)) == pytest.approx(10 * np.log10(255 ** 2 / 256), abs=1e-4)
    assert float(found.group(2)) == pytest.approx(c1 / (256 + c1), abs=1e-4)


def test_metrics_for_a_model_without_images_are_one_line(tmp_path, capsys):
    assert main(["-c", _with_metrics(_write_config(tmp_path)), "--evaluate-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["main.py: error: validate.metrics: TinyModel makes no images to score; "
                   "remove the section"], err


@pytest.mark.parametrize("argv_tail, message", [
    (["-o", "model.nope=1"], "unknown config key 'model.nope'"),
    (["--amp"], "--amp needs a CUDA build"),
    (["--resume", "/nonexistent/iter_1_checkpoint.pdparams"], "checkpoint not found"),
    (["-o", "model.name=NoSuchModel"], "no MODEL named 'NoSuchModel'"),
])
def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys, argv_tail, message):
    assert main(["-c", _write_config(tmp_path)] + argv_tail) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


# ----------------------------------------------------------------------------------- units
def test_sampler_shards_are_disjoint_and_seeded():
    shards = [list(ResumableBatchSampler(12, 2, nranks=2, rank=r, seed=5)) for r in range(2)]
    flat = [i for shard in shards for batch in shard for i in batch]
    assert sorted(flat) == list(range(12))
    again = ResumableBatchSampler(12, 2, nranks=2, rank=0, seed=5)
    assert list(again) == shards[0]
    again.set_epoch(0, skip=2)
    assert list(again) == shards[0][2:]
    other_seed = ResumableBatchSampler(12, 2, nranks=2, rank=0, seed=6)
    other_epoch = ResumableBatchSampler(12, 2, nranks=2, rank=0, seed=5)
    other_epoch.set_epoch(1)
    assert list(other_seed) != shards[0] and list(other_epoch) != shards[0]


def test_sampler_drop_last_and_padding():
    sampler = ResumableBatchSampler(7, 2, nranks=2, rank=1, drop_last=True)
    assert len(sampler) == 2 and all(len(b) == 2 for b in sampler)  # 4 per rank after padding
    sampler = ResumableBatchSampler(7, 3, shuffle=False, drop_last=False)
    assert list(sampler) == [[0, 1, 2], [3, 4, 5], [6]] and len(sampler) == 3


def test_iter_loader_resumes_the_same_batches():
    dataset = TinyDataset(num_samples=5, seed=1)
    loader = paddle.io.DataLoader(dataset, batch_sampler=ResumableBatchSampler(5, 2, seed=1))
    reference = IterLoader(loader, loader.batch_sampler)
    for _ in range(3):
        next(reference)
    state = reference.state()
    assert state == {"epoch": 1, "batches_done": 1, "seed": 1}
    expected = [next(reference)["x"].numpy() for _ in range(4)]

    dataset2 = TinyDataset(num_samples=5, seed=1)
    loader2 = paddle.io.DataLoader(dataset2, batch_sampler=ResumableBatchSampler(5, 2, seed=1))
    resumed = IterLoader(loader2, loader2.batch_sampler, state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)["x"].numpy(), want)


def test_iter_loader_refuses_an_epoch_without_batches():
    loader = paddle.io.DataLoader(TinyDataset(1), batch_sampler=ResumableBatchSampler(1, 2))
    with pytest.raises(ValueError, match="no full batch"):
        IterLoader(loader, loader.batch_sampler)


def test_linear_decay():
    schedule = LinearDecay(1.0, start_epoch=2, decay_epochs=3, iters_per_epoch=2)
    rates = []
    for _ in range(12):
        rates.append(schedule.get_lr())
        schedule.step()
    # PaddleGAN: 1 - max(0, epoch + 1 - start_epoch) / (decay_epochs + 1), epochs of 2 iterations.
    assert rates == pytest.approx([1, 1, 1, 1, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0, 0])
    # PaddleGAN divides by iters_per_epoch, which is 0 with fewer clips than the batch size.
    assert LinearDecay(1e-4, 2000000, 2000000, iters_per_epoch=0).get_lr() == pytest.approx(1e-4)


def test_optimizer_state_survives_different_parameter_names():
    paddle.seed(0)
    net = TinyNet()
    optimizer = paddle.optimizer.Adam(0.1, parameters=net.parameters(), beta1=0.5)
    for _ in range(2):
        net(paddle.ones([2, 4])).sum().backward()
        optimizer.step()
        optimizer.clear_grad()
    state = portable_optimizer_state(optimizer, structured_names({"netG": net}))

    nn.Linear(3, 3)  # shifts Paddle's internal parameter names in this process
    twin = TinyNet()
    twin.set_state_dict(net.state_dict())
    assert [p.name for p in twin.parameters()] != [p.name for p in net.parameters()]
    twin_optimizer = paddle.optimizer.Adam(0.1, parameters=twin.parameters(), beta1=0.5)
    restore_optimizer_state(twin_optimizer, state, structured_names({"netG": twin}), "test")
    for model, opt in ((net, optimizer), (twin, twin_optimizer)):
        model(paddle.ones([2, 4])).sum().backward()
        opt.step()
    for a, b in zip(net.parameters(), twin.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
