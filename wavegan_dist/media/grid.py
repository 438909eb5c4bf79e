"""Clips' spectrograms as one labelled PNG image, for a quick look at a batch.

Each clip gets a panel of fixed size (PANEL_W x PANEL_H pixels, whatever the clip
count and length) with a log-frequency axis labelled in Hz, a time axis labelled in
seconds, a title, and, for a pitched clip, a mark at the fundamental of its
requested MIDI pitch. Everything is drawn with numpy (a bitmap font of our own) and
encoded by TensorFlow, so no plotting library is needed.
"""

from __future__ import annotations

import math

import numpy as np

from wavegan_dist.media import font
from wavegan_dist.media.labels import midi_hz

PANEL_W, PANEL_H = 256, 200  # spectrogram pixels per clip
LEFT, RIGHT, TOP, BOTTOM = 32, 12, 12, 14  # margins of a panel: axis labels and title
GAP = 6  # blank pixels between cells
F_MIN = 30.0  # Hz at the bottom of the frequency axis (below MIDI 24, C1)
FLOOR_DB = -80.0  # black: this far or further below the loudest bin of the image
FREQ_TICKS = (50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000)
TIME_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
WHITE, INK = (255, 255, 255), (0, 0, 0)
MARK = (0, 200, 255)  # the requested pitch: cyan, absent from the colour map
# Colour map from silence to the loudest bin: black, violet, red, orange, pale yellow.
_ANCHORS = np.array(
    [[0, 0, 0], [70, 15, 110], [180, 50, 80], [245, 140, 30], [252, 250, 170]], np.float32
)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the near-square grid that holds n panels, row by row."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def cell_size() -> tuple[int, int]:
    """(height, width) in pixels of one panel with its margins."""
    return TOP + PANEL_H + BOTTOM, LEFT + PANEL_W + RIGHT


