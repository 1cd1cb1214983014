"""Locating an ffmpeg binary and running it, so every caller gets the same binary and errors."""
import functools
import os
import shutil
from typing import Tuple

import ffmpeg


class FFmpegError(RuntimeError):
    """ffmpeg failed; the message is ffmpeg's own last error line."""


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """The system ffmpeg when there is one (it may have more codecs), else imageio-ffmpeg's build.

    `PPGAN_FFMPEG` names a binary explicitly.
    """
    explicit = os.environ.get("PPGAN_FFMPEG")
    if explicit:
        return explicit
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg  # imported late: it is only needed on machines without ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def last_error_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg failed without a message"


def run(stream) -> Tuple[bytes, bytes]:
    """Run an ffmpeg-python graph quietly; returns (stdout, stderr) or raises FFmpegError."""
    stream = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    try:
        return stream.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as err:
        raise FFmpegError(last_error_line(err.stderr or b"")) from None
