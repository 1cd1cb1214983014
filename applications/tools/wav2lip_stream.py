"""Lip-sync a face to audio as it arrives, streaming the frames out as soon as they are made.

    python applications/tools/wav2lip_stream.py --face FACE --audio AUDIO --output OUT
    arecord -f S16_LE -r 16000 -c 1 -t raw | python applications/tools/wav2lip_stream.py \
        --face FACE --audio - --output udp://127.0.0.1:1234
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ppgan.utils.cli import exit_with, report, run_main, setup_logging  # noqa: E402
from wav2lip import build_parser as offline_parser, predictor_options  # noqa: E402

PROG = "wav2lip_stream.py"
# The offline command's flags that a stream cannot take: its files, and the clip-wide silence
# statistics.
NOT_IN_A_STREAM = ("outfile", "jobs", "silence_passthrough")


def build_parser() -> argparse.ArgumentParser:
    parser = offline_parser()
    parser.prog = PROG
    parser.description = __doc__.strip().splitlines()[0]
    parser.add_argument("--output", type=str, default=None,
                        help="where the stream goes: a video file (.mp4, .mkv...), an HLS "
                             "playlist (.m3u8, its segments beside it), udp://host:port "
                             "(MPEG-TS) or rtmp://server/app/key (FLV)")
    parser.add_argument("--no_realtime", action="store_true",
                        help="read an --audio file as fast as the frames are made, not at the "
                             "pace it would be spoken")
    for action in parser._actions:
        if action.dest == "audio":
            action.help = ("audio file (read at the pace it would be spoken), or - for raw "
                           "16 kHz mono s16le PCM on stdin")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in NOT_IN_A_STREAM:
        if getattr(args, name) not in (None, False):
            parser.error(f"argument --{name}: not for a stream")
    missing = [f"--{name}" for name in ("face", "audio", "output") if getattr(args, name) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    if args.audio != "-" and not os.path.isfile(args.audio):
        parser.error(f"argument --audio: audio file not found: {args.audio}")
    return args


def stream(args: argparse.Namespace) -> int:
    from ppgan.apps import Wav2LipStream
    from ppgan.apps.wav2lip_stream import file_chunks, pcm_chunks
    from ppgan.utils.video import check_stream_output

    check_stream_output(args.output)  # before the weights load and the face is detected
    streamer = Wav2LipStream(**predictor_options(args))
    if args.audio == "-":
        chunks, audio_path = pcm_chunks(sys.stdin.buffer), None
    else:
        chunks, audio_path = file_chunks(args.audio, realtime=not args.no_realtime), args.audio
    report(f"wrote {streamer.run(args.face, chunks, args.output, audio_path)}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    return run_main(PROG, lambda: stream(args),
                    interrupted="stopped: the stream's output ends at the last frame sent")


if __name__ == "__main__":
    exit_with(main())
