"""Which output frames fall in a silence of the audio, and how much of the source frame each
of them shows.

Wav2Lip keeps the mouth moving in silence; with `--silence_passthrough` the frames of a long
enough silent span show the source frame instead, cross-faded at the span's edges. The decision
is per video frame, from the audio samples that frame spans (so it follows the frame rate).
"""
import numpy as np

FLOOR_DB = -100.0  # the level of digital silence (log of zero)
SPEECH_PERCENTILE = 95  # the clip's speech level: the level most of its loud frames reach
FADE_SECONDS = 0.12  # 3 frames at 25 fps on each edge of a span


def frame_levels(wav: np.ndarray, sample_rate: int, fps: float, count: int) -> np.ndarray:
    """(count,) RMS level in dBFS of the samples under each output frame (FLOOR_DB where the
    audio has ended)."""
    edges = np.rint(np.arange(count + 1) * sample_rate / fps).astype(np.int64)
    edges = np.minimum(edges, wav.size)
    squares = np.concatenate([[0.0], np.cumsum(np.square(wav, dtype=np.float64))])
    sizes = np.maximum(edges[1:] - edges[:-1], 1)
    rms = np.sqrt((squares[edges[1:]] - squares[edges[:-1]]) / sizes)
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), FLOOR_DB)


def silent_frames(levels: np.ndarray, below_speech_db: float, min_frames: int) -> np.ndarray:
    """(count,) bool: frames in runs of at least `min_frames` whose level is `below_speech_db`
    or more under the clip's speech level. Relative to the clip, so that a quiet recording's
    pauses count as much as a loud one's."""
    quiet = levels < np.percentile(levels, SPEECH_PERCENTILE) - below_speech_db
    silent = np.zeros_like(quiet)
    for start, stop in _runs_of_true(quiet):
        if stop - start >= min_frames:
            silent[start:stop] = True
    return silent


def source_shares(silent: np.ndarray, fade_frames: int) -> np.ndarray:
    """(count,) float in [0, 1]: how much of the source frame each output frame shows; 1 inside
    a silent span, ramping over `fade_frames` at each edge inside the span (a span too short for
    two full ramps peaks lower)."""
    shares = np.zeros(silent.size, np.float32)
    for start, stop in _runs_of_true(silent):
        position = np.arange(stop - start)
        to_edge = np.minimum(position + 1, stop - start - position)
        shares[start:stop] = np.minimum(1.0, to_edge / (fade_frames + 1))
    return shares


def _runs_of_true(mask: np.ndarray):
    """(start, stop) of each run of True in a 1-D bool array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return zip(changes[::2], changes[1::2])


def passthrough_shares(wav: np.ndarray, sample_rate: int, fps: float, count: int,
                       below_speech_db: float, min_seconds: float) -> np.ndarray:
    """The source share of each of `count` output frames at `fps` for the audio `wav`."""
    levels = frame_levels(wav, sample_rate, fps, count)
    silent = silent_frames(levels, below_speech_db, max(1, round(min_seconds * fps)))
    return source_shares(silent, max(1, round(FADE_SECONDS * fps)))
