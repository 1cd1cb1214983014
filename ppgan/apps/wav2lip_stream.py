"""Wav2LipStream: lip sync of audio that arrives as it is spoken, frames out as soon as they can be.

Each output frame needs the 16-step (0.2 s) mel window that starts at its time; the mel is
computed as the audio comes (`StreamingMel`: the offline values, column by column), and a frame
is generated, pasted and sent to ffmpeg as soon as its window is complete: about 0.21 s of audio
after the frame's own time, plus the time to generate it. The frames equal the offline
predictor's for the same audio (same windows, same generator, paste and blend); the frames of
the last 0.2 s wait for the end of the audio, whose reflect-padded mel columns only the end
decides, and then take the offline windows too.

The face (a photo, or a video played forward then backward) has its boxes found once before
the stream starts (the predictor's detection, and its cache).
"""
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional

import numpy as np

from ..models.generators.wav2lip import MEL_STEP_SIZE
from ..utils.audio import DEFAULT_MEL, AudioError, StreamingMel, load_wav, mel_window_start
from ..utils.stopping import block_stop_signals, submit_unsplit
from ..utils.video import FrameSource, InputError, StreamWriter
from .wav2lip_predictor import (SourceFrames, Wav2LipPredictor, checked_mel, generate,
                                output_frames, padded_to_one_window)

logger = logging.getLogger(__name__)

CHUNK_SECONDS = 0.04  # one frame's audio at 25 fps: how often a paced file delivers samples
# Whole-clip detections are asked for: the stream's length is not known in advance.
WHOLE_VIDEO = 1 << 40
FrameHook = Callable[[int, np.ndarray], None]


def file_chunks(path: str, realtime: bool = True,
                chunk_seconds: float = CHUNK_SECONDS) -> Iterator[np.ndarray]:
    """The audio of a media file in chunks, each delivered when it would have been spoken
    (`realtime`), or at once. The file is decoded first (as the offline predictor decodes it,
    so that the samples are the same), which also reports a bad file before the stream starts."""
    wav = load_wav(path)
    return _paced(wav, realtime, max(1, round(chunk_seconds * DEFAULT_MEL.sample_rate)))


def _paced(wav: np.ndarray, realtime: bool, size: int) -> Iterator[np.ndarray]:
    start = time.monotonic()
    for begin in range(0, wav.size, size):
        chunk = wav[begin:begin + size]
        if realtime:
            time.sleep(max(0.0, start + (begin + chunk.size) / DEFAULT_MEL.sample_rate
                           - time.monotonic()))
        yield chunk


def pcm_chunks(stream: BinaryIO, chunk_bytes: int = 2 * 640) -> Iterator[np.ndarray]:
    """Raw 16 kHz mono s16le PCM from `stream` (stdin), as float samples (ffmpeg's conversion,
    1/32768), in chunks of what has arrived, until end of file."""
    read = getattr(stream, "read1", stream.read)  # whatever is there, not a full chunk
    carry = b""
    while True:
        data = read(chunk_bytes)
        if not data:
            return
        data, carry = carry + data, b""
        if len(data) % 2:  # half a sample: wait for its other byte
            data, carry = data[:-1], data[-1:]
        if data:
            yield np.frombuffer(data, "<i2").astype(np.float32) / 32768


def _taken_in(chunks: Iterator[np.ndarray], writer: Optional[StreamWriter]) -> Iterator[np.ndarray]:
    """`chunks`, read on a thread of their own as they come, each sent to the writer's audio
    pipe at once: the audio must reach ffmpeg whatever the frames are doing (ffmpeg holds back
    frames ahead of its audio), and a live source (stdin) is read without pause."""
    arrived: "queue.Queue" = queue.Queue()

    def take_in() -> None:
        block_stop_signals()
        try:
            for chunk in chunks:
                if writer is not None:
                    writer.add_audio(chunk)
                arrived.put(chunk)
        except BaseException as err:  # a bad stream ends the run in the main thread
            arrived.put(err)
        finally:
            if writer is not None:
                writer.end_audio()
            arrived.put(None)

    threading.Thread(target=take_in, name="wav2lip-audio-in", daemon=True).start()
    # Everything that has arrived is taken at once: a stream that fell behind then generates
    # its frames in larger, faster steps instead of one frame per chunk forever.
    ended = False
    while not ended:
        taken = [arrived.get()]
        while taken[-1] is not None and not arrived.empty():
            taken.append(arrived.get())
        ended = taken[-1] is None
        for item in taken:
            if isinstance(item, BaseException):
                raise item
        samples = [item for item in taken if item is not None]
        if samples:
            yield np.concatenate(samples)


