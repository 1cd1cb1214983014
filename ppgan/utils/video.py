"""Streaming video I/O: frames in from a video or photo, frames out through an ffmpeg pipe.

Nothing here holds more than one frame: the inference pipeline can run on videos of any length.
"""
import logging
import os
import queue
import tempfile
import threading
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import av
import cv2
import ffmpeg
import numpy as np

from .atomic import DISK_FULL_ERRNOS, AtomicPath
from .ffmpeg_tools import FFmpegPipe
from .stopping import block_stop_signals, stop_deferred
from .errors import UserError
from .logger import native_output_silenced

logger = logging.getLogger(__name__)

# OpenCV's FFmpeg prints every decoder complaint ("moov atom not found", "co located POCs
# unavailable") on stderr; a bad input gets one line of ours instead. Read when the first
# VideoCapture is created; a value set by the user wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

# Read as photos (OpenCV's imread); anything else, or a file imread refuses, is read as a video.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".avif",
                  ".ppm", ".pgm", ".pnm", ".jp2", ".tga"}
# Containers that hold H.264 video with AAC audio (WebM, for one, does not).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")


class InputError(UserError, ValueError):
    """A face input or output path that cannot be used; the message says which and why."""


def preprocess_frame(frame: np.ndarray, resize_factor: int = 1, rotate: bool = False,
                     crop: Sequence[int] = (0, -1, 0, -1)) -> np.ndarray:
    """The references' --resize_factor, --rotate and --crop (top, bottom, left, right; -1 = edge),
    with values checked against the frame (their order is checked by ppgan.utils.checks)."""
    height, width = frame.shape[:2]
    if resize_factor > 1:
        if min(height, width) < resize_factor:
            raise InputError(f"--resize_factor {resize_factor} leaves no pixels of the "
                             f"{width}x{height} frame")
        frame = cv2.resize(frame, (width // resize_factor, height // resize_factor))
    if rotate:
        frame = cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    top, bottom, left, right = crop
    height, width = frame.shape[:2]
    bottom = height if bottom == -1 else bottom
    right = width if right == -1 else right
    if not (top < bottom <= height and left < right <= width):
        after = " (after --resize_factor and --rotate)" if resize_factor > 1 or rotate else ""
        raise InputError(f"--crop {' '.join(map(str, crop))} (top bottom left right) is not inside "
                         f"the {width}x{height} frame{after}")
    return frame[top:bottom, left:right]


def point_in_frame(x: float, y: float, input_size: Tuple[int, int], resize_factor: int = 1,
                   rotate: bool = False, crop: Sequence[int] = (0, -1, 0, -1)) -> Tuple[float, float]:
    """Where pixel (x, y) of an input frame of `input_size` (width, height) lands in the frame
    `preprocess_frame` makes of it; InputError if it is outside the input or cut off by --crop."""
    width, height = input_size
    given = f"--face_select {x:g},{y:g}"
    if not (0 <= x < width and 0 <= y < height):
        raise InputError(f"{given} is not inside the {width}x{height} input frame")
    if resize_factor > 1:  # cv2.resize maps pixel centres onto pixel centres
        scale_x, scale_y = (width // resize_factor) / width, (height // resize_factor) / height
        width, height = width // resize_factor, height // resize_factor
        x = min(max((x + 0.5) * scale_x - 0.5, 0), width - 1)
        y = min(max((y + 0.5) * scale_y - 0.5, 0), height - 1)
    if rotate:  # 90 degrees clockwise: the left column becomes the top row
        x, y, width, height = height - 1 - y, x, height, width
    top, bottom, left, right = crop
    bottom = height if bottom == -1 else bottom
    right = width if right == -1 else right
    if not (left <= x < right and top <= y < bottom):
        raise InputError(f"{given} is cut off by --crop {' '.join(map(str, crop))} (the point is in "
                         "pixels of the input, before --resize_factor, --rotate and --crop)")
    return x - left, y - top


class PyAVCapture:
    """The part of cv2.VideoCapture that FrameSource uses, decoding with PyAV's FFmpeg: the
    fallback for codecs OpenCV's build cannot decode (AV1 has no software decoder there).
    It cannot seek (`set` refuses), so FrameSource decodes forward instead; display rotation
    metadata is not applied."""

    def __init__(self, path: str):
        try:
            self._container = av.open(path)
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, UnicodeDecodeError):
            self._container = None
            return
        self._stream.thread_type = "AUTO"
        self._frames = self._container.decode(self._stream)

    def isOpened(self) -> bool:
        return self._container is not None

    def read(self) -> Tuple[bool, Optional[np.ndarray]]:
        try:
            return True, next(self._frames).to_ndarray(format="bgr24")
        except (StopIteration, av.FFmpegError):
            return False, None

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return float(self._stream.average_rate or 0)
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self._stream.frames or 0)
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        if self._container is not None:
            self._container.close()


class FrameSource:
    """The frames of a video or a photo, preprocessed, readable in order from any index.

    `num_frames` is what the container announces; the true count is known only after a full
    read (`frames()` stops at the real end).
    """

    def __init__(self, path: str, fps: float = 25.0, resize_factor: int = 1, rotate: bool = False,
                 crop: Sequence[int] = (0, -1, 0, -1)):
        if os.path.isdir(path):
            raise InputError(f"the face input is a folder, not a video or image: {path}")
        if not os.path.isfile(path):
            raise InputError(f"face file not found: {path}")
        self.path = path
        self._transform = dict(resize_factor=resize_factor, rotate=rotate, crop=tuple(crop))
        self._capture: Optional[cv2.VideoCapture] = None
        self._decoder = cv2.VideoCapture
        self._position = 0
        self._input_size = (0, 0)  # (width, height) of a frame as decoded: set by every read
        self._image = self._open_image() if os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES else None
        if self._image is None:
            self._capture = self._open_video()
            if not self._capture.read()[0]:
                self._try_pyav()
            self._position = 1
            self.fps = self._capture.get(cv2.CAP_PROP_FPS)
            if not self.fps or not np.isfinite(self.fps) or self.fps <= 0:
                logger.warning("%s announces no frame rate; using %.2f fps", path, fps)
                self.fps = fps
            self.num_frames = max(1, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        else:
            self.fps, self.num_frames = fps, 1
        first = self.read_frame(0)
        self.height, self.width = first.shape[:2]

    def frame_point(self, x: float, y: float) -> Tuple[float, float]:
        """Pixel (x, y) of the input as decoded (before --resize_factor, --rotate and --crop)
        in the frames this source yields."""
        return point_in_frame(x, y, self._input_size, **self._transform)

    @property
    def is_image(self) -> bool:
        return self._image is not None

    def _open_image(self) -> Optional[np.ndarray]:
        """The photo as 8-bit BGR (alpha dropped, EXIF orientation applied), or None when the
        file is no image after all (a video named .png is then read as a video)."""
        with native_output_silenced():  # libpng prints "libpng error: ..." for a broken file
            return cv2.imread(self.path, cv2.IMREAD_COLOR)

    def _try_pyav(self) -> None:
        """Decode with PyAV when OpenCV reads no frame but PyAV does (else keep OpenCV: the
        video is empty or broken, which reading frame 0 reports)."""
        capture = PyAVCapture(self.path)
        if capture.isOpened() and capture.read()[0]:
            logger.info("%s: OpenCV cannot decode this video; decoding with PyAV", self.path)
            self._capture.release()
            self._capture, self._decoder = capture, PyAVCapture
        else:
            capture.release()

    def _open_video(self) -> cv2.VideoCapture:
        capture = self._decoder(self.path)
        if not capture.isOpened():
            capture.release()
            raise InputError(f"cannot read {self.path} as a video or an image")
        return capture

    def _seek(self, index: int) -> bool:
        """Position the capture before frame `index`; True if that took a container seek, which
        some videos (MPEG-TS, one-frame clips) accept and then cannot read from."""
        if index == self._position:
            return False
        if index > 0 and self._capture.set(cv2.CAP_PROP_POS_FRAMES, index) \
                and int(self._capture.get(cv2.CAP_PROP_POS_FRAMES)) == index:
            self._position = index
            return True
        self._decode_to(index)
        return False

    def _decode_to(self, index: int) -> None:
        """Reopen and decode forward to `index`: slow, but exact for any video."""
        self._capture.release()
        self._capture = self._open_video()
        for _ in range(index):
            self._capture.grab()
        self._position = index

    def frames(self, start: int = 0, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        """Preprocessed frames start..stop-1 (stop=None: to the end), BGR uint8."""
        if self._image is not None:
            if start == 0 and stop != 0:
                self._input_size = self._image.shape[1::-1]
                yield preprocess_frame(self._image, **self._transform)
            return
        sought = self._seek(start)
        index = start
        while stop is None or index < stop:
            ok, frame = self._capture.read()
            if not ok and sought and index == start:  # the seek landed where nothing reads
                self._decode_to(start)
                ok, frame = self._capture.read()
            if not ok:
                break
            self._position = index = index + 1
            self._input_size = frame.shape[1::-1]  # (width, height) as decoded
            yield preprocess_frame(frame, **self._transform)

    def read_frame(self, index: int) -> np.ndarray:
        for frame in self.frames(index, index + 1):
            return frame
        raise InputError(f"cannot read frame {index} of {self.path} (corrupt or empty video?)")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def check_output_path(outfile: str) -> str:
    """The absolute output path, after checking that its folder exists and can be written."""
    outfile = os.path.abspath(outfile)
    folder = os.path.dirname(outfile)
    if not os.path.isdir(folder):
        raise InputError(f"output folder does not exist: {folder}")
    if os.path.isdir(outfile):
        raise InputError(f"output path is a folder: {outfile}")
    if os.path.exists(outfile) and not os.path.isfile(outfile):
        raise InputError(f"output path exists and is not a regular file: {outfile}")
    name_max = os.pathconf(folder, "PC_NAME_MAX")
    if len(os.fsencode(os.path.basename(outfile))) > name_max:
        raise InputError(f"output file name is longer than {name_max} bytes: {outfile}")
    if not outfile.lower().endswith(VIDEO_SUFFIXES):
        raise InputError(f"output must be a {', '.join(VIDEO_SUFFIXES)} file (H.264 + AAC): "
                         f"{outfile}")
    try:  # really create something: permission bits say nothing for root or read-only mounts
        tempfile.TemporaryFile(dir=folder).close()  # nameless where the OS allows: no litter
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise
        raise InputError(f"output folder is not writable: {folder} ({err.strerror})") from None
    return outfile


def _piped_frames(width: int, height: int, fps: float):
    """ffmpeg's input of raw BGR frames on stdin, as yuv420p."""
    frames = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{width}x{height}",
                          framerate=fps)
    # yuv420p (what players accept) needs even sizes: pad by one pixel rather than rescale.
    frames = frames.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
    # Convert BGR -> YUV with exact rounding: the default shifts untouched colours by a few
    # levels (a gray of 109 came back as 105/108/106).
    return frames.filter("scale", flags="accurate_rnd+full_chroma_int").filter("format", "yuv420p")


class VideoWriter:
    """Pipes BGR frames to ffmpeg (H.264 + AAC) and muxes in the audio of `audio_path`.

    ffmpeg writes a hidden temporary beside the output, renamed into place only when it has
    finished successfully: an error, Ctrl-C, SIGTERM or a full disk leaves no partial output.
    """

    def __init__(self, outfile: str, width: int, height: int, fps: float, audio_path: str,
                 crf: int = 18, preset: str = "veryfast"):
        self.outfile = check_output_path(outfile)
        self._target: Optional[AtomicPath] = None
        self._ffmpeg: Optional[FFmpegPipe] = None
        try:
            with stop_deferred():  # a stop cannot fall between starting ffmpeg and holding it
                self._target = AtomicPath(self.outfile)
                self._ffmpeg = FFmpegPipe(self._command(width, height, fps, audio_path, crf,
                                                        preset), output=self.outfile)
        except BaseException:
            self.abort()
            raise
        self.frames_written = 0

    def _command(self, width: int, height: int, fps: float, audio_path: str, crf: int,
                 preset: str) -> List[str]:
        frames = _piped_frames(width, height, fps)
        audio = ffmpeg.input(audio_path)["a:0"]
        return ffmpeg.output(frames, audio, self._target.temp, vcodec="libx264", pix_fmt="yuv420p",
                             crf=crf, preset=preset, acodec="aac", movflags="+faststart"
                             ).overwrite_output().get_args()

    def write(self, frame: np.ndarray) -> None:
        self._ffmpeg.write(np.ascontiguousarray(frame).tobytes())
        self.frames_written += 1

    def close(self) -> str:
        """Finish encoding and move the video into place; returns its path."""
        try:
            self._ffmpeg.finish()
        except BaseException:
            self.abort()
            raise
        return self._target.commit()

    def abort(self) -> None:
        """Stop ffmpeg and delete everything written so far."""
        if self._ffmpeg is not None:
            self._ffmpeg.kill()
        if self._target is not None:
            self._target.discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# Live outputs by URL scheme, and the container each is sent in.
STREAM_PROTOCOLS = {"udp": "mpegts", "rtmp": "flv", "rtmps": "flv"}
HLS_SUFFIX = ".m3u8"
PCM_RATE = 16000  # the audio pipe of StreamWriter: 16 kHz mono s16le, the mel's rate


def check_stream_output(output: str) -> str:
    """`output` as StreamWriter takes it: a udp:// or rtmp:// URL, an HLS playlist (.m3u8) in
    an existing folder, or a video file (check_output_path)."""
    scheme = output.split("://", 1)[0].lower() if "://" in output else ""
    if scheme:
        if scheme not in STREAM_PROTOCOLS:
            raise InputError(f"cannot stream to {scheme}:// (use udp://, rtmp://, an .m3u8 "
                             f"playlist or a video file): {output}")
        return output
    if output.lower().endswith(HLS_SUFFIX):
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            raise InputError(f"HLS output folder does not exist: {folder}")
        if not os.access(folder, os.W_OK):
            raise InputError(f"HLS output folder is not writable: {folder}")
        return os.path.abspath(output)
    return check_output_path(output)


class StreamWriter(VideoWriter):
    """A VideoWriter for a live stream: H.264 without look-ahead (each frame leaves the encoder
    at once), 1 s between key frames (HLS segments and late viewers start at one), sent to a
    file, a udp:// or rtmp:// URL, or an HLS playlist with its segments beside it.

    The audio is a file's (`audio_path`), or the 16 kHz PCM given to `add_audio`, which a
    thread sends to ffmpeg through a second pipe as it comes (the frames are written by
    another thread: neither waits on the other). The audio ends with the last frame.

    A stopped stream keeps what it showed: leaving the block with a KeyboardInterrupt (Ctrl-C,
    SIGTERM) after frames were written ends the output cleanly there (the bundled ffmpeg 9 keeps
    the audio's whole AAC frames, 0.064 s each, up to the last frame: none after one frame). A
    file appears under its name only once closed (a playable file, never a half-written one);
    an error discards it. A URL or an HLS folder shows the frames as they are written, and
    keeps what it published.
    """

    def __init__(self, output: str, width: int, height: int, fps: float,
                 audio_path: Optional[str] = None,
                 on_frame: Optional[Callable[[int, np.ndarray], None]] = None,
                 crf: int = 18, preset: str = "veryfast"):
        self.outfile = check_stream_output(output)
        self.on_frame = on_frame
        self.frames_written = 0
        self._target: Optional[AtomicPath] = None
        self._ffmpeg: Optional[FFmpegPipe] = None
        self._audio: Optional[_AudioFeeder] = None
        read_end = None
        try:
            with stop_deferred():
                if self._is_file:
                    self._target = AtomicPath(self.outfile)
                if audio_path is None:
                    read_end, write_end = os.pipe()
                    self._audio = _AudioFeeder(write_end)
                command = self._stream_command(width, height, fps, audio_path, read_end, crf,
                                               preset)
                self._ffmpeg = FFmpegPipe(command, output=self.outfile,
                                          pass_fds=() if read_end is None else (read_end,))
                if self._audio is not None:
                    self._audio.start()
        except BaseException:
            self.abort()
            raise
        finally:
            if read_end is not None:
                os.close(read_end)

    @property
    def _is_file(self) -> bool:
        return "://" not in self.outfile and not self.outfile.lower().endswith(HLS_SUFFIX)

    def _stream_command(self, width: int, height: int, fps: float, audio_path: Optional[str],
                        audio_fd: Optional[int], crf: int, preset: str) -> List[str]:
        frames = _piped_frames(width, height, fps)
        audio = (ffmpeg.input(audio_path) if audio_path is not None
                 # Probed from its first bytes: ffmpeg probes an input before reading the next,
                 # and the audio would come only as the frames it holds up go through.
                 else ffmpeg.input(f"pipe:{audio_fd}", format="s16le", ar=PCM_RATE, ac=1,
                                   probesize=32, analyzeduration=0))["a:0"]
        options = dict(vcodec="libx264", pix_fmt="yuv420p", crf=crf, preset=preset,
                       tune="zerolatency", g=max(1, round(fps)), acodec="aac", shortest=None)
        scheme = self.outfile.split("://", 1)[0].lower() if "://" in self.outfile else ""
        target = self.outfile
        if scheme:
            options["format"] = STREAM_PROTOCOLS[scheme]
        elif not self._is_file:
            options.update(format="hls", hls_time=1, hls_list_size=0,
                           hls_segment_filename=os.path.splitext(self.outfile)[0] + "_%05d.ts")
        else:
            options["movflags"] = "+faststart"
            target = self._target.temp
        return ffmpeg.output(frames, audio, target, **options).overwrite_output().get_args()

    def add_audio(self, samples: np.ndarray) -> None:
        """Send received samples (float in [-1, 1] at 16 kHz) down the audio pipe."""
        pcm = np.clip(np.round(np.asarray(samples) * 32768), -32768, 32767).astype("<i2")
        self._audio.put(pcm.tobytes())

    def end_audio(self) -> None:
        """No more samples will come: close the audio pipe now, not at `close()`. ffmpeg
        holds back frames that are ahead of the audio it has, and until the pipe closes it
        cannot know that the audio is complete."""
        if self._audio is not None:
            self._audio.end()

    def write(self, frame: np.ndarray) -> None:
        super().write(frame)
        if self.frames_written == 1:
            logger.info("the first frame is out to %s", self.outfile)
        if self.on_frame is not None:
            self.on_frame(self.frames_written - 1, frame)

    def close(self) -> str:
        """Finish the stream; returns the output."""
        try:
            if self._audio is not None:
                self._audio.end()
            # Video's end first: ffmpeg pauses reading an input that is far ahead of the
            # others (the audio of a stream stopped while behind) until they catch up or end.
            self._ffmpeg.finish()
            if self._audio is not None:
                self._audio.finish()
        except BaseException:
            self.abort()
            raise
        return self._target.commit() if self._target is not None else self.outfile

    def abort(self) -> None:
        if self._ffmpeg is not None:
            self._ffmpeg.kill()  # first: a feeder blocked on the pipe then fails and ends
        if self._audio is not None:
            self._audio.finish()
        super().abort()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or (issubclass(exc_type, KeyboardInterrupt) and self.frames_written):
            self.close()  # a stopped stream keeps what it showed
        else:
            self.abort()


class _AudioFeeder:
    """Writes queued bytes into a pipe on its own thread, until `finish()`."""

    def __init__(self, fd: int):
        self._pipe = os.fdopen(fd, "wb", buffering=0)
        self._queue: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._ended = False
        self._thread = threading.Thread(target=self._feed, name="ffmpeg-audio", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, data: bytes) -> None:
        if self._ended:
            raise ValueError("audio added after its end")
        self._queue.put(data)

    def _feed(self) -> None:
        block_stop_signals()
        try:
            for data in iter(self._queue.get, None):
                self._pipe.write(data)
        except OSError:  # ffmpeg has gone: its own error (or the stop) is what gets reported
            pass
        finally:
            self._pipe.close()

    def end(self) -> None:
        """Close the pipe (ffmpeg's end of the audio) once what is queued is sent."""
        if not self._ended:
            self._queue.put(None)
            self._ended = True

    def finish(self) -> None:
        """`end`, and wait until the pipe is closed."""
        if self._thread.ident is None:  # never started
            self._pipe.close()
            return
        self.end()
        self._thread.join()
