"""Spectral features of audio slices, shared by the pitch classifier and the set metrics."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

FRAME_LENGTH = 1024  # 64 ms at 16 kHz: harmonics of most NSynth pitches are resolved
FRAME_STEP = 256
MAX_HZ = 8000.0  # NSynth's Nyquist at 16 kHz


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
        stft = tf.signal.stft(waves[start:start + batch], FRAME_LENGTH, FRAME_STEP)
        out.append(tf.math.log1p(tf.abs(stft[..., :bins])).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, bins), np.float32)


def flat(features: np.ndarray) -> np.ndarray:
    """[N, frames, bins] -> [N, frames * bins], for k-means (NDB) and nearest neighbours."""
    return np.asarray(features).reshape(len(features), -1)
