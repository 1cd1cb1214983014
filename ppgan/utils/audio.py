"""Audio for Wav2Lip: decode any file ffmpeg reads, and the reference mel-spectrogram.

The mel pipeline is the original Wav2Lip's `audio.melspectrogram` (also PaddleGAN's), with the
STFT reflect-padded as in librosa 0.7, which the released weights were trained with.
"""
import functools
import io
import os
from dataclasses import dataclass

import ffmpeg
import librosa
import numpy as np
import soundfile
from scipy import signal

from .ffmpeg_tools import FFmpegError, run


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


class AudioError(ValueError):
    """An audio input that cannot be used; the message says which file and why."""


def load_wav(path: str, sample_rate: int = DEFAULT_MEL.sample_rate) -> np.ndarray:
    """Decode the first audio stream of any file ffmpeg reads to mono float32 at `sample_rate`.

    Channels are averaged and resampled with librosa, exactly as `librosa.load(path, sr=...)`,
    which the references use; ffmpeg only decodes, so m4a/aac and video sound tracks work too.
    """
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    decoder = ffmpeg.input(path).output("pipe:", map="0:a:0", format="wav", acodec="pcm_f32le")
    try:
        wav_bytes, _ = run(decoder)
    except FFmpegError as err:
        if "matches no streams" in err.stderr:
            raise AudioError(f"{path} has no audio stream") from None
        raise AudioError(f"cannot read audio from {path}: {err}") from None
    try:
        samples, native_rate = soundfile.read(io.BytesIO(wav_bytes), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise AudioError(f"cannot read audio from {path}: {err}") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path} contains no audio samples")
    mono = samples.mean(axis=1)
    if native_rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=native_rate, target_sr=sample_rate)
    return mono.astype(np.float32)


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
