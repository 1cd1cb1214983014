"""Test media made on the fly: WAV and video files, probes, disks that fill up, stopped runs.

The samples the benchmark uses too (speech-like audio, the face photo, random weights) come
from ppgan.data_preparation.samples."""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import wave

import cv2
import numpy as np

from ppgan.data_preparation.samples import (  # noqa: F401 (for the tests)
    ASTRONAUT_FACE, BACKGROUND, SAMPLE_RATE as SR, astronaut_bgr, face_box_in_frame, face_frame,
    save_random_generator, speech_like)
from ppgan.utils.ffmpeg_tools import ffmpeg_exe


def faces_frame(width, height, placements):
    """A gray BGR frame with an astronaut photo per placement (size, x, y, mirrored), pasted
    in order (a later one covers an earlier one): several people, told apart by size and side."""
    frame = np.full((height, width, 3), BACKGROUND, np.uint8)
    for size, x, y, mirrored in placements:
        photo = astronaut_bgr(size)
        frame[y:y + size, x:x + size] = photo[:, ::-1] if mirrored else photo
    return frame


def placed_face_box(size, x, y, mirrored=False):
    """Where the face of a `faces_frame` placement lands: x1, y1, x2, y2."""
    x1, y1, x2, y2 = ASTRONAUT_FACE
    if mirrored:
        x1, x2 = 512 - x2, 512 - x1
    s = size / 512
    return int(x + x1 * s), int(y + y1 * s), int(x + x2 * s), int(y + y2 * s)


def to_pcm16(samples) -> np.ndarray:
    return np.clip(np.round(np.asarray(samples) * 32767), -32768, 32767).astype("<i2")


def write_wav(path, samples, rate=SR, channels=1):
    """16-bit PCM WAV; `samples` interleaved when channels > 1."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_pcm16(samples).tobytes())
    return path


def ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def write_video(path, frames, fps=25, lossless=False):
    """Frames (BGR) to an H.264 MP4 through a lossless intermediate (lossless: FFV1, e.g. .mkv)."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    raw = str(path) + ".raw"
    with open(raw, "wb") as out:
        for frame in frames:
            out.write(frame.tobytes())
    ffmpeg("-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", fps, "-i", raw,
           "-sws_flags", "accurate_rnd+full_chroma_int",
           *(["-c:v", "ffv1", "-pix_fmt", "bgr0"] if lossless else
             ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p"]), path)
    return path


def read_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def probe(path):
    """(video stream count, audio stream count, container seconds) from ffmpeg's own report."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    streams = re.findall(r"Stream #\d+:\d+.*?: (Video|Audio):", result.stderr)
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", result.stderr).groups()
    return streams.count("Video"), streams.count("Audio"), int(h) * 3600 + int(m) * 60 + float(s)


def leftovers(folder):
    """Temporary files a run may have left in `folder`: the hidden `.<name>.*.part*` files (and
    folders) of ppgan's atomic writes."""
    return sorted(n for n in os.listdir(folder) if n.startswith(".") and ".part" in n)


@contextlib.contextmanager
def small_disk(path, size="300k"):
    """A tmpfs of `size` mounted at `path` (root only): a disk that fills up."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def can_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None


def stop_when(command, ready, stop=signal.SIGTERM, timeout=300, **popen):
    """Run `command`, send it `stop` as soon as `ready()` holds (polled), and wait for it to end.

    Returns (exit status, stderr). Fails if the command ends before `ready()`, or does not end
    within `timeout` seconds of the signal.
    """
    import threading
    import time

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            # A shell starts background jobs with SIGINT ignored: undo that.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)
    err = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    start = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            reader.join()
            raise AssertionError(f"ended (status {proc.returncode}) before it was stopped: {err[0][-2000:]}")
        if time.monotonic() - start > timeout:
            proc.kill()
            raise AssertionError("never became ready to be stopped")
        time.sleep(0.05)
    proc.send_signal(stop)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no exit within {timeout} s of {stop!r}")
    reader.join()
    return proc.returncode, err[0]