class _MelWindows:
    """The mel columns streamed so far, those no later frame needs dropped."""

    def __init__(self, fps: float):
        self.fps = fps
        self.columns = np.zeros((DEFAULT_MEL.num_mels, 0), np.float32)
        self.first = 0  # the stream's column number of columns[:, 0]
        self.total: Optional[int] = None  # known at the end of the audio

    @property
    def available(self) -> int:
        return self.first + self.columns.shape[1]

    def add(self, columns: np.ndarray) -> None:
        self.columns = np.concatenate([self.columns, checked_mel(columns, "the audio stream")],
                                      axis=1)

    def end(self) -> None:
        """The audio is over: pad a clip under 0.2 s as the offline mel is padded."""
        if self.first == 0:
            self.columns = padded_to_one_window(self.columns)
        self.total = self.available

    def ready(self, frame: int) -> bool:
        """Whether frame's window is complete (before the end, the offline window starts at
        its time: the clamp to the last window only acts near the end)."""
        if self.total is not None:
            return True
        return int(frame * DEFAULT_MEL.frames_per_second / self.fps) + MEL_STEP_SIZE \
            <= self.available

    def window(self, frame: int) -> np.ndarray:
        start = mel_window_start(frame, self.fps, self.total or self.available) - self.first
        return self.columns[:, start:start + MEL_STEP_SIZE]

    def drop_before(self, frame: int) -> None:
        """Forget the columns before frame's window: windows only move forward."""
        start = int(frame * DEFAULT_MEL.frames_per_second / self.fps)
        if self.total is None and start > self.first:
            self.columns = self.columns[:, start - self.first:]
            self.first = start


