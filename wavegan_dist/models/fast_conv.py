"""Strided 1-D convolutions written as stride-1 convolutions (polyphase form).

TensorFlow's CPU kernels run the forward pass of a strided 1-D convolution about
as fast as PyTorch, but its backward pass (input and kernel gradients) is much
slower; XLA on CPU is slower still. A stride-s convolution is mathematically a
stride-1 convolution over s "phases" of the signal folded into the channels
(space-to-depth), and a stride-s transposed convolution is a stride-1 convolution
with s * filters output channels unfolded into time (depth-to-space). Those
stride-1 convolutions, and their gradients of every order, are what the CPU
kernels do best.

The layers here subclass the Keras layers, so variables (names, shapes,
initialisers), bias, activation and config are Keras's own and checkpoints are
interchangeable with plain `keras.layers.Conv1D` / `Conv1DTranspose`; only the
convolution itself is computed differently. Cases outside the fast path
(channels_first, dilation, causal padding, output_padding, unknown length, and
for Conv1D stride 1) fall back to Keras's implementation.
"""

import keras
import tensorflow as tf


def same_padding_1d(length, kernel_size, stride):
    """TF/Keras "same" padding of a strided 1-D convolution.

    Args:
      length: int, input length L.
      kernel_size: int, K.
      stride: int, s.

    Returns:
      (left, right) ints: total max((ceil(L/s) - 1) * s + K - L, 0), left = total // 2
      (TF puts the odd sample on the right).
    """
    out_len = -(-length // stride)
    total = max((out_len - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


def _pad_or_crop_time(x, left, right):
    """Pads (positive) or crops (negative) axis 1 of [B, L, C] `x` on each side."""
    if left < 0 or right < 0:
        start, stop = max(-left, 0), x.shape[1] + min(right, 0)
        x = _time_slice(x, start, stop - start)
        left, right = max(left, 0), max(right, 0)
    if left or right:
        x = tf.pad(x, [[0, 0], [left, right], [0, 0]])
    return x


def _time_slice(x, start, size):
    """x[:, start:start + size] of a [B, L, C] tensor with static L.

    tf.slice, whose gradient is a Pad (about 3x faster on CPU than the StridedSliceGrad
    of Python slicing), but with that gradient spelled out: under XLA, TF's own
    gradient of tf.slice is XlaDynamicUpdateSlice, which has no gradient, and the
    WGAN-GP penalty needs one more.
    """
    length = x.shape[1]

    @tf.custom_gradient
    def time_slice(x):
        def grad(dy):
            return tf.pad(dy, [[0, 0], [start, length - start - size], [0, 0]])

        return tf.slice(x, [0, start, 0], [-1, size, -1]), grad

    return time_slice(x)


def _shifted_windows(x, taps, out_len, last_channels=None):
    """im2col: concatenates x[:, q:q + out_len] for q < taps along channels.

    Args:
      x: [B, >= out_len + taps - 1, C] with static C.
      taps: int >= 1.
      out_len: int.
      last_channels: keep only this many channels of the last window (None: all).

    Returns:
      [B, out_len, (taps - 1) * C + last_channels]; channel q * C + c is x[:, t + q, c].
    """
    length, channels = x.shape[1], x.shape[2]
    last = channels if last_channels is None else last_channels
    return _im2col(x, taps, out_len, length, channels, last)


def _im2col(x, taps, out_len, length, channels, last):
    """_shifted_windows of x [B, length, C]; its gradient is _col2im.

    The two are each other's adjoint, so each is the other's gradient to any order.
    Autodiff's own gradient of a concat of slices would do for the first order, but
    its gradient in turn (the penalty's double backward) is one zero-padded copy of
    the whole [B, out_len, taps * C] per window plus their sum.
    """

    @tf.custom_gradient
    def im2col(x):
        windows = [tf.slice(x, [0, q, 0], [-1, out_len, channels]) for q in range(taps - 1)]
        windows.append(tf.slice(x, [0, taps - 1, 0], [-1, out_len, last]))
        cols = windows[0] if taps == 1 else tf.concat(windows, axis=-1)
        return cols, lambda d: _col2im(d, taps, out_len, length, channels, last)

    return im2col(x)


def _col2im(d, taps, out_len, length, channels, last):
    """Adjoint of _im2col: [B, out_len, (taps - 1) * C + last] -> [B, length, C], the sum
    of each window's columns put back at its time offset; its gradient is _im2col."""

    @tf.custom_gradient
    def col2im(d):
        parts = []
        for q in range(taps):
            width = channels if q < taps - 1 else last
            part = d if taps == 1 else tf.slice(d, [0, 0, q * channels], [-1, -1, width])
            parts.append(tf.pad(part, [[0, 0], [q, length - out_len - q], [0, channels - width]]))
        x = parts[0] if taps == 1 else tf.add_n(parts)
        return x, lambda dx: _im2col(dx, taps, out_len, length, channels, last)

    return col2im(d)


# d @ w^T with at most (w's rows) / FEW_ROWS_RATIO rows runs faster as (w @ d^T)^T.
FEW_ROWS_RATIO = 16


def _transposed(x):
    """x [R, C] -> x^T [C, R] as a new tensor: a 3-D transpose, which grappler does not
    fold into the MatMul that reads it (a 2-D one it folds into transpose flags)."""
    rows, cols = x.shape
    return tf.reshape(tf.transpose(tf.reshape(x, [1, rows, cols]), [0, 2, 1]), [cols, rows])


def _matmul(a, w):
    """a [M, K] @ w [K, N] -> [M, N]; the gradient for `a` is _matmul_by_transpose."""

    @tf.custom_gradient
    def matmul(a, w):
        def grad(dy):
            return _matmul_by_transpose(dy, w), tf.matmul(a, dy, transpose_a=True)

        return tf.matmul(a, w), grad

    return matmul(a, w)


def _matmul_by_transpose(d, w):
    """d [M, N] @ w [K, N]^T -> [M, K]; the gradient for `d` is _matmul.

    oneDNN runs matmul(d, w, transpose_b=True) slowly when M is small against K: the
    length-16 critic layer's input gradient (M = 256 or 512 rows, K = 12800) at 250-320
    GFLOP/s, the generator's first layer on a 2-replica batch (M = 128, K = 2048) at about
    half its usual rate. (w @ d^T)^T, with d^T and the product transposed as copies, ran
    at 310-385 there. Both gradients are plain products in the layouts oneDNN runs well,
    so the penalty's double backward stays fast too.
    """

    @tf.custom_gradient
    def matmul_t(d, w):
        rows = d.shape[0]
        if rows is not None and rows * FEW_ROWS_RATIO <= w.shape[0]:
            out = _transposed(tf.matmul(w, _transposed(d)))
        else:
            out = tf.matmul(d, w, transpose_b=True)

        def grad(g):
            return _matmul(g, w), tf.matmul(g, d, transpose_a=True)

        return out, grad

    return matmul_t(d, w)


def _matmul_time(cols, weight, transpose_weight=False, bias=None):
    """[B, T, D] x [D, F] (+ bias [F]) -> [B, T, F] as one 2-D matmul (batch folded into
    rows); with transpose_weight, `weight` is given as [F, D]."""
    batch = tf.shape(cols)[0]
    a = tf.reshape(cols, [-1, cols.shape[-1]])
    out = _matmul_by_transpose(a, weight) if transpose_weight else _matmul(a, weight)
    if bias is not None:  # on the 2-D product, where the CPU kernels fuse it into the matmul
        out = tf.nn.bias_add(out, bias)
    filters = weight.shape[0] if transpose_weight else weight.shape[-1]
    return tf.reshape(out, [batch, cols.shape[1], filters])


def polyphase_conv1d(x, kernel, stride, padding="same", method="conv", bias=None):
    """Strided 1-D convolution (cross-correlation) computed at stride 1.

    Same mathematics as `tf.nn.conv1d(x, kernel, stride, padding.upper())`:
    y[b, o, f] = sum_{k, c} xpad[b, o * s + k, c] * kernel[k, c, f]. The padded input
    is reshaped to [B, L' / s, s * C] (phase r of block j is channel r * C + c), the
    kernel, zero-padded to ceil(K / s) * s taps, to [ceil(K / s), s * C, F], and one
    stride-1 VALID convolution gives the output.

    Args:
      x: float tensor [B, L, C] with static L and C.
      kernel: float tensor [K, C, F] (the Keras Conv1D kernel layout).
      stride: int s >= 1.
      padding: "same" (TF/Keras convention) or "valid".
      method: "conv" (one stride-1 conv) or "matmul" (im2col of the phases, then one
        matmul over exactly K * C inputs).
      bias: optional float tensor [F] added to the output.

    Returns:
      [B, ceil(L / s), F] for "same", [B, (L - K) // s + 1, F] for "valid".
    """
    length, channels = x.shape[1], x.shape[2]
    size = kernel.shape[0]
    if padding == "same":
        out_len = -(-length // stride)
        left, _ = same_padding_1d(length, size, stride)
    elif padding == "valid":
        out_len = (length - size) // stride + 1
        left = 0
    else:
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    if method == "conv":
        y = _block_same_conv(x, kernel, stride, left, out_len)
        if y is not None:
            return y if bias is None else tf.nn.bias_add(y, bias)
    taps = -(-size // stride)  # stride-1 taps over phase blocks
    # Exactly the blocks the output reads: out_len + taps - 1 of them. Samples past
    # "same"'s right pad only ever meet the kernel's zero padding, so pad/crop to fit.
    blocks = out_len + taps - 1
    x = _pad_or_crop_time(x, left, blocks * stride - length - left)
    x = tf.reshape(x, [-1, blocks, stride * channels])
    if method == "matmul":
        # The last tap block only holds K - (taps - 1) * s real taps: drop the rest
        # so the matmul is exactly K * C deep and the kernel needs no padding.
        last = (size - (taps - 1) * stride) * channels
        cols = _shifted_windows(x, taps, out_len, last)
        return _matmul_time(cols, tf.reshape(kernel, [size * channels, -1]), bias=bias)
    if method != "conv":
        raise ValueError(f"method must be 'conv' or 'matmul', got {method!r}")
    kernel = tf.pad(kernel, [[0, taps * stride - size], [0, 0], [0, 0]])
    kernel = tf.reshape(kernel, [taps, stride * channels, -1])
    y = tf.nn.conv1d(x, kernel, 1, "VALID")
    return y if bias is None else tf.nn.bias_add(y, bias)


def _block_same_conv(x, kernel, stride, left, out_len):
    """The "conv" method with no padded copy of the input, where the geometry allows.

    The input [B, L, C] with L a multiple of s is viewed as L / s blocks of s * C (a
    reshape, no copy); the left padding `left` is rounded up to whole blocks and the
    difference made up with zero taps at the front of the kernel (front + left =
    left_blocks * s). When the stride-1 "SAME" convolution over blocks pads exactly
    left_blocks on the left, it computes y[o] = sum_k' x[(o - left_blocks) * s + k']
    kernel'[k'], the same sum, with the CPU kernel's own zero padding (it holds for
    "same" WaveGAN layers: L = 4096, K = 25, s = 4 pads 10 samples = 3 blocks - 2 taps).

    Returns:
      [B, out_len, F], or None where the geometry does not fit (the caller pads).
    """
    length, channels = x.shape[1], x.shape[2]
    size = kernel.shape[0]
    if length % stride:
        return None
    left_blocks = -(-left // stride)
    front = left_blocks * stride - left
    taps = -(-(size + front) // stride)
    in_blocks = length // stride
    total = out_len + taps - 1 - in_blocks  # block padding the output needs
    if out_len != in_blocks or total < 0 or total // 2 != left_blocks:
        return None
    kernel = tf.pad(kernel, [[front, taps * stride - size - front], [0, 0], [0, 0]])
    kernel = tf.reshape(kernel, [taps, stride * channels, -1])
    return tf.nn.conv1d(tf.reshape(x, [-1, in_blocks, stride * channels]), kernel, 1, "SAME")


def _transpose_taps(size, stride):
    """Tap geometry of the "same" transposed convolution in polyphase form.

    Output sample t = m * s + r (phase r) is sum over q of in[m + q] * kernel[r + p - q * s]
    (p = left "same" padding of the matching forward conv); q runs over [q_lo, q_hi].

    Returns:
      (p, q_lo, q_hi) ints, q_lo <= 0 <= q_hi.
    """
    pad_left = max(size - stride, 0) // 2
    q_hi = -(-pad_left // stride)
    q_lo = -((size - 1 - pad_left) // stride)
    return pad_left, q_lo, q_hi


def polyphase_conv1d_transpose(x, kernel, stride, method="conv", bias=None):
    """ "same" transposed 1-D convolution (Keras Conv1DTranspose) computed at stride 1.

    Keras/TF define it as the adjoint (input gradient) of the "same" strided conv whose
    input has length L * s: out[t, f] = sum_{o, k: o * s + k - p = t} sum_c
    x[o, c] * kernel[k, f, c], with p = max(K - s, 0) // 2. For phase r of t = m * s + r
    that is a stride-1 correlation over x with taps kernel[r + p - q * s] (q in
    [q_lo, q_hi]), so one stride-1 conv with s * F output channels computes every phase
    and a reshape interleaves them into time.

    Args:
      x: float tensor [B, L, C] with static L and C.
      kernel: float tensor [K, F, C] (the Keras Conv1DTranspose kernel layout:
        taps, output channels, input channels).
      stride: int s >= 1.
      method: "conv" (one stride-1 conv) or "matmul" (im2col, then one matmul).
      bias: optional float tensor [F] added to the output.

    Returns:
      [B, L * s, F].
    """
    length = x.shape[1]
    size, filters, channels = kernel.shape
    pad_left, q_lo, q_hi = _transpose_taps(size, stride)
    taps = q_hi - q_lo + 1
    # Phase kernel W[j, c, r * F + f] = kernel[r + p - (q_hi - j) * s, f, c], zero where
    # the tap index falls outside [0, K). Row j covers kernel indices
    # (p - q_hi * s) + j * s + r for r < s: a contiguous run, so zero-pad the kernel to
    # start at p - q_hi * s and reshape; j runs with q decreasing, so in terms of the
    # input offset q the taps are reversed.
    start = pad_left - q_hi * stride  # <= 0
    w = tf.pad(kernel, [[-start, taps * stride + start - size], [0, 0], [0, 0]])
    w = tf.reshape(w, [taps, stride, filters, channels])
    w = tf.reverse(w, axis=[0])  # now row j is q = q_lo + j
    # in[m + q] for q in [q_lo, q_hi]: zeros outside [0, L).
    x = tf.pad(x, [[0, 0], [-q_lo, q_hi], [0, 0]])
    # Output channel r * F + f is phase r of filter f: the bias repeats per phase.
    phase_bias = None if bias is None else tf.tile(bias, [stride])
    if method == "matmul":
        # The matmul takes the kernel as [s * F, taps * C] (transpose_b): getting there
        # moves whole C-long rows, the kernel's contiguous axis, which costs a fraction
        # of a transpose that changes the innermost axis (the conv layout below).
        w = tf.transpose(tf.reshape(w, [taps, stride * filters, channels]), [1, 0, 2])
        y = _matmul_time(
            _shifted_windows(x, taps, length),
            tf.reshape(w, [stride * filters, taps * channels]),
            transpose_weight=True,
            bias=phase_bias,
        )
    elif method == "conv":
        w = tf.reshape(tf.transpose(w, [0, 3, 1, 2]), [taps, channels, stride * filters])
        y = tf.nn.conv1d(x, w, 1, "VALID")
        y = y if phase_bias is None else tf.nn.bias_add(y, phase_bias)
    else:
        raise ValueError(f"method must be 'conv' or 'matmul', got {method!r}")
    # [B, L, s * F] with channel r * F + f -> time m * s + r.
    return tf.reshape(y, [-1, length * stride, filters])


METHODS = ("auto", "conv", "matmul", "keras")


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _bias_of(layer):
    """The layer's bias variable, or None without one."""
    return layer.bias if layer.use_bias else None


class _PolyphaseMixin:
    """What both polyphase layers share: the `method` argument and the call path.

    A subclass sets `layer_kind` and defines `_fast_path_applies(shape)`, `_choose(shape)`
    and `_polyphase(inputs, method)` (the bias-added convolution).
    """

    def __init__(self, *args, method="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.method = _check_method(method)

    def _method_for(self, shape):
        if not (
            len(shape) == 3
            and shape[1] is not None
            and shape[2] is not None
            and self.dilation_rate[0] == 1
            and self.data_format == "channels_last"
            and self._fast_path_applies(shape)
        ):
            return "keras"
        return self._choose(shape) if self.method == "auto" else self.method

    def call(self, inputs):
        """Args: inputs [B, L, C]. Returns what the Keras layer returns."""
        # Keras 3's conv layers call ops.conv in call() itself, so the route is chosen here.
        method = self._method_for(inputs.shape)
        if method == "keras":
            return super().call(inputs)
        outputs = self._polyphase(inputs, method)
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        """Keras's config plus `method`."""
        return {**super().get_config(), "method": self.method}


class PolyphaseConv1D(_PolyphaseMixin, keras.layers.Conv1D):
    """keras.layers.Conv1D whose strided convolution runs as a stride-1 one.

    Same constructor, variables ("kernel" [K, C, F], "bias" [F]), initialisers and
    outputs as keras.layers.Conv1D, so weights and checkpoints are interchangeable;
    see `polyphase_conv1d` for the formulation. Extra argument:

    Args:
      method: "conv" or "matmul" (see `polyphase_conv1d`), "keras" (Keras's own op),
        or "auto" (the fastest measured on CPU for the input's shape, see
        `choose_conv1d_method`).

    Falls back to Keras's op for stride 1, "causal" padding, dilation, channels_first
    or an unknown length or channel count.
    """

    layer_kind = "Conv1D"  # what layer tables call it: the mathematics is Conv1D's

    def _fast_path_applies(self, shape):
        return self.strides[0] != 1 and self.padding in ("same", "valid")

    def _choose(self, shape):
        return choose_conv1d_method(
            shape[1], shape[2], self.filters, self.kernel_size[0], self.strides[0]
        )

    def _polyphase(self, inputs, method):
        return polyphase_conv1d(
            inputs, self.kernel, self.strides[0], self.padding, method, bias=_bias_of(self)
        )


class PolyphaseConv1DTranspose(_PolyphaseMixin, keras.layers.Conv1DTranspose):
    """keras.layers.Conv1DTranspose ("same") run as a stride-1 conv + depth-to-space.

    Same constructor, variables ("kernel" [K, F, C], "bias" [F]), initialisers and
    outputs as keras.layers.Conv1DTranspose, so weights and checkpoints are
    interchangeable; see `polyphase_conv1d_transpose`. Extra argument:

    Args:
      method: "conv" or "matmul" (see `polyphase_conv1d_transpose`), "keras" (Keras's
        own op), or "auto" (the fastest measured on CPU for the input's shape, see
        `choose_conv1d_transpose_method`).

    Falls back to Keras's op for "valid" padding, output_padding, dilation,
    channels_first or an unknown length or channel count.
    """

    layer_kind = "Conv1DTranspose"  # what layer tables call it

    def _fast_path_applies(self, shape):
        return self.padding == "same" and self.output_padding is None

    def _choose(self, shape):
        return choose_conv1d_transpose_method(
            shape[1], shape[2], self.filters, self.kernel_size[0], self.strides[0]
        )

    def _polyphase(self, inputs, method):
        return polyphase_conv1d_transpose(
            inputs, self.kernel, self.strides[0], method, bias=_bias_of(self)
        )


# Below this many output rows per example the stride-1 problem is too short for the
# CPU conv kernels (oneDNN) to run well, and im2col + one big matmul wins clearly.
MATMUL_MAX_ROWS = 64
# A transposed conv with this few output channels per phase block (s * F) is a thin
# conv that Keras's backprop-input kernel runs slowly; the stride-1 conv is faster.
THIN_OUTPUT_CHANNELS = 16


def choose_conv1d_method(length, channels, filters, kernel_size, stride):
    """The method PolyphaseConv1D(method="auto") uses, from CPU measurements.

    Measured on 2 CPU cores (AVX-512, TF 2.17 with oneDNN), batch 16, WaveGAN critic
    shapes (K = 25, s = 4), forward + backward and the WGAN-GP double backward: the
    stride-1 conv beat Keras on every layer with output length >= 256 (1.4-1.8x on the
    1-channel input layer, 1.03-1.15x on the others); at output length 64 and 16 the
    conv kernels are slow and im2col + matmul won (1.1-1.3x and 2.7-2.9x).

    Args:
      length: int, input length L.
      channels: int, input channels C.
      filters: int, output channels F.
      kernel_size: int, K.
      stride: int, s.

    Returns:
      "conv" or "matmul".
    """
    del channels, filters, kernel_size  # the measured rule only needed the length
    out_len = -(-length // stride)
    return "matmul" if out_len <= MATMUL_MAX_ROWS else "conv"


def choose_conv1d_transpose_method(length, channels, filters, kernel_size, stride):
    """The method PolyphaseConv1DTranspose(method="auto") uses, from CPU measurements.

    Measured as for `choose_conv1d_method` on the WaveGAN generator shapes: im2col +
    matmul won at input length 16 and 64 (1.6x and 1.1x), the stride-1 conv won on
    the 1-channel output layer (1.3x), and Keras's own op won on the layers between
    (the stride-1 conv was 0.75-0.95x there). Arguments as `choose_conv1d_method`.

    Returns:
      "matmul", "conv" or "keras".
    """
    del channels, kernel_size
    if length <= MATMUL_MAX_ROWS:
        return "matmul"
    if stride * filters <= THIN_OUTPUT_CHANNELS:
        return "conv"
    return "keras"
