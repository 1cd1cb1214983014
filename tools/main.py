"""Train or evaluate a model from a YAML config (PaddleGAN's `tools/main.py`).

    python tools/main.py -c configs/syncnet.yaml                  # the lip-sync expert
    python tools/main.py -c configs/wav2lip.yaml -o model.syncnet_path=expert.pdparams
    python tools/main.py -c configs/wav2lip.yaml --resume output/wav2lip-.../iter_3000_checkpoint.pdparams
    python tools/main.py -c configs/wav2lip.yaml --load weights.pdparams --evaluate-only
    python -m paddle.distributed.launch --nproc_per_node 4 tools/main.py -c configs/wav2lip_hq.yaml

Exit status: 0 done, 2 unusable input (one-line message), 1 disk full, 128 + the signal when
stopped by Ctrl-C (130), SIGTERM (143) or SIGHUP (129), after saving a checkpoint unless
signalled twice.
"""
import os
import sys
import warnings
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.utils.cli import exit_with, run_main  # noqa: E402
from ppgan.utils.options import parse_args  # noqa: E402  (needs the path above)

PROG = "main.py"


def _run(args) -> int:
    import ppgan.datasets  # noqa: F401  (registers the datasets)
    from ppgan.engine import Trainer
    from ppgan.utils.config import get_config
    from ppgan.utils.setup import setup

    cfg = get_config(args.config_file, args.opt)
    setup(args, cfg)
    trainer = Trainer(cfg)
    if args.resume:
        trainer.resume(args.resume)
    elif args.load:
        trainer.load(args.load)
    if args.evaluate_only:
        trainer.test()
        trainer.scalars.close()
        return 0
    return 0 if trainer.train() else 128 + trainer.stop_signal  # the shell's convention


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # Paddle warns at import that ccache (for building custom C++ ops) is missing: irrelevant.
    warnings.filterwarnings("ignore", message="No ccache found")
    # Wrong paths, configs, weights or data: one line, no traceback. (The config, dataset,
    # weights and checkpoint errors are all ValueErrors with messages naming the culprit.)
    return run_main(PROG, lambda: _run(args), (ValueError, KeyError),
                    interrupted="aborted without saving a checkpoint")


if __name__ == "__main__":
    exit_with(main())