class _ReadAhead:
    """The source frames of the coming output frames, read in blocks one block ahead on a
    thread: a stream takes its frames a few at a time, and a video played backward would
    otherwise seek for every one."""

    def __init__(self, frames: SourceFrames, block: int, pool: ThreadPoolExecutor):
        self.frames, self.block, self.pool = frames, block, pool
        self.blocks: Dict[int, Future] = {}

    def _read(self, number: int) -> Future:
        if number not in self.blocks:
            first = number * self.block
            self.blocks[number] = submit_unsplit(self.pool, self.frames.read_step,
                                                 range(first, first + self.block))
        return self.blocks[number]

    def take(self, frames_out: range):
        """(source indices, frames, face input or None) of `frames_out`, as `read_step`."""
        indices, images, faces = [], [], []
        for i in frames_out:
            block_indices, block_images, block_faces = self._read(i // self.block).result()
            at = i % self.block
            indices.append(block_indices[at])
            images.append(block_images[at])
            faces.append(None if block_faces is None else block_faces[at])
        for number in [n for n in self.blocks if n < frames_out[-1] // self.block]:
            del self.blocks[number]
        self._read(frames_out[-1] // self.block + 1)
        return indices, images, None if faces[0] is None else np.stack(faces)


class Wav2LipStream:
    """Lip-syncs a face to audio arriving in chunks; see the module's docstring.

    Takes a `Wav2LipPredictor` (or its arguments) for the networks and every per-frame setting
    (boxes, blend, enhancement); `silence_passthrough` needs the whole clip's speech level and
    is refused.
    """

    def __init__(self, predictor: Optional[Wav2LipPredictor] = None, **predictor_arguments):
        self.predictor = predictor or Wav2LipPredictor(**predictor_arguments)
        if self.predictor.silence is not None:
            raise InputError("silence_passthrough measures the whole clip's speech level: "
                             "not available in a stream")

    def run(self, face: str, chunks: Iterable[np.ndarray], output: str,
            audio_path: Optional[str] = None, on_frame: Optional[FrameHook] = None) -> str:
        """Stream `face` lip-synced to the 16 kHz samples of `chunks` into `output` (a video
        file, a udp:// or rtmp:// URL, or an .m3u8 playlist); the output's audio is
        `audio_path`'s, or else the samples themselves. `on_frame(index, frame)` sees each
        frame as it goes to ffmpeg. Returns the output."""
        predictor = self.predictor
        source = FrameSource(face, predictor.fps, **predictor.transform)
        try:
            generator = predictor.load_networks()
            frames = predictor.frames_to_sync(source, WHOLE_VIDEO)
            logger.info("streaming at %.2f fps from %d source frame(s)", source.fps,
                        len(frames.boxes))
            with StreamWriter(output, source.width, source.height, source.fps, audio_path,
                              on_frame) as writer:
                self._stream(generator, frames, iter(chunks), writer,
                             take_audio=audio_path is None)
            return writer.outfile
        finally:
            source.close()

    def _stream(self, generator, frames: SourceFrames, chunks: Iterator[np.ndarray],
                writer: StreamWriter, take_audio: bool) -> None:
        source = frames.source
        mel, windows = StreamingMel(), _MelWindows(source.fps)
        still_skips = frames.still_features(generator)
        most = self.predictor.step_size(source.height * source.width * 3)
        next_frame, last_write = 0, None
        # Reading runs ahead on a thread, pasting and piping to ffmpeg one step behind the
        # generator on another; leaving the block waits for both.
        with ThreadPoolExecutor(1, "wav2lip-stream-read", block_stop_signals) as reader, \
                ThreadPoolExecutor(1, "wav2lip-stream-write", block_stop_signals) as paster:
            ahead = _ReadAhead(frames, most, reader)
            self._warm_up(generator, ahead, still_skips, most)
            for chunk in _taken_in(chunks, writer if take_audio else None):
                windows.add(mel.feed(chunk))
                while windows.ready(next_frame):
                    count = 1
                    while count < most and windows.ready(next_frame + count):
                        count += 1
                    # Steps of a few sizes only: Paddle Inference prepares its kernels once
                    # per batch shape, slowly, and a stream that falls behind takes any count.
                    count = 1 << (count.bit_length() - 1)
                    last_write = self._step(generator, ahead, frames, windows, range(next_frame,
                                            next_frame + count), still_skips, writer, paster,
                                            last_write)
                    next_frame += count
                    windows.drop_before(next_frame)
            if mel.samples == 0:
                raise AudioError("the audio stream ended before any sample arrived")
            windows.add(mel.finish())
            windows.end()
            total = output_frames(mel.samples, source.fps)
            for start in range(next_frame, total, most):
                last_write = self._step(generator, ahead, frames, windows,
                                        range(start, min(start + most, total)), still_skips,
                                        writer, paster, last_write)
            if last_write is not None:
                last_write.result()
        logger.info("streamed %d frames (%.2f s of audio)", writer.frames_written,
                    mel.samples / DEFAULT_MEL.sample_rate)

    def _warm_up(self, generator, ahead: _ReadAhead, still_skips: Optional[List[np.ndarray]],
                 most: int) -> None:
        """Run each step size the stream takes before the end of its audio once, before the
        audio comes: Paddle Inference prepares its kernels on a batch shape's first call (0.1-0.2
        s on 2 cores), and the stream's first frames waited for them."""
        faces = ahead.take(range(most))[2]
        for count in sorted({1 << k for k in range(most.bit_length())}):
            mels = np.zeros((count, DEFAULT_MEL.num_mels, MEL_STEP_SIZE), np.float32)
            generate(generator, mels, None if faces is None else faces[:count], still_skips,
                     self.predictor.lower_only())

    def _step(self, generator, ahead: _ReadAhead, frames: SourceFrames, windows: _MelWindows,
              frames_out: range,
              still_skips: Optional[List[np.ndarray]], writer: StreamWriter,
              paster: ThreadPoolExecutor, last_write: Optional[Future]) -> Future:
        """Generate frames `frames_out` and hand them to the paster once the previous step's
        are out; returns the paster's future."""
        indices, images, faces = ahead.take(frames_out)
        mels = np.stack([windows.window(i) for i in frames_out])
        generated = generate(generator, mels, faces, still_skips, self.predictor.lower_only())
        if last_write is not None:
            last_write.result()
        shares = np.zeros(len(frames_out), np.float32)  # no silence passthrough in a stream
        return submit_unsplit(paster, self.predictor.paste_and_write, writer, images, generated,
                              frames.boxes[indices], frames.still is not None, shares,
                              frames.mouths_at(indices))
