"""Make synthetic talking-face clips (mouths follow their own audio) for tests and smoke tests.

    # preprocessed LRS2 layout + filelists, ready for Wav2LipDataset:
    python tools/make_synthetic_data.py --out_dir data/synthetic --num_dirs 2 --clips_per_dir 4
    #   dataroot: data/synthetic   filelists_path: data/synthetic/filelists
    # raw mp4 videos with audio, for tools/preprocess_lrs2.py (rates cycle over the clips):
    python tools/make_synthetic_data.py --out_dir data/synthetic_raw --raw_videos --fps 25 30

Deterministic in --seed. See ppgan/data_preparation/synthetic.py for what the clips look like.
"""
import argparse
import os
import sys
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.utils.checks import (MIN_CLIP_SECONDS, clip_seconds, integer,  # noqa: E402
                                 split_fractions)
from ppgan.utils.cli import (FRACTION, POSITIVE_INT, POSITIVE_NUMBER, SEED,  # noqa: E402
                             OneLineParser, arg_type, check_flags, exit_with, report, run_main,
                             setup_logging)

PROG = "make_synthetic_data"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out_dir", required=True, help="output folder")
    parser.add_argument("--num_dirs", type=POSITIVE_INT, default=2, help="folders (speakers)")
    parser.add_argument("--clips_per_dir", type=POSITIVE_INT, default=3, help="clips per folder")
    parser.add_argument("--seconds", type=arg_type(clip_seconds), default=3.0,
                        help=f"length of each clip (at least {MIN_CLIP_SECONDS}: one mel window)")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--img_size", type=arg_type(integer(16)), default=96,
                        help="preprocessed layout: about the size of the face crops")
    parser.add_argument("--filelists_dir", default=None,
                        help="preprocessed layout: where the filelists go (default OUT_DIR/filelists)")
    parser.add_argument("--val_fraction", type=FRACTION, default=0.2)
    parser.add_argument("--test_fraction", type=FRACTION, default=0.0)
    parser.add_argument("--raw_videos", action="store_true",
                        help="write <dir>/<vid>.mp4 videos with audio instead of the preprocessed layout")
    parser.add_argument("--fps", type=POSITIVE_NUMBER, nargs="+", default=[25.0],
                        help="raw videos: frame rate(s), cycled over the clips")
    parser.add_argument("--frame_size", type=arg_type(integer(32)), default=192,
                        help="raw videos: frame side")
    args = parser.parse_args(argv)
    check_flags(parser, args, {"val_fraction test_fraction": split_fractions})
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()

    def make() -> int:
        from ppgan.data_preparation import synthetic

        if args.raw_videos:
            videos = synthetic.make_raw_videos(args.out_dir, args.num_dirs, args.clips_per_dir,
                                               args.seconds, args.fps, args.frame_size, args.seed)
            report(f"wrote {len(videos)} videos under {args.out_dir}")
        else:
            names = synthetic.make_synthetic_dataset(
                args.out_dir, args.num_dirs, args.clips_per_dir, args.seconds, args.img_size,
                args.seed, args.filelists_dir, args.val_fraction, args.test_fraction)
            report(f"wrote {len(names)} clips under {args.out_dir}, filelists in "
                   f"{args.filelists_dir or os.path.join(args.out_dir, 'filelists')}")
        return 0

    return run_main(PROG, make, (OSError,),
                    interrupted="interrupted: finished clips are kept")


if __name__ == "__main__":
    exit_with(main())
