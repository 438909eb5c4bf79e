"""Spectral features of audio slices, shared by the pitch classifier and the set metrics."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

FRAME_LENGTH = 1024  # 64 ms at 16 kHz: harmonics of most NSynth pitches are resolved
FRAME_STEP = 256
MAX_HZ = 8000.0  # NSynth's Nyquist at 16 kHz
MEL_BANDS = 64
MEL_MIN_HZ = 20.0
# Floor of the mel power before the log: about -100 dB of a full-scale sine's, so
# silence is one finite value rather than -inf.
MEL_FLOOR = 1e-10


def num_bins(sample_rate: int) -> int:
    """Frequency bins kept by log_spectrogram at this sample rate."""
    hz_per_bin = sample_rate / FRAME_LENGTH
    return min(FRAME_LENGTH // 2 + 1, int(MAX_HZ / hz_per_bin) + 1)


def log_spectrogram(waves, sample_rate: int, batch: int = 256) -> np.ndarray:
    """log(1 + |STFT|) of each waveform, up to 8 kHz.

    Args:
      waves: float32 [N, T] or [N, T, 1] in [-1, 1]; T >= FRAME_LENGTH.
      sample_rate: Hz.
      batch: waveforms per TensorFlow call (bounds memory).
    Returns:
      float32 [N, frames, bins], frames = 1 + (T - FRAME_LENGTH) // FRAME_STEP.
    """
    waves = np.asarray(waves, np.float32).reshape(len(waves), -1)
    bins = num_bins(sample_rate)
    out = []
    for start in range(0, len(waves), batch):
        stft = tf.signal.stft(waves[start : start + batch], FRAME_LENGTH, FRAME_STEP)
        out.append(tf.math.log1p(tf.abs(stft[..., :bins])).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, bins), np.float32)


def log_mel_frames(waves, sample_rate: int, batch: int = 256) -> np.ndarray:
    """Log mel power of each frame of each waveform, pooled over clips: the features
    of the plain log-mel Frechet distance, which no training shapes.

    Args:
      waves: float32 [N, T] or [N, T, 1] in [-1, 1]; T >= FRAME_LENGTH.
      sample_rate: Hz.
      batch: waveforms per TensorFlow call (bounds memory).
    Returns:
      float32 [N * frames, MEL_BANDS]: log(MEL_FLOOR + power) of MEL_BANDS mel bands from
      MEL_MIN_HZ to min(MAX_HZ, sample_rate / 2), frames as in log_spectrogram.
    """
    waves = np.asarray(waves, np.float32).reshape(len(waves), -1)
    weights = tf.signal.linear_to_mel_weight_matrix(
        MEL_BANDS, FRAME_LENGTH // 2 + 1, sample_rate, MEL_MIN_HZ, min(MAX_HZ, sample_rate / 2)
    )
    out = []
    for start in range(0, len(waves), batch):
        power = tf.abs(tf.signal.stft(waves[start : start + batch], FRAME_LENGTH, FRAME_STEP)) ** 2
        out.append(tf.math.log(MEL_FLOOR + tf.tensordot(power, weights, 1)).numpy())
    return (
        np.concatenate(out).reshape(-1, MEL_BANDS) if out else np.zeros((0, MEL_BANDS), np.float32)
    )


def flat(features: np.ndarray) -> np.ndarray:
    """[N, frames, bins] -> [N, frames * bins], for k-means (NDB) and nearest neighbours."""
    return np.asarray(features).reshape(len(features), -1)
