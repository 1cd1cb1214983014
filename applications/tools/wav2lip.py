"""Lip-sync a face video or photo to any speech audio.

    python applications/tools/wav2lip.py --face FACE --audio AUDIO --outfile OUT.mp4
    python applications/tools/wav2lip.py --jobs JOBS.csv  (many jobs, the weights loaded once)
"""
import argparse
import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from ppgan.faceutils.detectors import DETECTORS  # noqa: E402
from ppgan.utils.checks import BLENDS, MIN_DETECTION_SIZE, PRECISIONS, PREDICTOR_ARGS  # noqa: E402
from ppgan.utils.cli import (OneLineParser, arg_type, check_flags, exit_with, report,  # noqa: E402
                             run_main, setup_logging)


# The references' default; they ship an empty results/ folder, which is created here instead.
DEFAULT_OUTFILE = os.path.join("results", "result_voice.mp4")


def _checked(name: str) -> Callable[[str], Any]:
    """The flag's type: the predictor's own check of the argument of that name."""
    return arg_type(PREDICTOR_ARGS[name])


def cross_checks(parser: OneLineParser, args: argparse.Namespace) -> None:
    """The rules over several numbers or flags: after every parse, a job list's rows too."""
    check_flags(parser, args, {name: PREDICTOR_ARGS[name] for name in ("pads", "crop", "box")})
    if args.hard_paste and args.blend not in (None, "hard"):
        parser.error(f"argument --hard_paste: is --blend hard; it contradicts --blend {args.blend}")
    if args.color_match and (args.hard_paste or args.blend == "hard"):
        parser.error("argument --color_match: needs a feathered blend (--blend mouth or face)")
    if args.face_select is not None and (args.reference_detection or args.box[0] != -1):
        other = ("--reference_detection (each frame's top-ranked face, as the original)"
                 if args.reference_detection else "--box (one fixed box, no detection)")
        parser.error(f"argument --face_select: contradicts {other}; give one of them")
    if args.fp16 and args.precision not in ("auto", "fp16"):
        parser.error("argument --fp16: is --precision fp16; it contradicts --precision "
                     f"{args.precision}")


