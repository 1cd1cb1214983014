"""LSE-D / LSE-C lip-sync scores (syncnet_python's SyncNet) of one video, a folder or a filelist.

    python tools/eval_lipsync.py results/ --syncnet_path syncnet_v2.pdparams
    python tools/eval_lipsync.py --filelist lrs2.txt --results_dir results/ --syncnet_path ...
    python tools/eval_lipsync.py talk.mp4 --mode real --syncnet_path ...    # detect+track faces

Writes one CSV row per scored video (per face track in --mode real): path, track, lse_d, lse_c,
offset, windows; prints the means. Videos that cannot be scored are skipped with a logged reason.
The default decoding reproduces the reference's JPEG/WAV path, so the numbers are comparable with
published ones; --decode direct is faster but NOT comparable.
"""
import argparse
import os
import sys
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.faceutils.detectors import DETECTORS  # noqa: E402
from ppgan.utils.cli import (NON_NEGATIVE_INT, NON_NEGATIVE_NUMBER, POSITIVE_INT,  # noqa: E402
                             POSITIVE_NUMBER, OneLineParser, exit_with, report, run_main,
                             setup_logging)

PROG = "eval_lipsync"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("input", nargs="?", help="a video, or a folder of videos (see --pattern)")
    p.add_argument("--filelist", help="test pairs 'audio_src video' per line: scores "
                   "RESULTS_DIR/{line index}.mp4, as written by gen_videos_from_filelist.py")
    p.add_argument("--results_dir", help="folder of the generated videos (with --filelist)")
    p.add_argument("--syncnet_path", help="SyncNet weights: syncnet_v2.pdparams (converted with "
                   "tools/convert_weights.py) or the original syncnet_v2.model")
    p.add_argument("--mode", choices=("clip", "real"), default="clip",
                   help="clip: face-cropped videos, the whole frame resized to 224x224 (LRS2 "
                   "protocol); real: detect, track and crop faces first (default: clip)")
    p.add_argument("--decode", choices=("compatible", "direct"), default="compatible",
                   help="compatible: the reference's ffmpeg JPEG + WAV path (default); direct: "
                   "no temporary files, faster, not comparable with published numbers")
    p.add_argument("-o", "--output", default="lse_scores.csv", help="CSV to write")
    p.add_argument("--pattern", default="*.mp4", help="files to score in a folder")
    p.add_argument("--vshift", type=NON_NEGATIVE_INT, default=15,
                   help="offsets searched: -vshift..vshift")
    p.add_argument("--batch_size", type=POSITIVE_INT, default=20, help="SyncNet windows per batch")
    p.add_argument("--tmp_dir", help="where temporary frames go (default: system temp)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is present")
    real = p.add_argument_group("--mode real (syncnet_python run_pipeline.py settings)")
    real.add_argument("--face_detector", choices=list(DETECTORS), default="sfd")
    real.add_argument("--detector_path", help="local face-detector weights")
    real.add_argument("--facedet_scale", type=POSITIVE_NUMBER, default=0.25)
    real.add_argument("--crop_scale", type=NON_NEGATIVE_NUMBER, default=0.40)
    real.add_argument("--min_track", type=NON_NEGATIVE_INT, default=100)
    real.add_argument("--min_face_size", type=NON_NEGATIVE_INT, default=100)
    real.add_argument("--num_failed_det", type=NON_NEGATIVE_INT, default=25)
    p.add_argument("-v", "--verbose", action="store_true", help="log every video's scores")
    args = p.parse_args(argv)
    _check_args(p, args)
    return args


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.input is None) == (args.filelist is None):
        p.error("give either a video/folder or --filelist")
    if args.filelist and not args.results_dir:
        p.error("--filelist needs --results_dir (the folder of the generated {idx}.mp4)")
    if not args.syncnet_path:
        p.error("--syncnet_path is required (there is no Paddle release of these weights): "
                "download syncnet_v2.model with syncnet_python's download_model.sh, then "
                "python tools/convert_weights.py syncnet_v2.model")
    if args.tmp_dir and not os.path.isdir(args.tmp_dir):
        p.error(f"--tmp_dir {args.tmp_dir} is not a folder")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        p.error(f"output folder {out_dir} does not exist")


def _videos(args: argparse.Namespace, bench) -> List[str]:
    if args.input is not None:
        return bench.collect_videos(args.input, args.pattern)
    if not os.path.isdir(args.results_dir):
        raise FileNotFoundError(f"--results_dir {args.results_dir} is not a folder")
    pairs = bench.read_test_pairs(args.filelist)
    return [os.path.join(args.results_dir, f"{pair.idx}.mp4") for pair in pairs]


def _score_fn(args: argparse.Namespace, scorer, bench):
    if args.mode == "clip":
        return bench.clip_score_fn(scorer)
    from ppgan.faceutils.detectors import build_detector
    from ppgan.metrics.face_tracks import TrackConfig

    cfg = TrackConfig(facedet_scale=args.facedet_scale, crop_scale=args.crop_scale,
                      min_track=args.min_track, min_face_size=args.min_face_size,
                      num_failed_det=args.num_failed_det)
    return bench.RealVideoScorer(scorer, build_detector(args.face_detector, args.detector_path), cfg)


def run(args: argparse.Namespace) -> int:
    import paddle

    from ppgan.metrics import lse_benchmark as bench
    from ppgan.metrics.lipsync import LipSyncScorer
    from ppgan.metrics.syncnet_eval import load_syncnet_v2

    if args.cpu:
        paddle.set_device("cpu")
    videos = _videos(args, bench)
    scorer = LipSyncScorer(load_syncnet_v2(args.syncnet_path), args.vshift, args.batch_size,
                           args.decode, args.tmp_dir)
    # A single video is scored strictly (its problem is the error); many are skipped past.
    single = args.input is not None and os.path.isfile(args.input)
    skip_errors = () if single else bench.VIDEO_ERRORS
    rows, skipped = bench.score_videos(videos, _score_fn(args, scorer, bench), skip_errors)
    bench.write_csv(rows, args.output)
    if not rows:
        print(f"{PROG}: error: none of the {len(videos)} video(s) could be scored "
              f"(first reason: {skipped[0][1]})", file=sys.stderr)
        return 2
    lse_d, lse_c = bench.mean_scores(rows)
    scored = len(videos) - len(skipped)
    note = ["note: --decode direct; these numbers are not comparable with published ones"]
    report(f"scored {scored} of {len(videos)} video(s) ({len(skipped)} skipped), {len(rows)} "
           f"row(s) -> {args.output}", f"LSE-D (mean min dist): {lse_d:.3f}",
           f"LSE-C (mean confidence): {lse_c:.3f}", *(note if args.decode == "direct" else []))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    # ValueError: a malformed filelist, a bad checkpoint, ...
    return run_main(PROG, lambda: run(args), (ValueError,),
                    interrupted="interrupted: no scores written")


if __name__ == "__main__":
    exit_with(main())
