"""Which slice lengths each network family can make: plain arithmetic, no TensorFlow, so
configurations and recorded runs can be checked before anything heavy is imported."""

from __future__ import annotations

import math

from wavegan_dist.errors import UserError

START_LEN = 16  # WaveGAN: both networks start (generator) or end (critic) at length 16
START_SIDE = 16  # seed2d: the smallest frame side


def layer_strides(slice_len):
    """Returns the per-layer strides for `slice_len`, e.g. 16384 -> [4, 4, 4, 4, 4].

    The list is ordered from the length-16 end for the generator and from the
    waveform end for the critic: a trailing 2 is the generator's last (output)
    layer and the critic's last conv layer.

    Args:
      slice_len: int, 16 * 4^k or 16 * 4^k * 2 with k >= 1.

    Returns:
      list of ints, [4] * k or [4] * k + [2].

    Raises:
      UserError: for any other slice_len.
    """
    strides = []
    n = slice_len if isinstance(slice_len, int) and not isinstance(slice_len, bool) else 0
    if n > 0 and n % START_LEN == 0:
        n //= START_LEN
        while n % 4 == 0:
            strides.append(4)
            n //= 4
        if n == 2:
            strides.append(2)
            n = 1
    if n != 1 or strides.count(4) < 1:
        raise UserError(
            f"--slice_len={slice_len} is not supported by WaveGAN: use 16 * 4^k or "
            "16 * 4^k * 2, e.g. 1024, 4096, 16384, 32768, 65536"
        )
    return strides


def frame_side(slice_len) -> int:
    """Returns the frame side for `slice_len` samples, e.g. 16384 -> 128.

    Raises:
      UserError unless slice_len = side^2 with side = 16 * 2^k, k >= 1
      (1024, 4096, 16384, 65536, ...).
    """
    ok = isinstance(slice_len, int) and not isinstance(slice_len, bool) and slice_len > 0
    side = math.isqrt(slice_len) if ok else 0
    stages = side // START_SIDE
    if not (
        ok
        and side * side == slice_len
        and side % START_SIDE == 0
        and stages >= 2
        and stages & (stages - 1) == 0
    ):
        raise UserError(
            f"--slice_len={slice_len} is not supported by seed2d: use a square "
            "frame (16 * 2^k)^2, e.g. 1024, 4096, 16384 (128 x 128), 65536"
        )
    return side
