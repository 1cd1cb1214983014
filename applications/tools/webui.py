"""A local web page that lip-syncs an uploaded face video or photo to uploaded speech.

    python applications/tools/webui.py [--port 7860] [--checkpoint_path wav2lip_hq.pdparams]
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from ppgan.faceutils.detectors import DETECTORS  # noqa: E402
from ppgan.utils.cli import (OneLineParser, arg_type, exit_with, run_main,  # noqa: E402
                             setup_logging)
from ppgan.utils.checks import integer  # noqa: E402


def parse_args(argv=None):
    parser = OneLineParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoint_path", type=str, default=None,
                        help="generator weights, as for wav2lip.py (default: download "
                             "PaddleGAN's wav2lip_hq.pdparams); loaded once, at start")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only; 0.0.0.0: "
                             "every network the machine is on)")
    parser.add_argument("--port", type=arg_type(integer(1, 65535)), default=7860,
                        help="port to listen on")
    parser.add_argument("--face_detector", choices=list(DETECTORS), default="sfd",
                        help="the page's default face detector")
    parser.add_argument("--engine", choices=["static", "eager"], default="static",
                        help="as for wav2lip.py")
    parser.add_argument("--cpu", action="store_true", help="CPU even when Paddle has CUDA")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()

    def serve() -> int:
        from ppgan.apps.webui import serve  # after parsing, so that --help is instant

        serve(host=args.host, port=args.port, default_detector=args.face_detector,
              checkpoint_path=args.checkpoint_path, engine=args.engine, cpu=args.cpu)
        return 0

    return run_main("webui.py", serve, interrupted="stopped; working folder removed")


if __name__ == "__main__":
    exit_with(main())