def build_parser() -> OneLineParser:
    parser = OneLineParser(description=__doc__.strip().splitlines()[0], cross_checks=cross_checks)
    parser.add_argument("--checkpoint_path", type=str, default=None,
                        help="generator weights (.pdparams, flat or a trainer checkpoint, or a "
                             "folder tools/export_model.py wrote); default: download "
                             "PaddleGAN's wav2lip_hq.pdparams")
    parser.add_argument("--face", type=str, default=None,
                        help="video or image with a face to use (required without --jobs)")
    parser.add_argument("--audio", type=str, default=None,
                        help="audio to lip-sync to: any file ffmpeg reads, video files too "
                             "(required without --jobs)")
    parser.add_argument("--outfile", type=str, default=None,
                        help=f"output video path (default: {DEFAULT_OUTFILE})")
    parser.add_argument("--jobs", type=str, default=None,
                        help="a CSV job list instead of --face/--audio/--outfile: columns face, "
                             "audio, outfile and any per-job flags (see README.md); the other "
                             "flags apply to every job")
    parser.add_argument("--static", action="store_true",
                        help="use only the first video frame for inference")
    parser.add_argument("--fps", type=_checked("fps"), default=25.0,
                        help="frame rate of a photo input (videos keep their own)")
    parser.add_argument("--pads", nargs=4, type=int, default=[0, 10, 0, 0],
                        help="padding (top, bottom, left, right) around the detected face; "
                             "grow bottom to include the chin, negative values shrink the box")
    parser.add_argument("--face_det_batch_size", type=_checked("face_det_batch_size"), default=16,
                        help="batch size for face detection")
    parser.add_argument("--wav2lip_batch_size", type=_checked("wav2lip_batch_size"), default=128,
                        help="batch size for the generator")
    parser.add_argument("--resize_factor", type=_checked("resize_factor"), default=1,
                        help="shrink frames by this integer factor first (480p or 720p work best)")
    parser.add_argument("--crop", nargs=4, type=int, default=[0, -1, 0, -1],
                        help="crop (top, bottom, left, right) applied after resize and rotate; "
                             "-1 means the frame's edge")
    parser.add_argument("--box", nargs=4, type=int, default=[-1, -1, -1, -1],
                        help="fixed face box (top, bottom, left, right) used for every frame; "
                             "skips face detection (-1 -1 -1 -1: detect)")
    parser.add_argument("--rotate", action="store_true",
                        help="rotate frames 90 degrees clockwise (for portrait phone videos)")
    parser.add_argument("--nosmooth", action="store_true",
                        help="do not smooth face boxes over 5 frames")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    parser.add_argument("--face_detector", type=str, default="sfd",
                        choices=list(DETECTORS),
                        help="face detector: sfd (S3FD), blazeface, or mtcnn (needs no download)")
    parser.add_argument("--face_enhancement", action="store_true",
                        help="restore the face with a face-enhancement network (--enhancer); "
                             "slow: see README.md")
    parser.add_argument("--enhancer", choices=["gpen", "gfpgan", "gfpgan_clean"], default="gpen",
                        help="the --face_enhancement network: gpen (GPEN-512, PaddleGAN's), "
                             "gfpgan (GFPGANv1) or gfpgan_clean (GFPGAN v1.2-v1.4)")
    parser.add_argument("--enhancer_path", type=str, default=None,
                        help="--enhancer weights (.pdparams); default: download PaddleGAN's "
                             "(gfpgan_clean has none)")
    parser.add_argument("--enhance_at", choices=["frame", "generated"], default="frame",
                        help="frame: enhance the face crop of the frame after the new mouth is "
                             "in; generated: the 96-px generated face before pasting, as "
                             "PaddleGAN")
    parser.add_argument("--strict_face", action="store_true",
                        help="stop with an error if any frame has no face (the original "
                             "behaviour); by default such frames reuse the nearest face box")
    parser.add_argument("--blend", choices=BLENDS, default=None,
                        help="how the generated face goes back into the frame: mouth (default: "
                             "only the lower half of the face box, which the generator redraws, "
                             "feathered), face (the whole box, feathered), hard (the original's "
                             "hard-edged box)")
    parser.add_argument("--hard_paste", action="store_true",
                        help="the same as --blend hard")
    parser.add_argument("--color_match", action="store_true",
                        help="shift the generated face's colours to the frame's where the "
                             "blend's soft rim shows both (mouth and face blends)")
    parser.add_argument("--silence_passthrough", action="store_true",
                        help="on silent spans of the audio show the source frames (cross-faded "
                             "at the edges) instead of a generated mouth; for photos, --static "
                             "or clips whose speaker is silent, not for dubbing")
    parser.add_argument("--silence_threshold", type=_checked("silence_threshold"), default=30.0,
                        help="with --silence_passthrough: a frame is silent when its audio is "
                             "this many dB under the clip's speech level")
    parser.add_argument("--silence_min_span", type=_checked("silence_min_span"), default=0.4,
                        help="with --silence_passthrough: silences shorter than this many "
                             "seconds keep the generated mouth")
    parser.add_argument("--det_max_size", type=_checked("det_max_size"), default=360,
                        help="detect faces on a copy whose longest side is at most this many "
                             "pixels (frames without a face there are retried on a copy twice "
                             f"as large; at least {MIN_DETECTION_SIZE}); 0 = full resolution, "
                             "as the original")
    parser.add_argument("--det_every", type=_checked("det_every"), default=5,
                        help="detect every k-th frame and interpolate the boxes between, "
                             "detecting every frame where the face moves fast; 1 = every frame")
    parser.add_argument("--no_det_cache", action="store_true",
                        help="do not reuse (or store) the face boxes of earlier runs on the "
                             "same video with the same settings")
    parser.add_argument("--face_select", type=_checked("face_select"), default=None,
                        help="the person to lip-sync when several faces show: largest (the "
                             "default: the largest face where one first appears), N (the N-th "
                             "face from the left, 0 first, on the first frame showing that many), "
                             "or X,Y (the face at that point: pixels of the input video as a "
                             "player shows it, before --resize_factor, --rotate and --crop); "
                             "that person is followed from frame to frame and chosen again by "
                             "the same rule after a cut or a long absence")
    parser.add_argument("--reference_detection", action="store_true",
                        help="detect exactly as the original: every frame, full resolution, "
                             "no cache, each frame's top-ranked face (slow)")
    parser.add_argument("--detector_path", type=str, default=None,
                        help="local face detector weights (default: download)")
    parser.add_argument("--engine", choices=["static", "eager"], default="static",
                        help="static: Paddle Inference with fused kernels (fast); "
                             "eager: dygraph (the reference path)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the static generator's and S3FD's arithmetic: auto (bf16 on a CPU with bf16 "
                             "units, AMX or AVX-512 BF16; fp32 elsewhere), fp32, bf16 (CPU), "
                             "int8 (CPU, opt-in: quantised on first use, about a minute, "
                             "the enhancers in fp32), fp16 (GPU)")
    parser.add_argument("--fp16", action="store_true",
                        help="the same as --precision fp16 (half precision on a GPU)")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.jobs is not None:
        given = [name for name in ("face", "audio", "outfile") if getattr(args, name) is not None]
        if given:
            parser.error(f"argument --jobs: not allowed with --{given[0]} (the job list names "
                         "each job's files)")
    else:
        missing = [f"--{name}" for name in ("face", "audio") if getattr(args, name) is None]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)} "
                         "(or --jobs)")
    return args


