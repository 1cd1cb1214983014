"""Export the Wav2Lip generator as a Paddle Inference model (`<output_dir>/<model_name>.*`).

    python tools/export_model.py --load wav2lip.pdparams [--output_dir inference_model]
    python tools/export_model.py --random-init --output_dir /tmp/bench   # tests and benchmarks

`--load` takes a flat generator state dict or a trainer checkpoint holding it (under `netG`).
"""
import argparse
import logging
import os
import sys
import warnings
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.utils.cli import OneLineParser, report, run_main  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog="export_model", description=__doc__.splitlines()[0])
    parser.add_argument("--load", help="generator weights (.pdparams): flat or a trainer checkpoint")
    parser.add_argument("--output_dir", default="inference_model", help="where to write the model")
    parser.add_argument("--model_name", default="wav2lip", help="file name prefix of the model")
    parser.add_argument("--random-init", action="store_true",
                        help="export randomly initialised weights (for tests and benchmarks)")
    args = parser.parse_args(argv)
    if not args.load and not args.random_init:
        parser.error("--load WEIGHTS.pdparams is required (or --random-init for a test model)")
    if args.load and args.random_init:
        parser.error("--load and --random-init are mutually exclusive")
    if args.load and not os.path.isfile(args.load):  # before the slow `import paddle`
        parser.error(f"weights file not found: {args.load}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    return run_main("export_model", lambda: export(args), (ValueError,),
                    interrupted="interrupted: nothing exported")


def export(args: argparse.Namespace) -> int:
    import paddle

    from ppgan.models.generators import Wav2Lip
    from ppgan.utils.atomic import AtomicPath
    from ppgan.apps.generator_runner import export_generator
    from ppgan.utils.weights import load_weights

    paddle.set_device("cpu")  # tracing needs no GPU, and the saved model runs on either
    net = Wav2Lip()
    if args.load:
        load_weights(net, args.load)
    os.makedirs(args.output_dir, exist_ok=True)
    # Trace into a hidden folder, then move the finished files into place: an interrupted
    # export leaves the output folder as it was.
    staging = AtomicPath(os.path.join(args.output_dir, args.model_name), directory=True)
    try:
        staged = export_generator(net, os.path.join(staging.temp, args.model_name))
        written = [os.path.join(args.output_dir, os.path.basename(path)) for path in staged]
        for source, target in zip(staged, written):
            os.replace(source, target)
    finally:
        staging.discard()
    weights = args.load or "random initialisation"
    report(f"exported Wav2Lip generator ({weights}) to: {', '.join(written)}")
    return 0


def quiet_library_output() -> None:
    """Keep the command's output to its summary line (set before `import paddle`)."""
    # Paddle warns at import time when no ccache is installed: irrelevant to this tool's users.
    warnings.filterwarnings("ignore", message=".*ccache.*")
    # `import paddle` sends INFO logs to stderr; the export's INFO line repeats the summary.
    logging.getLogger("ppgan").setLevel(logging.WARNING)


if __name__ == "__main__":
    quiet_library_output()
    sys.exit(main())
