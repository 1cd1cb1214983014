"""Run set-up for `tools/main.py`: output folder, logger, device, threads, seeds and AMP flags."""
import argparse
import logging
import os
import random
import time
from typing import Tuple

import numpy as np
import paddle

from .config import AttrDict, dump_config
from .logger import setup_logger
from .errors import UserError

# A run without --seed is reproducible too; every rank must agree on it anyway (data sharding).
DEFAULT_SEED = 0


class SetupError(UserError, ValueError):
    """A run that cannot start as asked (e.g. --amp without a GPU)."""


def distributed_env() -> Tuple[int, int]:
    """(rank, world size) as `paddle.distributed.launch` sets them; (0, 1) for a plain run."""
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
    world_size = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    return rank, world_size


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_device(world_size: int) -> str:
    """The GPU on a CUDA build, else the CPU with the cores shared between the local ranks."""
    if paddle.is_compiled_with_cuda():
        paddle.set_device("gpu")  # under launch, each rank sees its own card as gpu:0
        return "gpu"
    paddle.set_device("cpu")
    threads = max(1, available_cpus() // world_size)
    paddle.set_flags({"FLAGS_paddle_num_threads": threads})
    # The flag alone leaves the math library (conv/GEMM kernels) on one thread; this call
    # about halves a training iteration on 2 cores.
    paddle.base.core.set_num_threads(threads)
    return "cpu"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)


def _unique_dir(path: str) -> str:
    """Two runs started in the same second must not share (and overwrite) one folder."""
    candidate, count = path, 1
    while os.path.exists(candidate):
        candidate, count = f"{path}-{count}", count + 1
    return candidate


def setup(args: argparse.Namespace, cfg: AttrDict) -> logging.Logger:
    """Fill the runtime keys of `cfg` (is_train, output_dir, seed, amp, ...) and start logging."""
    rank, world_size = distributed_env()
    if args.amp and not paddle.is_compiled_with_cuda():
        raise SetupError("--amp needs a CUDA build of PaddlePaddle and a GPU; this PaddlePaddle "
                         "runs on the CPU only, so train without --amp")
    cfg.is_train = not args.evaluate_only
    cfg.timestamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    cfg_name = os.path.splitext(os.path.basename(args.config_file))[0]
    run_dir = os.path.join(cfg.get("output_dir", "output"), f"{cfg_name}-{cfg.timestamp}")
    cfg.output_dir = _unique_dir(run_dir) if rank == 0 else run_dir
    logger = setup_logger(cfg.output_dir if rank == 0 else None, rank)
    cfg.device = choose_device(world_size)
    cfg.seed = DEFAULT_SEED if args.seed is None else args.seed
    seed_everything(cfg.seed)
    cfg.amp = bool(args.amp)
    cfg.amp_level = args.amp_level
    cfg.world_size = world_size
    logger.info("config %s (run folder %s):\n%s", args.config_file, cfg.output_dir,
                dump_config(cfg))
    return logger
