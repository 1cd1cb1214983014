"""The lip-sync expert learns audio-visual sync from scratch (configs/syncnet.yaml, CPU).

Synthetic talking faces whose mouth opening follows their own audio; the expert sees in-sync and
off-sync windows (label 1/0, half each) and is scored on held-out clips with the reference
metric, the BCE of cos(audio, face) against the label, with BatchNorm in eval mode.

Any predictor that ignores its input scores at least the entropy of the label mix (about 0.69,
ln 2, for a balanced set); the untrained expert scores above it. The bound asserted below is
well under that floor. On 2 CPU cores the run takes about 4 minutes (56 iterations of 16
samples, the rate lowered for the last quarter so the BatchNorm statistics settle); the
references train far longer (to about 0.25 on LRS2). The evaluation uses 384 windows: with a
hundred, the estimate of one net's BCE varied by +-0.06 between window draws.

The rate, 4e-4, suits the config's init (PyTorch's layer defaults, init_type pytorch): every conv
feeds a BatchNorm, so what counts is the step relative to the weights, and these start sqrt(6)
times smaller than Paddle's defaults, for which 1e-3 was right (at 1e-3 they reach only 0.63).
"""
import math
import os
import re

import numpy as np
import pytest

from ppgan.datasets import Wav2LipDataset
from ppgan.data_preparation.synthetic import make_synthetic_dataset
from tools_main import main  # registered by conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNCNET_CFG = os.path.join(REPO, "configs", "syncnet.yaml")
ITERATIONS, DECAY_AT, EVAL_SAMPLES, SEED = 56, 42, 384, 0


def _eval_bce(out_dir):
    runs = sorted(os.listdir(out_dir))
    log = open(os.path.join(out_dir, runs[-1], "log.txt")).read()
    found = re.findall(r"Eval at iter \d+ \(24 steps of 16 samples\): bce_loss: (\d+\.\d+), "
                       r"accuracy: (\d+\.\d+)", log)
    assert found, log[-2000:]
    return float(found[-1][0]), float(found[-1][1])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("expert")
    # 32 training clips ("speakers" with their own face and voice), 8 held-out clips.
    make_synthetic_dataset(str(root / "data"), num_dirs=4, clips_per_dir=10, seconds=2.0, seed=3)
    return root


def _options(root, out):
    data = root / "data"
    options = [f"output_dir={root / out}", f"total_iters={ITERATIONS}",
               f"validate.interval={ITERATIONS}", f"model.max_eval_steps={EVAL_SAMPLES // 16}", "log_config.interval=10",
               f"snapshot_config.interval={ITERATIONS}",
               f"dataset.test.samples_per_epoch={EVAL_SAMPLES}",
               "lr_scheduler={name: MultiStepDecay, learning_rate: 0.0004, "
               f"milestones: [{DECAY_AT}], gamma: 0.1}}"]
    for split in ("train", "test"):
        options += [f"dataset.{split}.dataroot={data}", f"dataset.{split}.filelists_path={data}/filelists",
                    f"dataset.{split}.batch_size=16", f"dataset.{split}.num_workers=0"]
    return options


def _label_entropy(root):
    """The best BCE any input-blind predictor reaches on the evaluation windows."""
    data = str(root / "data")
    dataset = Wav2LipDataset(data, filelists_path=os.path.join(data, "filelists"), split="val",
                             mode="syncnet", seed=SEED, samples_per_epoch=EVAL_SAMPLES)
    p = float(np.mean([dataset[i]["label"][0] for i in range(len(dataset))]))
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_expert_learns_sync_on_synthetic_faces(data):
    floor = _label_entropy(data)
    assert floor > 0.66  # a balanced evaluation set: about half in sync

    assert main(["-c", SYNCNET_CFG, "--seed", str(SEED), "--evaluate-only", "-o"]
                + _options(data, "untrained")) == 0
    untrained, _ = _eval_bce(data / "untrained")

    assert main(["-c", SYNCNET_CFG, "--seed", str(SEED), "-o"] + _options(data, "trained")) == 0
    trained, accuracy = _eval_bce(data / "trained")

    print(f"eval BCE untrained {untrained:.3f}, trained {trained:.3f} (accuracy {accuracy:.2f}); "
          f"input-blind floor {floor:.3f}")
    assert untrained > floor - 0.02
    assert trained < min(0.6, floor - 0.1), (untrained, trained, accuracy)
    assert accuracy >= 0.7
