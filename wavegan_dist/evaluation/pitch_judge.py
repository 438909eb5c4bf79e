"""An independent judge of pitch: pYIN (Mauch & Dixon, 2014) as librosa implements it,
a standard f0 estimator that nothing in this project trained.

Per clip the median f0 of the voiced frames is turned into a (fractional) MIDI pitch
and compared with the pitch the clip should have: strict accuracy counts clips
within 50 cents, octave-tolerant accuracy clips within 50 cents of the pitch
modulo 12 semitones. A clip with no voiced frame counts as wrong.

The judge also measures the upsampling artifacts of WaveGAN-style generators:
lines at multiples of sample_rate / 256 (62.5 Hz at 16 kHz, the period of the
generator's stride-4 layers together) and of sample_rate / 16 (1000 Hz), as the
fraction of a set's spectral power in narrow bands around those lines; the same
fraction for real notes is the reference (a flat spectrum gives 3/16 and 3/256).
"""

from __future__ import annotations

import numpy as np

# pYIN's search range: MIDI 24 (32.7 Hz) to 96 (2093 Hz) covers NSynth's usual
# pitches and the 62.5 Hz artifact; bounding it keeps the decoding fast.
FMIN_MIDI, FMAX_MIDI = 24, 96
FRAME_LENGTH = 2048  # 128 ms at 16 kHz: two periods of the lowest pitch fit
HOP_LENGTH = 512
# Quarter-semitone pitch states: the f0 it returns lies on that grid (within 12.5
# cents of the truth), well inside the 50-cent tolerance; 0.1 was 8x slower.
RESOLUTION = 0.25
MAX_SECONDS = 0.5  # only a clip's first half second is tracked (the time budget)
STRICT_CENTS = 50.0
ARTIFACT_PERIODS = (256, 16)  # samples: lines at sample_rate / period and multiples
ARTIFACT_FFT = 4096  # 62.5 Hz is exactly bin 16 at 16 kHz
ARTIFACT_HALF_WIDTH = 1  # bins each side of a line that count as the line
JUDGE_KEYS = (
    "judge_pitch_accuracy",
    "judge_pitch_accuracy_octave",
    *(f"artifact_power_sr_over_{p}" for p in ARTIFACT_PERIODS),
)


def estimate_midi(waves: np.ndarray, sample_rate: int) -> np.ndarray:
    """Median voiced f0 of each clip as a fractional MIDI pitch.

    Args:
      waves: float [N, T] or [N, T, 1] audio in [-1, 1]; only the first MAX_SECONDS
        are used; shorter clips are zero-padded to FRAME_LENGTH.
      sample_rate: Hz.
    Returns:
      float64 [N]; NaN for a clip in which pYIN found no voiced frame.
    """
    import librosa  # heavy (numba); only the judge needs it

    waves = np.asarray(waves, np.float32).reshape(len(waves), -1)
    if len(waves) == 0:
        return np.zeros(0)
    waves = waves[:, : max(FRAME_LENGTH, int(MAX_SECONDS * sample_rate))]
    if waves.shape[1] < FRAME_LENGTH:
        waves = np.pad(waves, [(0, 0), (0, FRAME_LENGTH - waves.shape[1])])
    f0, voiced, _ = librosa.pyin(
        waves,
        fmin=float(librosa.midi_to_hz(FMIN_MIDI)),
        fmax=float(librosa.midi_to_hz(FMAX_MIDI)),
        sr=sample_rate,
        frame_length=FRAME_LENGTH,
        hop_length=HOP_LENGTH,
        resolution=RESOLUTION,
    )
    out = np.full(len(waves), np.nan)
    for i, (track, mask) in enumerate(zip(f0, voiced)):
        if mask.any():
            out[i] = float(librosa.hz_to_midi(np.median(track[mask])))
    return out


def pitch_accuracy(estimated: np.ndarray, requested: np.ndarray) -> dict:
    """Strict and octave-tolerant accuracy of estimated pitches.

    Args:
      estimated: float [N] MIDI pitches (NaN = none found); requested: int [N].
    Returns:
      {"strict": fraction within STRICT_CENTS, "octave": fraction within STRICT_CENTS
       modulo 12 semitones}; NaN estimates count as wrong.
    """
    estimated = np.asarray(estimated, np.float64)
    off = estimated - np.asarray(requested, np.float64)
    found = ~np.isnan(off)
    tolerance = STRICT_CENTS / 100
    strict = found & (np.abs(np.where(found, off, 0)) <= tolerance)
    wrapped = np.abs((np.where(found, off, 0) + 6) % 12 - 6)
    octave = found & (wrapped <= tolerance)
    return {"strict": float(strict.mean()), "octave": float(octave.mean())}


def artifact_power(waves: np.ndarray, sample_rate: int) -> dict:
    """Fraction of a set's spectral power on the upsampling artifact lines.

    Args:
      waves: float [N, T(, 1)] audio, T >= 1 (shorter than ARTIFACT_FFT is zero-padded).
      sample_rate: Hz.
    Returns:
      {period: fraction} for each of ARTIFACT_PERIODS: power in the bins within
      ARTIFACT_HALF_WIDTH of k * sample_rate / period (k >= 1, below Nyquist) over
      all power above DC, pooled over the set (Hann-windowed frames, half overlap).
    """
    waves = np.asarray(waves, np.float64).reshape(len(waves), -1)
    if waves.shape[1] < ARTIFACT_FFT:
        waves = np.pad(waves, [(0, 0), (0, ARTIFACT_FFT - waves.shape[1])])
    hop = ARTIFACT_FFT // 2
    starts = range(0, waves.shape[1] - ARTIFACT_FFT + 1, hop)
    window = np.hanning(ARTIFACT_FFT)
    power = np.zeros(ARTIFACT_FFT // 2 + 1)
    for start in starts:
        power += (
            np.abs(np.fft.rfft(waves[:, start : start + ARTIFACT_FFT] * window, axis=1)) ** 2
        ).sum(axis=0)
    total = power[1:].sum()
    out = {}
    for period in ARTIFACT_PERIODS:
        line_hz = sample_rate / period
        centres = np.rint(
            np.arange(line_hz, sample_rate / 2, line_hz) * ARTIFACT_FFT / sample_rate
        ).astype(int)
        bins = np.unique(
            np.clip(
                (centres[:, None] + np.arange(-ARTIFACT_HALF_WIDTH, ARTIFACT_HALF_WIDTH + 1)),
                1,
                ARTIFACT_FFT // 2,
            )
        )
        out[period] = float(power[bins].sum() / total) if total > 0 else 0.0
    return out


def judge_set(waves: np.ndarray, sample_rate: int, pitches: np.ndarray | None) -> dict:
    """The judge's figures for one set of clips.

    Args:
      waves: float [N, T(, 1)] audio.
      sample_rate: Hz.
      pitches: int [N] MIDI pitches the clips should have, or None (no pitch label:
        the accuracies are None and pYIN is not run).
    Returns:
      {key: value} for JUDGE_KEYS: "judge_pitch_accuracy", "judge_pitch_accuracy_octave",
      "artifact_power_sr_over_256", "artifact_power_sr_over_16".
    """
    out = {"judge_pitch_accuracy": None, "judge_pitch_accuracy_octave": None}
    if pitches is not None:
        accuracy = pitch_accuracy(estimate_midi(waves, sample_rate), pitches)
        out.update(
            judge_pitch_accuracy=accuracy["strict"], judge_pitch_accuracy_octave=accuracy["octave"]
        )
    for period, fraction in artifact_power(waves, sample_rate).items():
        out[f"artifact_power_sr_over_{period}"] = fraction
    return out