def _frame_length(samples: int) -> int:
    """STFT frame: 1024 samples (15.6 Hz bins at 16 kHz) for long clips, a quarter of
    a short clip (so it still has several frames), a power of two >= 16."""
    return 2 ** int(math.log2(max(16, min(1024, samples // 4))))


def log_spectrograms(waves, sample_rate: int) -> np.ndarray:
    """Log-magnitude spectrograms resampled to panels with a log-frequency axis.

    All clips share one decibel scale (normalised to the loudest bin of all of
    them), so a quiet clip looks quiet next to a loud one.

    Args:
      waves: float32 [n, T, 1] or [n, T] in [-1, 1].
      sample_rate: Hz.
    Returns:
      float32 [n, PANEL_H, PANEL_W] in [0, 1]: row 0 is the Nyquist frequency, the
      last row F_MIN, log-spaced; column x is time (x + 0.5) / PANEL_W of the clip.
    """
    waves = np.asarray(waves, np.float32).reshape(len(waves), -1)
    samples = waves.shape[1]
    frame = _frame_length(samples)
    hop = max(1, frame // 8)
    # Only whole frames inside the clip: zero padding past its ends would draw a fade
    # that is not in the sound. Columns near an end show the outermost whole frame.
    starts = np.arange(0, max(0, samples - frame) + 1, hop)
    taps = starts[:, None] + np.arange(frame)
    window = np.hanning(frame).astype(np.float32)
    # Each pixel row's frequency, as a fractional FFT bin, read by linear interpolation;
    # each pixel column takes the frame nearest its time.
    nyquist = sample_rate / 2.0
    heights = (PANEL_H - np.arange(PANEL_H) - 0.5) / PANEL_H
    bins = F_MIN * (nyquist / F_MIN) ** heights / (sample_rate / frame)
    low = np.minimum(np.floor(bins).astype(int), frame // 2 - 1)
    weight = (bins - low).astype(np.float32)
    times = (np.arange(PANEL_W) + 0.5) / PANEL_W * samples
    cols = np.clip(np.round((times - frame / 2) / hop).astype(int), 0, len(starts) - 1)
    panels = np.empty((len(waves), PANEL_H, PANEL_W), np.float32)
    loudest = -np.inf
    for i, wave in enumerate(waves):  # one clip at a time: memory stays flat for many clips
        padded = np.pad(wave, (0, max(0, frame - samples)))  # a clip shorter than a frame
        db = 20.0 * np.log10(np.abs(np.fft.rfft(padded[taps] * window, axis=-1)) + 1e-6)
        loudest = max(loudest, float(db.max()))
        picked = db[cols]  # [PANEL_W, bins]
        panels[i] = (picked[:, low] * (1.0 - weight) + picked[:, low + 1] * weight).T
    return np.clip((panels - loudest - FLOOR_DB) / -FLOOR_DB, 0.0, 1.0)


def _colour(values: np.ndarray) -> np.ndarray:
    """[...] in [0, 1] -> uint8 [..., 3] through the colour map."""
    pos = values * (len(_ANCHORS) - 1)
    low = np.minimum(pos.astype(int), len(_ANCHORS) - 2)
    weight = (pos - low)[..., None]
    return np.round(_ANCHORS[low] * (1 - weight) + _ANCHORS[low + 1] * weight).astype(np.uint8)


def freq_row(hz: float, sample_rate: int) -> int | None:
    """The panel row (0 = top) that shows `hz`, or None outside F_MIN..Nyquist."""
    nyquist = sample_rate / 2.0
    if not F_MIN <= hz <= nyquist:
        return None
    height = math.log(hz / F_MIN) / math.log(nyquist / F_MIN)
    return min(PANEL_H - 1, max(0, int(PANEL_H - height * PANEL_H)))


def _time_ticks(duration: float) -> list[float]:
    """Tick times in seconds: 0 and multiples of the smallest round step giving <= 5 ticks."""
    step = next((s for s in TIME_STEPS if duration / s <= 5), TIME_STEPS[-1])
    return [round(k * step, 6) for k in range(int(duration / step + 1e-9) + 1)]


def _draw_axes(cell: np.ndarray, sample_rate: int, duration: float) -> None:
    """Axis lines, ticks and their labels (Hz on the left, seconds below) of one cell."""
    right = LEFT + PANEL_W
    cell[TOP : TOP + PANEL_H + 1, LEFT - 1] = INK
    cell[TOP + PANEL_H, LEFT - 1 : right] = INK
    for hz in FREQ_TICKS:
        row = freq_row(hz, sample_rate)
        if row is None:
            continue
        y = TOP + row
        cell[y, LEFT - 4 : LEFT - 1] = INK
        label = f"{hz // 1000}k" if hz >= 1000 else str(hz)
        font.draw_text(cell, label, LEFT - 5 - font.text_width(label), y - font.GLYPH_H // 2, INK)
    # The units sit in the bottom corners, beside the last labels of their axes.
    label_top = TOP + PANEL_H + 5
    font.draw_text(cell, "Hz", LEFT - 7 - font.text_width("Hz"), label_top, INK)
    font.draw_text(cell, "s", right + 6, label_top, INK)
    for t in _time_ticks(duration):
        x = LEFT + min(PANEL_W - 1, int(round(t / duration * PANEL_W)))
        cell[TOP + PANEL_H + 1 : TOP + PANEL_H + 4, x] = INK
        label = f"{t:g}"
        start = x - font.text_width(label) // 2
        if start + font.text_width(label) <= right + 4:  # clear of the unit "s"
            font.draw_text(cell, label, max(0, start), label_top, INK)


def _mark_pitch(cell: np.ndarray, pitch: int, sample_rate: int) -> None:
    """Marks the fundamental of MIDI `pitch`: a dotted line across the panel and a
    triangle in the right margin pointing at it."""
    row = freq_row(midi_hz(pitch), sample_rate)
    if row is None:
        return
    y, right = TOP + row, LEFT + PANEL_W
    for x in range(LEFT, right, 8):
        cell[y, x : x + 3] = MARK
    for i in range(5):
        cell[max(TOP, y - i) : min(TOP + PANEL_H, y + i + 1), right + 1 + i] = MARK


def spectrogram_grid(
    waves, sample_rate: int, titles=None, pitches=None, cols: int | None = None
) -> np.ndarray:
    """Clips' spectrograms as labelled panels tiled row by row into one RGB image.

    Args:
      waves: float32 [n, T, 1] or [n, T] in [-1, 1], n >= 1.
      sample_rate: Hz.
      titles: n strings drawn above the panels (default "clip 1", "clip 2", ...).
      pitches: n MIDI pitches (int, or None for no mark) marked on the panels, or None.
      cols: panels per row (default: a near-square grid, grid_shape(n)).
    Returns:
      uint8 [rows * h + (rows - 1) * GAP, cols * w + (cols - 1) * GAP, 3] on a white
      background, (h, w) = cell_size(); each panel is PANEL_W x PANEL_H pixels.
    """
    waves = np.asarray(waves, np.float32)
    n = len(waves)
    rows, cols = grid_shape(n) if cols is None else (math.ceil(n / cols), cols)
    titles = titles if titles is not None else [f"clip {i + 1}" for i in range(n)]
    pixels = _colour(log_spectrograms(waves, sample_rate))
    duration = waves.shape[1] / sample_rate
    h, w = cell_size()
    canvas = np.full((rows * h + (rows - 1) * GAP, cols * w + (cols - 1) * GAP, 3), 255, np.uint8)
    for i in range(n):
        top, left = (i // cols) * (h + GAP), (i % cols) * (w + GAP)
        cell = canvas[top : top + h, left : left + w]
        cell[TOP : TOP + PANEL_H, LEFT : LEFT + PANEL_W] = pixels[i]
        _draw_axes(cell, sample_rate, duration)
        font.draw_text(cell, titles[i], LEFT, 2, INK)
        if pitches is not None and pitches[i] is not None:
            _mark_pitch(cell, int(pitches[i]), sample_rate)
    return canvas


def write_png(path: str, image: np.ndarray) -> None:
    """Writes uint8 [H, W, 1 or 3] as a PNG file at `path` (local or tf.io.gfile URL)."""
    import tensorflow as tf

    tf.io.write_file(path, tf.io.encode_png(tf.convert_to_tensor(image, tf.uint8)))
