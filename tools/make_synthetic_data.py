"""Make synthetic talking-face clips (mouths follow their own audio) for tests and smoke tests.

    # preprocessed LRS2 layout + filelists, ready for Wav2LipDataset:
    python tools/make_synthetic_data.py --out_dir data/synthetic --num_dirs 2 --clips_per_dir 4
    #   dataroot: data/synthetic   filelists_path: data/synthetic/filelists
    # raw mp4 videos with audio, for tools/preprocess_lrs2.py (rates cycle over the clips):
    python tools/make_synthetic_data.py --out_dir data/synthetic_raw --raw_videos --fps 25 30

Deterministic in --seed. See ppgan/datasets/synthetic.py for what the clips look like.
"""
import argparse
import os
import sys
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.utils.cli import OneLineParser, run_main, setup_logging  # noqa: E402

PROG = "make_synthetic_data"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out_dir", required=True, help="output folder")
    parser.add_argument("--num_dirs", type=int, default=2, help="folders (speakers)")
    parser.add_argument("--clips_per_dir", type=int, default=3, help="clips per folder")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--img_size", type=int, default=96,
                        help="preprocessed layout: about the size of the face crops")
    parser.add_argument("--filelists_dir", default=None,
                        help="preprocessed layout: where the filelists go (default OUT_DIR/filelists)")
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--test_fraction", type=float, default=0.0)
    parser.add_argument("--raw_videos", action="store_true",
                        help="write <dir>/<vid>.mp4 videos with audio instead of the preprocessed layout")
    parser.add_argument("--fps", type=float, nargs="+", default=[25.0],
                        help="raw videos: frame rate(s), cycled over the clips")
    parser.add_argument("--frame_size", type=int, default=192, help="raw videos: frame side")
    args = parser.parse_args(argv)
    if min(args.num_dirs, args.clips_per_dir) < 1 or args.seconds <= 0:
        parser.error("--num_dirs and --clips_per_dir must be >= 1 and --seconds > 0")
    if min(args.fps) <= 0 or args.img_size < 16 or args.frame_size < 32:
        parser.error("--fps must be > 0, --img_size >= 16, --frame_size >= 32")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()

    def make() -> int:
        from ppgan.datasets import synthetic

        if args.raw_videos:
            videos = synthetic.make_raw_videos(args.out_dir, args.num_dirs, args.clips_per_dir,
                                               args.seconds, args.fps, args.frame_size, args.seed)
            print(f"wrote {len(videos)} videos under {args.out_dir}")
        else:
            names = synthetic.make_synthetic_dataset(
                args.out_dir, args.num_dirs, args.clips_per_dir, args.seconds, args.img_size,
                args.seed, args.filelists_dir, args.val_fraction, args.test_fraction)
            print(f"wrote {len(names)} clips under {args.out_dir}, filelists in "
                  f"{args.filelists_dir or os.path.join(args.out_dir, 'filelists')}")
        return 0

    from ppgan.datasets.preprocess import PreprocessError
    from ppgan.utils.ffmpeg_tools import FFmpegError

    return run_main(PROG, make, (PreprocessError, FFmpegError, OSError),
                    interrupted="interrupted: finished clips are kept")


if __name__ == "__main__":
    sys.exit(main())
