"""Audio for Wav2Lip: decode any media file, and the reference mel-spectrogram.

The mel pipeline is the original Wav2Lip's `audio.melspectrogram` (also PaddleGAN's), with the
STFT reflect-padded as in librosa 0.7, which the released weights were trained with. The
references compute it with SciPy's `lfilter` and librosa; here the STFT and the Slaney filter
bank are Paddle's (`paddle.signal.stft`, `paddle.audio.functional`, which follow librosa's
definitions), within one float32 step of librosa's values (tests/test_audio.py), without
librosa's first call, which imports SciPy's signal module, numba and its own modules (about
1.5 s of CPU).
"""
import functools
import logging
import os
import wave
from dataclasses import dataclass
from typing import Optional, Tuple

import av
import numpy as np

from .checks import MEL_STEP_SIZE
from .errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MelConfig:
    """The references' audio hparams (RW `hparams.py`, PG `audio_config.py`)."""

    sample_rate: int = 16000
    num_mels: int = 80
    n_fft: int = 800
    hop_size: int = 200  # 12.5 ms: 80 mel frames per second
    win_size: int = 800
    preemphasis: float = 0.97
    fmin: float = 55.0
    fmax: float = 7600.0
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_size


DEFAULT_MEL = MelConfig()


class AudioError(UserError, ValueError):
    """An audio input that cannot be used; the message says which file and why."""


def load_wav(path: str, sample_rate: int = DEFAULT_MEL.sample_rate) -> np.ndarray:
    """Decode the first audio stream of any media file to mono float32 at `sample_rate`.

    PyAV decodes with the FFmpeg libraries inside its wheel, so the samples do not depend on
    which ffmpeg binary the machine has (Debian's 5.1 and newer builds trim an MP4's AAC padding
    differently). Channels are averaged and resampled as `librosa.load(path, sr=...)` in the
    references: soxr's high quality, the length rounded up (librosa's own call, to the bit).
    """
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioError(f"{path} has no audio stream")
            stream = container.streams.audio[0]
            samples, native_rate = _decode(container, stream, path)
            declared = _declared_length(container, stream, native_rate)
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise AudioError(f"cannot read audio from {path}: {_reason(err)}") from None
    if declared is not None and samples.shape[1] > declared:
        samples = samples[:, :declared]  # the encoder's padding past the declared end
    if samples.shape[1] == 0:
        raise AudioError(f"{path} contains no audio samples")
    if not np.isfinite(samples).all():  # a float WAV can hold NaN or inf
        raise AudioError(f"{path} contains samples that are not numbers (NaN or infinite)")
    mono = samples.mean(axis=0)
    if native_rate != sample_rate:
        mono = _resampled(mono, native_rate, sample_rate)
    return mono.astype(np.float32)


