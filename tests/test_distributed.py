"""Data-parallel training with `paddle.distributed.launch` on the CPU (two gloo ranks).

The expert config keeps the two processes cheap; the generator configs go through the same
Trainer code (DataParallel wrapping, sharded sampler, rank-0-only files).
"""
import glob
import os
import re
import subprocess
import sys

import pytest

from ppgan.data_preparation.synthetic import make_synthetic_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNCNET_CFG = os.path.join(REPO, "configs", "syncnet.yaml")


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    data = root / "data"
    make_synthetic_dataset(str(data), num_dirs=2, clips_per_dir=3, seconds=2.0, seed=2)
    overrides = [f"output_dir={root / 'out'}", "total_iters=2", "validate.interval=2",
                 "model.max_eval_steps=1", "log_config.interval=1", "snapshot_config.interval=1"]
    for split in ("train", "test"):
        overrides += [f"dataset.{split}.dataroot={data}", f"dataset.{split}.filelists_path={data}/filelists",
                      f"dataset.{split}.batch_size=2", f"dataset.{split}.num_workers=0"]
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", str(root / "launch"), os.path.join(REPO, "tools", "main.py"),
               "-c", SYNCNET_CFG, "-o"] + overrides
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "PADDLE_TRAINER_ID")}
    result = subprocess.run(command, cwd=str(root), env=env, capture_output=True, text=True,
                            timeout=600)
    logs = {rank: open(root / "launch" / f"workerlog.{rank}").read() for rank in (0, 1)
            if (root / "launch" / f"workerlog.{rank}").exists()}
    return {"result": result, "root": root, "logs": logs}


def test_two_ranks_train_and_finish(launched):
    result = launched["result"]
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:], launched["logs"])
    assert set(launched["logs"]) == {0, 1}


def test_rank_zero_alone_writes_the_run_folder(launched):
    runs = glob.glob(str(launched["root"] / "out" / "*"))
    assert len(runs) == 1, runs  # rank 1 created no folder of its own
    files = sorted(os.listdir(runs[0]))
    assert files == ["iter_1_weight.pdparams", "iter_2_checkpoint.pdparams",
                     "iter_2_weight.pdparams", "log.txt"], files
    log = open(os.path.join(runs[0], "log.txt")).read()
    assert "2 batches of 2 per epoch on each of 2 rank(s)" in log or "per epoch on each of 2 rank(s)" in log
    assert re.search(r"Iter: 2/2 lr: 1\.000e-04 bce_loss: \d+\.\d+", log)
    assert re.search(r"Eval at iter 2 \(1 steps of 2 samples on each of 2 ranks\): bce_loss: ", log)
    # Rank 1 logs warnings and errors only, and no training lines.
    assert "Iter:" in launched["logs"][0] and "Iter:" not in launched["logs"][1]


def test_weights_are_identical_across_ranks_after_each_step(launched):
    runs = glob.glob(str(launched["root"] / "out" / "*"))
    log = open(os.path.join(runs[0], "log.txt")).read()
    checks = re.findall(r"replica check: (.*)", log)
    # A check at each save (iterations 1 and 2), comparing all parameters of both ranks.
    assert checks == ["the trainable parameters of all 2 ranks are identical"] * 2, checks
