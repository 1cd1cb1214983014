"""Audio decoding (PyAV) and the Wav2Lip mel-spectrogram against an independent NumPy one."""
import numpy as np
import pytest
from scipy.signal import get_window

from ppgan.utils.audio import AudioError, load_wav, melspectrogram

from media import SR, ffmpeg, speech_like, to_pcm16, write_wav

pytestmark = pytest.mark.ffmpeg  # run with every ffmpeg build on the machine (conftest.py)


# ---- an independent mel: NumPy STFT and a Slaney filterbank written from the formulas ----
def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    linear = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, linear)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * 200.0 / 3)


def slaney_filterbank(n_fft=800, n_mels=80, fmin=55.0, fmax=7600.0):
    fft_hz = np.linspace(0, SR / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bank = np.zeros((n_mels, fft_hz.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (fft_hz - lo) / (mid - lo)
        falling = (hi - fft_hz) / (hi - mid)
        bank[i] = np.maximum(0, np.minimum(rising, falling)) * 2.0 / (hi - lo)
    return bank


def reference_mel(wav):
    emphasized = np.append(wav[0], wav[1:] - 0.97 * wav[:-1]).astype(np.float64)
    padded = np.pad(emphasized, 400, mode="reflect")
    n_frames = 1 + (padded.size - 800) // 200
    frames = np.stack([padded[i * 200:i * 200 + 800] for i in range(n_frames)])
    magnitude = np.abs(np.fft.rfft(frames * get_window("hann", 800, fftbins=True), axis=1)).T
    db = 20 * np.log10(np.maximum(1e-5, slaney_filterbank() @ magnitude)) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


def test_mel_matches_independent_numpy_computation():
    wav = speech_like()
    mel = melspectrogram(wav)
    expected = reference_mel(wav)
    assert mel.shape == (80, 1 + wav.size // 200) == expected.shape
    assert mel.dtype == np.float32
    np.testing.assert_allclose(mel, expected, atol=1e-4)
    assert mel.min() >= -4 and mel.max() <= 4 and mel.std() > 0.5


def references_mel(wav):
    """The references' own calls (Wav2Lip's audio.py): SciPy's lfilter, librosa's STFT and filter
    bank, their dB scaling and normalisation, in float64."""
    import librosa
    from scipy import signal

    emphasized = signal.lfilter([1, -0.97], [1], wav)
    spec = librosa.stft(y=emphasized, n_fft=800, hop_length=200, win_length=800, center=True,
                        pad_mode="reflect")
    basis = librosa.filters.mel(sr=SR, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    db = 20 * np.log10(np.maximum(1e-5, np.dot(basis, np.abs(spec)))) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


@pytest.mark.one_build  # no ffmpeg involved
@pytest.mark.parametrize("length", [1, 100, 401, 12345, 48000])
def test_mel_is_the_references_librosa_mel_within_one_float32_step(length):
    """Paddle's STFT and filter bank instead of librosa's: within 2.4e-7 of librosa's values
    (one float32 step for magnitudes of 2 to 4), the pre-emphasis equal to SciPy's to the bit."""
    from scipy import signal

    from ppgan.utils.audio import mel_basis, preemphasized

    rng = np.random.default_rng(length)
    wav = speech_like(length / SR, seed=length) if length > 1000 else \
        rng.standard_normal(length).astype(np.float32) * 0.1
    ours, theirs = melspectrogram(wav), references_mel(wav)
    assert ours.shape == theirs.shape == (80, 1 + length // 200)
    np.testing.assert_allclose(ours, theirs.astype(np.float32), rtol=0, atol=3e-7)
    np.testing.assert_array_equal(preemphasized(wav.astype(np.float64), 0.97),
                                  signal.lfilter([1, -0.97], [1], wav))
    import librosa

    np.testing.assert_allclose(mel_basis(), librosa.filters.mel(sr=SR, n_fft=800, n_mels=80,
                                                                fmin=55, fmax=7600),
                               rtol=0, atol=5e-9)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_as_librosa_load_does(tmp_path, rate):
    import librosa

    t = np.arange(int(1.3 * rate)) / rate
    source = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    write_wav(tmp_path / "a.wav", source, rate=rate)
    ours = load_wav(str(tmp_path / "a.wav"))
    pcm = to_pcm16(source).astype(np.float32) / 32768
    np.testing.assert_array_equal(ours, librosa.resample(pcm, orig_sr=rate, target_sr=SR))
    assert ours.size == int(np.ceil(pcm.size * SR / rate))


def test_mel_edges_use_reflect_padding():
    # Zero padding (librosa's newer default) would change the first and last frames.
    wav = speech_like(0.5, seed=3) + 0.3
    mel = melspectrogram(wav)
    np.testing.assert_allclose(mel[:, [0, -1]], reference_mel(wav)[:, [0, -1]], atol=1e-4)


def test_wav_decodes_exactly(tmp_path):
    samples = speech_like()
    write_wav(tmp_path / "a.wav", samples)
    pcm = to_pcm16(samples)
    wav = load_wav(str(tmp_path / "a.wav"))
    assert wav.dtype == np.float32
    np.testing.assert_array_equal(wav, pcm.astype(np.float32) / 32768)


def test_stereo_is_averaged_and_resampled(tmp_path):
    rate = 22050
    t = np.arange(rate) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 300 * t), 0.3 * np.sin(2 * np.pi * 300 * t)
    write_wav(tmp_path / "s.wav", np.stack([left, right], 1).ravel(), rate=rate, channels=2)
    wav = load_wav(str(tmp_path / "s.wav"))
    assert wav.size == SR
    core = wav[2000:-2000]
    np.testing.assert_allclose(np.abs(core).max(), 0.4, atol=5e-3)  # the mean of 0.5 and 0.3


@pytest.mark.parametrize("suffix,codec_args", [
    (".mp3", []), (".m4a", ["-c:a", "aac"]), (".ogg", ["-c:a", "libvorbis"]),
    (".opus", ["-c:a", "libopus"]), (".flac", []),
    (".mp4", ["-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25", "-shortest", "-c:v", "libx264", "-c:a", "aac"]),
])
def test_compressed_formats_and_video_soundtracks(tmp_path, suffix, codec_args):
    source = speech_like()
    write_wav(tmp_path / "a.wav", source)
    out = tmp_path / f"a{suffix}"
    ffmpeg("-i", tmp_path / "a.wav", *codec_args, out)
    wav = load_wav(str(out))
    # To the sample: the encoders' priming and padding are dropped (MP4's edit list, Ogg's
    # granule positions, MP3's LAME header), whichever ffmpeg encoded the file.
    assert wav.size == source.size
    n = min(wav.size, source.size)
    lag = np.argmax(np.correlate(wav[:n], source[:n][2000:6000], "valid")) - 2000
    aligned = wav[2000 + lag:n - 2000 + lag]
    corr = np.corrcoef(aligned, source[2000:n - 2000])[0, 1]
    assert corr > 0.95


@pytest.mark.parametrize("seconds", [0.8, 1.0, 1.234, 2.5])  # whole ms: what 5.1 can declare
def test_aac_in_mp4_decodes_to_the_declared_length(tmp_path, seconds):
    """Debian's ffmpeg 5.1 decodes a 0.8 s AAC track to 13,312 samples, newer builds to 12,800:
    our decoder does not depend on the binary, and drops the padding past the declared end."""
    write_wav(tmp_path / "a.wav", speech_like(seconds))
    ffmpeg("-i", tmp_path / "a.wav", "-c:a", "aac", tmp_path / "a.m4a")
    assert load_wav(str(tmp_path / "a.m4a")).size == round(seconds * SR)


def test_long_decoded_audio_is_kept_where_the_length_is_only_estimated(tmp_path):
    # Raw ADTS AAC states no length: its padding stays rather than risking real audio.
    write_wav(tmp_path / "a.wav", speech_like(0.8))
    ffmpeg("-i", tmp_path / "a.wav", "-c:a", "aac", tmp_path / "a.aac")
    assert load_wav(str(tmp_path / "a.aac")).size >= round(0.8 * SR)


def test_video_without_audio_is_a_clear_error(tmp_path):
    video = tmp_path / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25:d=1", "-c:v", "libx264", video)
    with pytest.raises(AudioError, match="has no audio stream"):
        load_wav(str(video))


def test_empty_missing_and_non_audio_files_are_clear_errors(tmp_path):
    write_wav(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(AudioError, match="contains no audio samples"):
        load_wav(str(tmp_path / "empty.wav"))
    with pytest.raises(AudioError, match="not found"):
        load_wav(str(tmp_path / "missing.wav"))
    (tmp_path / "notes.txt").write_text("not audio at all\n" * 10)
    with pytest.raises(AudioError, match="cannot read audio from .*notes.txt"):
        load_wav(str(tmp_path / "notes.txt"))


def test_nan_samples_are_a_clear_error(tmp_path):
    from scipy.io import wavfile

    samples = speech_like(0.5)
    samples[100] = np.nan
    wavfile.write(tmp_path / "nan.wav", SR, samples)
    with pytest.raises(AudioError, match="not numbers"):
        load_wav(str(tmp_path / "nan.wav"))


@pytest.mark.one_build  # no ffmpeg involved
@pytest.mark.parametrize("length", [100, 401, 799, 16000, 19237])
def test_streaming_mel_equals_the_offline_mel_for_any_chunking(length):
    """Chunks of 1 to 2999 samples: the columns streamed while the audio comes, then those of
    the end, are melspectrogram's, to the bit (short clips are done whole at the end)."""
    from ppgan.data_preparation.samples import speech_like
    from ppgan.utils.audio import StreamingMel, melspectrogram

    wav = speech_like(1.3)[:length].astype(np.float32)
    rng = np.random.default_rng(length)
    mel, parts, begin = StreamingMel(), [], 0
    while begin < wav.size:
        size = int(rng.integers(1, 3000))
        parts.append(mel.feed(wav[begin:begin + size]))
        begin += size
    streamed = sum(part.shape[1] for part in parts)
    parts.append(mel.finish())
    offline = melspectrogram(wav)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), offline)
    # Before the end, every column whose 800-sample frame lay inside the audio had come.
    assert streamed == (max(0, (length - 400) // 200 + 1) if length > 400 else 0)
