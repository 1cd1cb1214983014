"""Export the Wav2Lip generator as Paddle Inference or ONNX models (the folder `<output_dir>/<model_name>`).

    python tools/export_model.py --load wav2lip.pdparams [--output_dir inference_model]
    python tools/export_model.py --load wav2lip.pdparams --format onnx   # needs paddle2onnx
    python tools/export_model.py --random-init --output_dir /tmp/bench   # tests and benchmarks

`--load` takes a flat generator state dict or a trainer checkpoint holding it (under `netG`).
The folder holds the programs the inference command runs (the face encoder; the audio encoder
with the decoder; the same drawing only the rows from 44 on, all the default mouth blend
shows), as it caches them for itself; give the folder to its `--checkpoint_path` to run them.
`--format onnx` writes the same stages as `face_encoder.onnx`, `decoder.onnx` and
`decoder_lower.onnx` (inputs `face`; `audio`, `skip0`..`skip6`; batch dynamic) for ONNX Runtime
or TensorRT.
"""
import argparse
import logging
import os
import sys
import warnings
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.utils.cli import OneLineParser, exit_with, report, run_main  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog="export_model", description=__doc__.splitlines()[0])
    parser.add_argument("--load", help="generator weights (.pdparams): flat or a trainer checkpoint")
    parser.add_argument("--output_dir", default="inference_model", help="where to write the model")
    parser.add_argument("--model_name", default="wav2lip",
                        help="name of the model's folder inside --output_dir")
    parser.add_argument("--format", choices=["paddle", "onnx"], default="paddle",
                        help="paddle: Paddle Inference programs (what --checkpoint_path runs); "
                             "onnx: ONNX models, through paddle2onnx")
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
    from ppgan.apps.generator_runner import export_onnx_stages, export_stages
    from ppgan.models.generators import Wav2Lip
    from ppgan.utils.atomic import atomic_path
    from ppgan.utils.device import place_network
    from ppgan.utils.weights import load_weights

    net = Wav2Lip()
    if args.load:
        load_weights(net, args.load)
    place_network(net, "cpu")  # tracing needs no GPU, and the saved model runs on either
    os.makedirs(args.output_dir, exist_ok=True)
    # Trace into a hidden folder that replaces the model's folder once complete: an
    # interrupted export leaves the output as it was.
    folder = os.path.join(args.output_dir, args.model_name)
    with atomic_path(folder, directory=True) as staging:
        write = export_onnx_stages if args.format == "onnx" else export_stages
        names = [os.path.basename(path) for path in write(net, staging)]
    weights = args.load or "random initialisation"
    report(f"exported Wav2Lip generator ({weights}) to {folder}: {', '.join(names)}")
    return 0


def quiet_library_output() -> None:
    """Keep the command's output to its summary line (set before `import paddle`)."""
    # Paddle warns at import time when no ccache is installed: irrelevant to this tool's users.
    warnings.filterwarnings("ignore", message=".*ccache.*")
    # `import paddle` sends INFO logs to stderr; the export's INFO line repeats the summary.
    logging.getLogger("ppgan").setLevel(logging.WARNING)


if __name__ == "__main__":
    quiet_library_output()
    exit_with(main())