def predictor_options(args: argparse.Namespace) -> dict:
    """The Wav2LipPredictor arguments the flags give."""
    return dict(
        checkpoint_path=args.checkpoint_path, static=args.static, fps=args.fps, pads=args.pads,
        face_det_batch_size=args.face_det_batch_size, wav2lip_batch_size=args.wav2lip_batch_size,
        resize_factor=args.resize_factor, crop=args.crop, box=args.box, rotate=args.rotate,
        nosmooth=args.nosmooth, face_detector=args.face_detector,
        face_enhancement=args.face_enhancement, strict_face=args.strict_face,
        blend=args.blend, feather=not args.hard_paste, det_max_size=args.det_max_size,
        det_every=args.det_every, det_cache=not args.no_det_cache,
        reference_detection=args.reference_detection, engine=args.engine, cpu=args.cpu,
        detector_path=args.detector_path, fp16=args.fp16, precision=args.precision,
        enhancer=args.enhancer, enhancer_path=args.enhancer_path, enhance_at=args.enhance_at,
        silence_passthrough=args.silence_passthrough, silence_threshold=args.silence_threshold,
        silence_min_span=args.silence_min_span, color_match=args.color_match,
        face_select=args.face_select)


def lip_sync(args: argparse.Namespace) -> int:
    # Imported after parsing so --help is instant.
    from ppgan.apps import Wav2LipPredictor

    outfile = args.outfile or DEFAULT_OUTFILE
    if outfile == DEFAULT_OUTFILE:
        os.makedirs(os.path.dirname(DEFAULT_OUTFILE), exist_ok=True)
    report(f"wrote {Wav2LipPredictor(**predictor_options(args)).run(args.face, args.audio, outfile)}")
    return 0


def lip_sync_jobs(args: argparse.Namespace) -> int:
    """Every job of the --jobs list with one predictor; 2 if any job failed."""
    from ppgan.apps import Wav2LipPredictor
    from ppgan.apps.job_list import JobFlags, read_job_list, run_job_list
    from ppgan.apps.wav2lip_predictor import NETWORK_ARGUMENTS

    flags = JobFlags(build_parser(), args, fixed=(*NETWORK_ARGUMENTS, "jobs"))
    jobs = read_job_list(args.jobs, flags)
    predictor = Wav2LipPredictor(**predictor_options(args))
    # Weights that do not load end the list now, rather than failing every job in turn.
    predictor.load_networks()

    def run(job: argparse.Namespace) -> str:
        return predictor.with_options(**predictor_options(job)).run(job.face, job.audio,
                                                                    job.outfile)

    results = run_job_list(args.jobs, jobs, flags, run)
    report(*results.summary())
    return 2 if results.failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    if args.jobs is not None:
        return run_main("wav2lip.py", lambda: lip_sync_jobs(args),
                        interrupted="interrupted: the running job's output not written")
    return run_main("wav2lip.py", lambda: lip_sync(args))


if __name__ == "__main__":
    exit_with(main())
