"""Generate the Wav2Lip benchmark videos: our predictor over a test filelist in the LRS2 layout.

    python tools/gen_videos_from_filelist.py --filelist lrs2.txt --data_root lrs2/main \\
        --results_dir results/ --checkpoint_path wav2lip.pdparams

Line ``idx`` of the filelist (``audio_src video``, e.g. ``6339758276407584924/00098
6330311066473698535/00011``) lip-syncs ``DATA_ROOT/video.mp4`` to the sound of
``DATA_ROOT/audio_src.mp4`` and writes ``RESULTS_DIR/{idx}.mp4``. As in the original
``evaluation/gen_videos_from_filelist.py`` a pair is skipped (and its reason logged and listed in
RESULTS_DIR/skipped.txt) when its mel-spectrogram has NaNs, its video has fewer frames than the
audio has mel windows, or a frame has no detectable face. Settings are the original's: 25 fps,
pads 0 0 0 0, every frame detected at full resolution (no detection cache, PaddleGAN's BlazeFace
crop and face order), box smoothing over 5 frames, hard paste.

Deviation: the output lasts as long as the audio (round(seconds * 25) frames); the original stops
at the last full 16-step mel window, up to 0.2 s earlier, and keeps the audio running past it.
"""
import argparse
import logging
import os
import sys
from typing import List, Optional, Tuple

# Run as a script from anywhere: make the repository's `ppgan` importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from ppgan.faceutils.detectors import DETECTORS  # noqa: E402
from ppgan.utils.checks import PREDICTOR_ARGS  # noqa: E402
from ppgan.utils.cli import (OneLineParser, arg_type, exit_with, report, run_main,  # noqa: E402
                             setup_logging)

PROG = "gen_videos_from_filelist"
FPS = 25
MEL_STEP_SIZE = 16
logger = logging.getLogger(PROG)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--filelist", required=True, help="test pairs, 'audio_src video' per line")
    p.add_argument("--results_dir", required=True, help="folder for {idx}.mp4 (created)")
    p.add_argument("--data_root", required=True, help="folder holding the pairs' .mp4 files")
    p.add_argument("--checkpoint_path", required=True, help="Wav2Lip generator .pdparams")
    p.add_argument("--pads", nargs=4, type=int, default=[0, 0, 0, 0],
                   help="padding (top, bottom, left, right) of the face box")
    p.add_argument("--face_det_batch_size", type=arg_type(PREDICTOR_ARGS["face_det_batch_size"]),
                   default=64)
    p.add_argument("--wav2lip_batch_size", type=arg_type(PREDICTOR_ARGS["wav2lip_batch_size"]),
                   default=128)
    p.add_argument("--face_detector", choices=list(DETECTORS), default="sfd")
    p.add_argument("--detector_path", help="local face-detector weights")
    p.add_argument("--skip_existing", action="store_true",
                   help="keep {idx}.mp4 files already present (resume an interrupted run)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is present")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    for name in ("filelist", "checkpoint_path"):
        if not os.path.isfile(getattr(args, name)):
            p.error(f"--{name} {getattr(args, name)} not found")
    if not os.path.isdir(args.data_root):
        p.error(f"--data_root {args.data_root} is not a folder")
    return args


def mel_chunk_count(mel_frames: int, fps: float = FPS) -> int:
    """How many 16-step windows the original cuts: starts int(i * 80 / fps) while they fit."""
    count = 0
    while int(count * 80.0 / fps) + MEL_STEP_SIZE <= mel_frames:
        count += 1
    return count


def count_frames(video: str, limit: int) -> int:
    """Frames actually decodable, counting no further than ``limit``."""
    import cv2

    capture = cv2.VideoCapture(video)
    count = 0
    try:
        while count < limit and capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def check_pair(audio_src: str, video: str) -> Optional[str]:
    """None if the pair is usable, else the reason the original would skip (or crash on) it."""
    import numpy as np

    from ppgan.utils.audio import load_wav, melspectrogram

    for path in (audio_src, video):
        if not os.path.isfile(path):
            return f"{path} not found"
    mel = melspectrogram(load_wav(audio_src))
    if np.isnan(mel).any():
        return "mel-spectrogram contains NaN"
    needed = mel_chunk_count(mel.shape[1])
    frames = count_frames(video, needed)
    if frames < needed:
        return f"video has {frames} frames, fewer than the audio's {needed} mel windows"
    return None


def generate(args: argparse.Namespace) -> Tuple[int, List[Tuple[int, str]]]:
    from ppgan.apps import Wav2LipPredictor
    from ppgan.metrics.lse_benchmark import read_test_pairs
    from ppgan.utils.download import DownloadError
    from ppgan.utils.errors import UserError, one_line
    from ppgan.utils.weights import WeightsError

    # Problems of one pair skip it; unusable weights would fail every pair, so they end the run.
    pairs = read_test_pairs(args.filelist)
    os.makedirs(args.results_dir, exist_ok=True)
    predictor = Wav2LipPredictor(
        checkpoint_path=args.checkpoint_path, fps=FPS, pads=args.pads,
        face_det_batch_size=args.face_det_batch_size, wav2lip_batch_size=args.wav2lip_batch_size,
        face_detector=args.face_detector, detector_path=args.detector_path,
        strict_face=True, blend="hard", reference_detection=True, cpu=args.cpu)
    done, skipped = 0, []
    for pair in pairs:
        out = os.path.join(args.results_dir, f"{pair.idx}.mp4")
        if args.skip_existing and os.path.isfile(out):
            done += 1
            continue
        audio = os.path.join(args.data_root, pair.audio_src + ".mp4")
        video = os.path.join(args.data_root, pair.video + ".mp4")
        try:
            reason = check_pair(audio, video)
            if reason is None:
                predictor.run(video, audio, out)
                done += 1
                continue
        except (UserError, FileNotFoundError) as err:  # e.g. "no face in frame 12": skipped, as the original does
            if isinstance(err, (WeightsError, DownloadError)):
                raise
            reason = one_line(err)
        logger.warning("line %d skipped: %s", pair.idx + 1, reason)
        skipped.append((pair.idx, reason))
    return done, skipped


def _write_skipped(results_dir: str, skipped: List[Tuple[int, str]]) -> str:
    from ppgan.utils.atomic import atomic_path

    path = os.path.join(results_dir, "skipped.txt")
    with atomic_path(path) as partial, open(partial, "w", encoding="utf-8") as f:
        for idx, reason in skipped:
            f.write(f"{idx}\t{reason}\n")
    return path


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)

    def run() -> int:
        done, skipped = generate(args)
        listing = _write_skipped(args.results_dir, skipped)
        report(f"{done} video(s) in {args.results_dir}, {len(skipped)} pair(s) skipped "
               f"(listed in {listing})")
        return 0

    # ValueError: a malformed filelist, unusable weights, ...
    return run_main(PROG, run, (ValueError,),
                    interrupted="interrupted: finished videos are kept (rerun with --skip_existing)")


if __name__ == "__main__":
    exit_with(main())
