"""Locating an ffmpeg binary and running it, so every caller gets the same binary and errors."""
import functools
import os
import re
import shutil
from typing import Tuple

import ffmpeg


class FFmpegError(RuntimeError):
    """ffmpeg failed; the message is ffmpeg's first error line, `stderr` all it said."""

    def __init__(self, stderr: bytes):
        self.stderr = stderr.decode("utf-8", "replace")
        # Drop ffmpeg's "[in#0 @ 0x55d...]" context prefixes: they mean nothing to a user.
        lines = [re.sub(r"^\[[^]]* @ 0x[0-9a-f]+\]\s*", "", line.strip())
                 for line in self.stderr.splitlines() if line.strip()]
        # ffmpeg states the cause first and then generic follow-ups ("Error opening output files").
        super().__init__(lines[0] if lines else "ffmpeg failed without a message")


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


def run(stream) -> Tuple[bytes, bytes]:
    """Run an ffmpeg-python graph quietly; returns (stdout, stderr) or raises FFmpegError."""
    stream = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    try:
        return stream.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as err:
        raise FFmpegError(err.stderr or b"") from None
