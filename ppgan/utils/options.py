"""The command line of `tools/main.py` (PaddleGAN's options, without the unused ones)."""
import argparse
from typing import List, Optional

from .cli import SEED, OneLineParser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="main.py", description="Train or evaluate a ppgan model.")
    parser.add_argument("-c", "--config-file", metavar="FILE", required=True,
                        help="YAML config, e.g. configs/wav2lip.yaml")
    parser.add_argument("--resume", metavar="CKPT", default=None,
                        help="continue a run from iter_N_checkpoint.pdparams: nets, optimizers, "
                             "iteration, data order and runtime state such as syncnet_wt")
    parser.add_argument("--load", metavar="WEIGHTS", default=None,
                        help="initialise nets from a weights file (trainer weights/checkpoint or a "
                             "flat .pdparams); starts at iteration 1")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="run the validation loop once and exit")
    parser.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config entries, e.g. -o total_iters=100 "
                             "dataset.train.batch_size=4 (values read as YAML)")
    parser.add_argument("--seed", type=SEED, default=None,
                        help="seed of initialisation and data order (default 0)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed-precision training (needs a CUDA build of PaddlePaddle)")
    parser.add_argument("--amp_level", choices=("O1", "O2"), default="O1",
                        help="O1: cast op by op; O2: fp16 weights with fp32 master copies")
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.resume and args.load:
        build_parser().error("--resume and --load are exclusive (--resume already restores weights)")
    return args
