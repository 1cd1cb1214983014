"""Audio for Wav2Lip: decode any media file, and the reference mel-spectrogram.

The mel pipeline is the original Wav2Lip's `audio.melspectrogram` (also PaddleGAN's), with the
STFT reflect-padded as in librosa 0.7, which the released weights were trained with.
"""
import functools
import logging
import os
import wave
from dataclasses import dataclass
from typing import Optional, Tuple

import av
import librosa
import numpy as np
from scipy import signal

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
    differently). Channels are averaged and resampled with librosa, as `librosa.load(path,
    sr=...)` in the references.
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
        mono = librosa.resample(mono, orig_sr=native_rate, target_sr=sample_rate)
    return mono.astype(np.float32)


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
    # Keyword arguments only: librosa >= 0.10 rejects the references' positional call.
    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.num_mels,
                               fmin=cfg.fmin, fmax=cfg.fmax)


def melspectrogram(wav: np.ndarray, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """The normalised log-mel spectrogram, shape (num_mels, 1 + len(wav) // hop_size), in [-4, 4]."""
    emphasized = signal.lfilter([1, -cfg.preemphasis], [1], wav)
    # pad_mode must be given: librosa >= 0.9 pads with zeros by default, 0.7 reflected.
    spec = librosa.stft(y=emphasized, n_fft=cfg.n_fft, hop_length=cfg.hop_size,
                        win_length=cfg.win_size, center=True, pad_mode="reflect")
    mel = np.dot(mel_basis(cfg), np.abs(spec))
    min_level = 10 ** (cfg.min_level_db / 20)
    db = 20 * np.log10(np.maximum(min_level, mel)) - cfg.ref_level_db
    scaled = 2 * cfg.max_abs_value * (db - cfg.min_level_db) / -cfg.min_level_db - cfg.max_abs_value
    return np.clip(scaled, -cfg.max_abs_value, cfg.max_abs_value).astype(np.float32)
