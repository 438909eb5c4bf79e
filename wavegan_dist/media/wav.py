"""Writing generated audio as WAV files (training's snapshots and `generate`)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def write_wavs(
    folder: str, waves: np.ndarray, sample_rate: int, prefix: str = "generated"
) -> list[str]:
    """Writes 16-bit PCM WAV files, one per example.

    Args:
      folder: created if missing.
      waves: float32 [K, T, 1] in [-1, 1].
    Returns:
      The paths written.
    """
    tf.io.gfile.makedirs(folder)  # model_dir may be gs:// or another tf.io.gfile URL
    paths = []
    digits = max(2, len(str(len(waves) - 1)))  # names sort in order for any count
    for i, wave in enumerate(waves):
        path = os.path.join(folder, f"{prefix}_{i:0{digits}d}.wav")
        data = tf.audio.encode_wav(tf.clip_by_value(wave, -1.0, 1.0), sample_rate)
        tf.io.write_file(path, data)
        paths.append(path)
    return paths
