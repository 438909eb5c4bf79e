"""Real and generated notes side by side, one pair of spectrograms per label."""

from __future__ import annotations

import math

import numpy as np

from wavegan_dist.media import grid
from wavegan_dist.media.labels import describe


def pairs_per_row(pairs: int) -> int:
    """Pairs of panels per row that make the image of `pairs` pairs about square."""
    height, width = grid.cell_size()
    return max(1, round(math.sqrt(pairs * height / (2 * width))))


def compare_image(
    real: np.ndarray,
    real_labels: np.ndarray,
    generate,
    latent_dim: int,
    condition: str,
    sample_rate: int,
    seed: int = 0,
) -> tuple[np.ndarray, list[int]]:
    """For each label of the real notes, its first real note beside a generated one.

    Args:
      real: float32 [M, T] real notes; real_labels: int [M] their labels of `condition`.
      generate: (z float32 [B, latent_dim], labels int32 [B]) -> float32 [B, T(, 1)].
      latent_dim: length of z; seed: seed of the latent vectors (one per label).
      condition: "pitch" (panels marked at the pitch) or "instrument_family".
      sample_rate: Hz.
    Returns:
      (image uint8 [H, W, 3] from grid.spectrogram_grid, the labels in ascending
      order): real and generated panels alternate, pairs fill rows left to right,
      and all panels share one decibel scale.
    """
    from wavegan_dist.inference.restore import latent_vectors

    real_labels = np.asarray(real_labels)
    labels = sorted(int(v) for v in np.unique(real_labels))
    first = [int(np.flatnonzero(real_labels == label)[0]) for label in labels]
    z = latent_vectors(len(labels), latent_dim, seed)
    generated = np.asarray(generate(z, np.array(labels, np.int32)), np.float32)
    waves, titles = [], []
    for label, row, fake in zip(labels, first, generated.reshape(len(labels), -1)):
        waves += [np.asarray(real[row], np.float32).reshape(-1), fake]
        titles += [
            f"real: {describe(condition, label)}",
            f"generated: {describe(condition, label)}",
        ]
    pitches = [label for label in labels for _ in range(2)] if condition == "pitch" else None
    image = grid.spectrogram_grid(
        np.stack(waves), sample_rate, titles, pitches, cols=2 * pairs_per_row(len(labels))
    )
    return image, labels
