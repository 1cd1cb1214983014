"""Preprocess LRS2-style raw videos into face crops + 16 kHz audio for Wav2Lip/SyncNet training.

    python tools/preprocess_lrs2.py --data_root data/lrs2/main --preprocessed_root data/lrs2_preprocessed
    # several processes (GPUs, or machines sharing the output folder), then the filelists:
    python -m paddle.distributed.launch --nproc_per_node 4 tools/preprocess_lrs2.py \
        --data_root data/lrs2/main --preprocessed_root data/lrs2_preprocessed
    python tools/preprocess_lrs2.py --preprocessed_root data/lrs2_preprocessed --write_filelists

Reads `<data_root>/<dir>/<vid>.mp4` (and .avi/.mov/.mkv/.webm/...), writes
`<preprocessed_root>/<dir>/<vid>/{i}.jpg` (the face in 25 fps frame i; frames without a face are
skipped) and `audio.wav` (16 kHz mono), and a `preprocess_done.json` marker last. A rerun skips
finished clips and redoes half-written ones. Videos at other frame rates are resampled to 25 fps.

Sharding: process `--rank` of `--world_size` takes every world_size-th video (defaults:
PADDLE_TRAINER_ID / PADDLE_TRAINERS_NUM, which paddle.distributed.launch sets).

Filelists: `<filelists_dir>/{train,val,test}.txt` (one `<dir>/<vid>` per line; a deterministic
split of all finished clips with faces, by --val_fraction/--test_fraction/--split_seed) are written
by whichever process finds, when it finishes, that every video of data_root has been processed.
If that never happens (a failed clip, or machines without a shared folder), run again with
--write_filelists once all processes are done: it only writes the filelists.
"""
import argparse
import logging
import os
import sys
from typing import List, Optional

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.faceutils.detectors import DETECTORS  # noqa: E402
from ppgan.utils.checks import MIN_DETECTION_SIZE, split_fractions  # noqa: E402
from ppgan.utils.cli import (DETECTION_SIZE, FRACTION, NON_NEGATIVE_INT,  # noqa: E402
                             POSITIVE_INT, SEED, OneLineParser, check_flags, exit_with, run_main,
                             setup_logging)

PROG = "preprocess_lrs2"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.strip().splitlines()[0])
    parser.add_argument("--data_root", help="folder of <dir>/<vid>.mp4 raw videos")
    parser.add_argument("--preprocessed_root", required=True,
                        help="output folder for <dir>/<vid>/{i}.jpg and audio.wav")
    parser.add_argument("--batch_size", type=POSITIVE_INT, default=32,
                        help="face detection batch size")
    parser.add_argument("--face_detector", default="sfd", choices=list(DETECTORS),
                        help="face detector (sfd as the references; mtcnn needs no download)")
    parser.add_argument("--detector_path", default=None,
                        help="local face detector weights or model folder (default: download)")
    parser.add_argument("--det_max_size", type=DETECTION_SIZE, default=0,
                        help="detect on a copy whose longest side is at most this, at least "
                             f"{MIN_DETECTION_SIZE} (0: full size, as the references)")
    parser.add_argument("--rank", type=NON_NEGATIVE_INT, default=None,
                        help="this process's shard (default: $PADDLE_TRAINER_ID or 0)")
    parser.add_argument("--world_size", type=POSITIVE_INT, default=None,
                        help="number of shards (default: $PADDLE_TRAINERS_NUM or 1)")
    parser.add_argument("--filelists_dir", default="filelists",
                        help="where train.txt, val.txt and test.txt go")
    parser.add_argument("--val_fraction", type=FRACTION, default=0.05,
                        help="share of clips for val")
    parser.add_argument("--test_fraction", type=FRACTION, default=0.05,
                        help="share of clips for test")
    parser.add_argument("--split_seed", type=SEED, default=0,
                        help="seed of the train/val/test split")
    parser.add_argument("--write_filelists", action="store_true",
                        help="only write the filelists from the finished clips, then stop")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.write_filelists and not args.data_root:
        parser.error("--data_root is required (unless --write_filelists)")
    check_flags(parser, args, {"val_fraction test_fraction": split_fractions})
    return args


def _select_device() -> None:
    """Under paddle.distributed.launch each process uses the GPU it was given."""
    import paddle

    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().device_id}")


def _write_filelists(args: argparse.Namespace) -> None:
    from ppgan.data_preparation.lrs2 import PreprocessError, finished_clips, write_filelists

    names = finished_clips(args.preprocessed_root)
    if not names:
        raise PreprocessError(f"no finished clip with faces in {args.preprocessed_root}")
    write_filelists(names, args.filelists_dir, args.val_fraction, args.test_fraction, args.split_seed)


def run(args: argparse.Namespace) -> int:
    from ppgan.data_preparation import lrs2 as pp

    if args.write_filelists:
        _write_filelists(args)
        return 0
    rank, world_size = pp.shard_settings(args.rank, args.world_size)
    jobs = pp.plan_jobs(args.data_root, args.preprocessed_root)
    mine = pp.shard(jobs, rank, world_size)
    logging.getLogger(PROG).info("rank %d of %d: %d of %d videos", rank, world_size, len(mine),
                                 len(jobs))
    if args.face_detector in ("sfd", "blazeface"):  # the Paddle nets; mtcnn runs on cv2.dnn
        _select_device()
    detector = pp.build_box_detector(args.face_detector, args.batch_size, args.detector_path,
                                     args.det_max_size)
    summary = pp.preprocess_all(mine, detector, args.batch_size, progress=not args.no_progress,
                                desc=f"rank {rank}/{world_size}")
    if all(pp.is_finished(job.out_dir) for job in jobs):
        _write_filelists(args)
    else:
        logging.getLogger(PROG).info(
            "some videos are not finished yet (other processes, or failures): run with "
            "--write_filelists once all are done")
    return 1 if summary.failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    return run_main(PROG, lambda: run(args), (ImportError,),
                    interrupted="interrupted: finished clips are kept, a rerun resumes")


if __name__ == "__main__":
    exit_with(main())
