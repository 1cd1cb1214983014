"""Convert original PyTorch weights (.pth) to PaddleGAN .pdparams, without needing torch.

    python tools/convert_weights.py wav2lip_gan.pth                  # -> wav2lip_gan.pdparams
    python tools/convert_weights.py lipsync_expert.pth -o syncnet.pdparams
    python tools/convert_weights.py s3fd.pth --net s3fd
    python tools/convert_weights.py syncnet_v2.model               # -> syncnet_v2.pdparams
    python tools/convert_weights.py GFPGANv1.4.pth                 # -> GFPGANv1.4.pdparams

Handles wav2lip.pth, wav2lip_gan.pth, lipsync_expert.pth, visual_quality_disc.pth, s3fd.pth,
syncnet_python's syncnet_v2.model (the SyncNet behind LSE-D/LSE-C, for tools/eval_lipsync.py),
and the face restorers GPEN-BFR-512.pth (--net gpen), GFPGANv1.pth (gfpgan) and
GFPGANCleanv1-NoCE-C2.pth / GFPGANv1.3.pth / GFPGANv1.4.pth (gfpgan_clean); the network and its
size are detected from the keys and shapes unless --net forces the network.
"""
import argparse
import os
import sys
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.utils.cli import OneLineParser, exit_with, report, run_main, setup_logging  # noqa: E402

from ppgan.convert_weights import convert_checkpoint  # noqa: E402
from ppgan.utils.convert import NETWORKS  # noqa: E402

PROG = "convert_weights"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("input", help="PyTorch checkpoint (.pth)")
    parser.add_argument("-o", "--output", help="output .pdparams (default: INPUT with .pdparams)")
    parser.add_argument("--net", choices=NETWORKS,
                        help="network the weights belong to (default: detected from the keys)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the conversion steps")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)

    def convert() -> int:
        result = convert_checkpoint(args.input, args.output, args.net)
        report(f"{result.network}: {result.num_tensors} tensors ({result.num_values:,} values, "
               f"{result.dropped} num_batches_tracked dropped) -> {result.output}")
        return 0

    # OSError: a missing input, an unwritable output folder, ...
    return run_main(PROG, convert, (OSError,))


if __name__ == "__main__":
    exit_with(main())
