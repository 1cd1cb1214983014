"""The one ffmpeg runner: which binary, how it is called, and how its failures read.

Every encode, mux and conversion goes through `run_ffmpeg` (a finished command) or
`FFmpegPipe` (frames streamed in), so every caller gets the same binary, argument lists (never a
shell), quiet logging and errors. Decoding for the pipeline does not use the binary: frames come
from OpenCV and audio from PyAV, each with FFmpeg libraries of its own.
"""
import errno
import functools
import os
import re
import shutil
import subprocess
import threading
from typing import List, Optional, Sequence, Set

from .atomic import disk_full_error
from .stopping import block_stop_signals, stop_deferred
from .errors import UserError

QUIET = ["-nostdin", "-hide_banner", "-loglevel", "error"]
NO_SPACE = "No space left on device"
# Failures some builds report with exit status 0 (Debian's 5.1 when the disk fills at the end).
WRITE_FAILURES = (NO_SPACE, "Error writing trailer", "Error closing file")
# How ffmpeg builds say that an input lacks the stream a command maps or selects.
NO_STREAM = ("matches no streams", "does not contain any stream")


class FFmpegError(UserError, RuntimeError):
    """ffmpeg failed; the message is ffmpeg's first error line, `stderr` all it said."""

    def __init__(self, message: str, stderr: str = ""):
        super().__init__(message)
        self.stderr = stderr

    @classmethod
    def from_stderr(cls, stderr: bytes) -> "FFmpegError":
        text = stderr.decode("utf-8", "replace")
        # Drop ffmpeg's "[in#0 @ 0x55d...]" context prefixes: they mean nothing to a user.
        lines = [re.sub(r"^\[[^]]* @ 0x[0-9a-f]+\]\s*", "", line.strip())
                 for line in text.splitlines() if line.strip()]
        # ffmpeg states the cause first and then generic follow-ups ("Error opening output files").
        return cls(lines[0] if lines else "ffmpeg failed without a message", text)

    @property
    def no_stream(self) -> bool:
        """The input has no stream of the kind the command asked for (e.g. a silent video)."""
        return any(message in self.stderr for message in NO_STREAM)


def failed(returncode: int, stderr: bytes) -> bool:
    return returncode != 0 or any(message.encode() in stderr for message in WRITE_FAILURES)


def failure(stderr: bytes, output: Optional[str] = None) -> Exception:
    """The exception for a failed run: a full disk as OSError(ENOSPC) naming `output` (what
    every tool reports for a full disk), anything else an FFmpegError."""
    if output and NO_SPACE.encode() in stderr:
        return disk_full_error(errno.ENOSPC, output)
    return FFmpegError.from_stderr(stderr)


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """imageio-ffmpeg's static build by default: the same binary on every machine (with libx264
    and AAC), so the same input gives the same video whatever ffmpeg a system has installed.

    `PPGAN_FFMPEG` picks another: a path, or a command on PATH (`PPGAN_FFMPEG=ffmpeg` for the
    system's).
    """
    explicit = os.environ.get("PPGAN_FFMPEG")
    if explicit:
        found = shutil.which(explicit)
        if not found:
            raise FFmpegError(f"PPGAN_FFMPEG={explicit} is not an executable ffmpeg")
        return found
    import imageio_ffmpeg  # late: only processes that run ffmpeg pay for the import

    return imageio_ffmpeg.get_ffmpeg_exe()


def command(args: Sequence[object]) -> List[str]:
    return [ffmpeg_exe(), *QUIET, *map(str, args)]


def run_ffmpeg(args: Sequence[object], output: Optional[str] = None) -> bytes:
    """Run ffmpeg with `args` to completion; returns its stdout. `output` names the file being
    written, for the disk-full message."""
    process = None
    try:
        with stop_deferred():  # a stop may not fall between starting ffmpeg and holding it
            process = subprocess.Popen(command(args), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = process.communicate()
    except BaseException:
        # Interrupted: ffmpeg must be gone before the caller deletes the folder it writes into
        # (subprocess.run waits only a quarter second after a KeyboardInterrupt).
        if process is not None:
            process.kill()
            process.wait()
        raise
    if failed(process.returncode, stderr):
        raise failure(stderr, output)
    return stdout


# Every pipe whose ffmpeg may still run: what `kill_unfinished` stops.
_RUNNING: Set["FFmpegPipe"] = set()


def kill_unfinished() -> None:
    """Kill every ffmpeg still fed by a pipe: the command-line tools call this when they stop,
    in case the stop struck between starting one and guarding it."""
    for pipe in list(_RUNNING):
        pipe.kill()


class FFmpegPipe:
    """An ffmpeg process fed through stdin (e.g. raw frames), until `finish()` or `kill()`.

    Its stderr is collected in memory by a thread: a log file could not be written on a full
    disk, which is exactly when its message matters, and an undrained pipe could block ffmpeg.
    """

    def __init__(self, args: Sequence[object], output: Optional[str] = None,
                 pass_fds: Sequence[int] = ()):
        """Start ffmpeg. Interrupted while starting it, the process is killed: callers take
        charge of a pipe only once it is returned. `pass_fds`: more pipes ffmpeg reads (as
        `pipe:<fd>` inputs), open in it under the same numbers."""
        self.output = output
        self._stderr = bytearray()
        self._process = None
        self._drain = threading.Thread(target=self._read_stderr, name="ffmpeg-stderr", daemon=True)
        try:
            with stop_deferred():
                self._process = subprocess.Popen(command(args), stdin=subprocess.PIPE,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                 pass_fds=tuple(pass_fds))
                _RUNNING.add(self)
                self._drain.start()
        except BaseException:
            if self._process is not None:
                self.kill()
            raise

    def _read_stderr(self) -> None:
        block_stop_signals()
        for chunk in iter(lambda: self._process.stderr.read(4096), b""):
            self._stderr.extend(chunk[: max(0, (1 << 20) - len(self._stderr))])  # 1 MB is plenty

    def write(self, data: bytes) -> None:
        try:
            self._process.stdin.write(data)
        except BrokenPipeError:  # ffmpeg stopped early: its stderr says why
            raise self._failure() from None

    def finish(self) -> None:
        """Close stdin and wait; raises what ffmpeg reported if it failed."""
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        returncode = self._process.wait()
        self._drain.join()
        _RUNNING.discard(self)
        if failed(returncode, bytes(self._stderr)):
            raise self._failure()

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        self._process.wait()
        if self._drain.ident is not None:  # started
            self._drain.join()
        _RUNNING.discard(self)

    def _failure(self) -> Exception:
        self._process.wait()
        self._drain.join()
        return failure(bytes(self._stderr), self.output)