def _resampled(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """`librosa.resample(samples, orig_sr=rate, target_sr=new_rate)` at its defaults."""
    import soxr  # late: only audio at another rate needs it

    length = int(np.ceil(samples.size * new_rate / rate))
    resampled = soxr.resample(samples, rate, new_rate, quality="soxr_hq")[:length]
    return np.pad(resampled, (0, length - resampled.size)).astype(samples.dtype)


def _reason(err: Exception) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without the path."""
    return getattr(err, "strerror", None) or str(err)


def _decode(container, stream, path: str) -> Tuple[np.ndarray, int]:
    """(channels, samples) float32 at the stream's own rate; damaged packets are skipped, as
    the ffmpeg command line does."""
    # Integer PCM to float exactly as ffmpeg converts it (libswresample); the rate is kept.
    converter = av.AudioResampler(format="fltp")
    chunks, damaged, rate = [], 0, None
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            damaged += 1
            continue
        for frame in frames:
            rate = rate or frame.sample_rate
            chunks.extend(out.to_ndarray() for out in converter.resample(frame))
    if rate is not None:
        chunks.extend(out.to_ndarray() for out in converter.resample(None))
    if damaged:
        logger.warning("%s: skipped %d damaged audio packet(s)", path, damaged)
    if not chunks:
        return np.zeros((1, 0), np.float32), stream.rate or 0
    return np.concatenate(chunks, axis=1), rate


def _declared_length(container, stream, rate: int) -> Optional[int]:
    """Samples the container says the stream lasts, where that is exact rather than estimated.

    MP4/MOV edit lists and Ogg granule positions state it to the sample; ffmpeg's decoders do
    not always drop the encoder padding past it. Other containers' durations can be estimates
    from the bit rate, which must not cut real audio.
    """
    exact = {"mov", "mp4", "ogg"} & set(container.format.name.split(","))
    if not exact or stream.duration is None or stream.time_base is None or not rate:
        return None
    return int(round(stream.duration * stream.time_base * rate))


def write_wav(path: str, samples: np.ndarray, sample_rate: int = DEFAULT_MEL.sample_rate) -> None:
    """16-bit PCM mono WAV, as the references' preprocessing leaves `audio.wav`."""
    pcm = np.clip(np.round(np.asarray(samples) * 32767), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


@functools.lru_cache(maxsize=4)
def mel_basis(cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """(num_mels, 1 + n_fft // 2) float32: `librosa.filters.mel` at the references' settings
    (Slaney's mel scale and area normalisation)."""
    import paddle.audio

    basis = paddle.audio.functional.compute_fbank_matrix(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.num_mels, f_min=cfg.fmin, f_max=cfg.fmax,
        htk=False, norm="slaney", dtype="float64")
    return basis.numpy().astype(np.float32)  # librosa's float64 arithmetic, its float32 result


@functools.lru_cache(maxsize=4)
def _hann_window(size: int) -> np.ndarray:
    import paddle.audio

    return paddle.audio.functional.get_window("hann", size, fftbins=True, dtype="float64").numpy()


def melspectrogram(wav: np.ndarray, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """The normalised log-mel spectrogram, shape (num_mels, 1 + len(wav) // hop_size), in [-4, 4]."""
    emphasized = preemphasized(np.asarray(wav, dtype=np.float64), cfg.preemphasis)
    # Reflect padding must be asked for: librosa >= 0.9 pads with zeros by default, 0.7 reflected.
    return _normalised_mel(_stft(emphasized, cfg, center=True), cfg)


def preemphasized(samples: np.ndarray, coefficient: float, previous: float = 0.0) -> np.ndarray:
    """`scipy.signal.lfilter([1, -coefficient], [1], samples)` to the bit: y[n] = x[n] +
    (-coefficient * x[n-1]), with x[-1] = `previous` (0 at the start of a signal)."""
    shifted = np.concatenate([[previous], samples[:-1]])[:samples.size]
    return samples + -coefficient * shifted


def _stft(emphasized: np.ndarray, cfg: MelConfig, center: bool) -> np.ndarray:
    """The complex STFT (1 + n_fft // 2, frames), as `librosa.stft` with a periodic Hann window
    and, if `center`, the signal reflected by n_fft // 2 at both ends."""
    import paddle  # late: the data tools that only decode audio do not need it

    if center:  # NumPy's reflection, as librosa's: Paddle's needs a signal longer than n_fft
        emphasized = np.pad(emphasized, cfg.n_fft // 2, mode="reflect")
    signal = paddle.to_tensor(emphasized, dtype="float64", place=paddle.CPUPlace())
    window = paddle.to_tensor(_hann_window(cfg.win_size), place=paddle.CPUPlace())
    return paddle.signal.stft(signal, n_fft=cfg.n_fft, hop_length=cfg.hop_size,
                              win_length=cfg.win_size, window=window, center=False).numpy()


def _normalised_mel(spec: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """STFT columns to mel columns: dB, then scaled by fixed constants (no clip statistics, so
    each column depends on its own STFT frame alone)."""
    mel = np.dot(mel_basis(cfg), np.abs(spec))
    min_level = 10 ** (cfg.min_level_db / 20)
    db = 20 * np.log10(np.maximum(min_level, mel)) - cfg.ref_level_db
    scaled = 2 * cfg.max_abs_value * (db - cfg.min_level_db) / -cfg.min_level_db - cfg.max_abs_value
    return np.clip(scaled, -cfg.max_abs_value, cfg.max_abs_value).astype(np.float32)


class StreamingMel:
    """`melspectrogram` of audio arriving in chunks, each column computed once its STFT frame's
    samples have all arrived.

    Column c's frame covers the emphasized samples c*hop - n_fft/2 .. c*hop + n_fft/2 of the
    signal reflect-padded by n_fft/2 at both ends. The pre-emphasis filter is causal and the
    scaling uses fixed constants, so a column whose frame lies before the right padding has its
    offline value as soon as its samples are in (`feed`); the last columns, whose frames reach
    into the reflection of the end, are computed by `finish` as the offline call computes them.
    Only the samples the columns still to come need are kept.
    """

    def __init__(self, cfg: MelConfig = DEFAULT_MEL):
        self.cfg = cfg
        self.samples = 0  # received so far
        self.columns = 0  # mel columns returned so far
        self._previous = 0.0  # the last raw sample: the pre-emphasis filter's state
        # All of the emphasized signal, until the left padding can be made from it.
        self._emphasized: Optional[np.ndarray] = np.zeros(0)
        self._padded = np.zeros(0)  # the padded signal from column `columns`'s frame onwards

    @property
    def _half(self) -> int:
        return self.cfg.n_fft // 2

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        """Take the next samples; returns the mel columns (num_mels, k) they complete."""
        chunk = np.asarray(chunk, np.float32).astype(np.float64)
        if chunk.size == 0:
            return self._no_columns()
        emphasized = preemphasized(chunk, self.cfg.preemphasis, self._previous)
        self._previous = float(chunk[-1])
        self.samples += chunk.size
        if self._emphasized is not None:
            self._emphasized = np.concatenate([self._emphasized, emphasized])
            if self._emphasized.size <= self._half:
                return self._no_columns()
            # The left reflection (librosa's centre padding) needs samples 1..n_fft/2.
            head = self._emphasized[self._half:0:-1]
            self._padded, self._emphasized = np.concatenate([head, self._emphasized]), None
        else:
            self._padded = np.concatenate([self._padded, emphasized])
        hop = self.cfg.hop_size
        complete = (self.samples - self._half) // hop + 1  # frames inside the known samples
        return self._columns_until(complete, self._padded[:(complete - 1) * hop + self.cfg.n_fft])

    def finish(self) -> np.ndarray:
        """The remaining columns, up to `melspectrogram`'s 1 + samples // hop_size."""
        if self._emphasized is not None:  # too short for the streaming path: the offline call
            if self._emphasized.size == 0:
                return self._no_columns()
            self.columns = 1 + self.samples // self.cfg.hop_size
            return _normalised_mel(_stft(self._emphasized, self.cfg, center=True), self.cfg)
        # The right reflection: emphasized samples N-2 down to N-1-n_fft/2.
        tail = self._padded[-2:-2 - self._half:-1]
        total = 1 + self.samples // self.cfg.hop_size
        return self._columns_until(total, np.concatenate([self._padded, tail]))

    def _columns_until(self, stop: int, padded: np.ndarray) -> np.ndarray:
        """Columns `columns`..stop-1 from `padded` (which starts at column `columns`'s frame)."""
        if stop <= self.columns:
            return self._no_columns()
        mel = _normalised_mel(_stft(padded, self.cfg, center=False), self.cfg)
        self._padded = self._padded[(stop - self.columns) * self.cfg.hop_size:]
        self.columns = stop
        return mel

    def _no_columns(self) -> np.ndarray:
        return np.zeros((self.cfg.num_mels, 0), np.float32)


def mel_window_start(frame: int, fps: float, columns: int) -> int:
    """The first mel column of output frame `frame`'s 16-step window in a mel of `columns`
    columns: windows past the end repeat the last one."""
    return min(int(frame * DEFAULT_MEL.frames_per_second / fps), columns - MEL_STEP_SIZE)


def mel_window(mel: np.ndarray, frame: int, fps: float) -> np.ndarray:
    """The 16-step mel window of output frame `frame`; windows past the end repeat the last one."""
    start = mel_window_start(frame, fps, mel.shape[1])
    return mel[:, start:start + MEL_STEP_SIZE]
