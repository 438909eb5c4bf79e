"""Many clips' spectrograms tiled into one image, for a quick look at a batch."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from wavegan_dist.training.summaries import spectrogram_image

GAP = 2  # separator width in pixels
# Separators and unused cells are white; a spectrogram's silence is black, so an
# empty cell cannot be mistaken for a silent clip.
SEPARATOR = 255


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the near-square grid that holds n tiles, row by row."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def spectrogram_grid(waves, gap: int = GAP) -> np.ndarray:
    """Log-magnitude spectrograms of clips, tiled row by row into a near-square grid.

    All clips share one decibel scale (spectrogram_image normalises to the loudest
    bin of the batch), so a quiet clip looks quiet next to a loud one.

    Args:
      waves: float32 [n, T, 1] or [n, T] in [-1, 1], n >= 1.
      gap: separator width in pixels between tiles.
    Returns:
      uint8 [rows * H + (rows - 1) * gap, cols * W + (cols - 1) * gap, 1], with
      (rows, cols) = grid_shape(n) and each tile H = frequency bins (low at the
      bottom) by W = time frames.
    """
    waves = np.asarray(waves, np.float32)
    n = waves.shape[0]
    strip = spectrogram_image(waves)[0, :, :, 0].numpy()  # [bins, n * frames], clips side by side
    height, width = strip.shape[0], strip.shape[1] // n
    rows, cols = grid_shape(n)
    canvas = np.full((rows * height + (rows - 1) * gap, cols * width + (cols - 1) * gap, 1),
                     SEPARATOR, np.uint8)
    pixels = np.round(strip * 255.0).astype(np.uint8)
    for i in range(n):
        top, left = (i // cols) * (height + gap), (i % cols) * (width + gap)
        canvas[top:top + height, left:left + width, 0] = pixels[:, i * width:(i + 1) * width]
    return canvas


def write_png(path: str, image: np.ndarray) -> None:
    """Writes uint8 [H, W, 1 or 3] as a PNG file at `path` (local or tf.io.gfile URL)."""
    tf.io.write_file(path, tf.io.encode_png(tf.convert_to_tensor(image, tf.uint8)))
