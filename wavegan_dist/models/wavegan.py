"""WaveGAN generator and critic (Donahue et al., ICLR 2019) as Keras 3 models.

Both networks start (generator) or end (critic) at length 16. For slice_len
16 * 4^k (* 2) there are n = k (+1) layers with strides [4] * k (+ [2]); channel
widths double from `dim` up to dim * 2^(n-1) towards the length-16 end. The paper's
16384 model is n = 5 (16 * 16d dense), 32768 and 65536 are n = 6 (16 * 32d).
"""

import keras
import tensorflow as tf

from wavegan_dist.errors import UserError
from wavegan_dist.models.phase_shuffle import phase_shuffle as _phase_shuffle

START_LEN = 16

# Keeps generator and critic initializer seeds apart for the same user seed.
_GENERATOR_SEED_OFFSET = 0
_CRITIC_SEED_OFFSET = 500


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


def _init_seed(seed, offset, layer_index):
    # Keras seeds are 32-bit; keep them non-negative and in range for any user seed.
    return (seed * 1000 + offset + layer_index) % (2**31)


def _kernel_init(seed, offset, layer_index):
    return keras.initializers.GlorotUniform(seed=_init_seed(seed, offset, layer_index))


class WaveGANGenerator(keras.Model):
    """WaveGAN generator: latent z [B, latent_dim] -> waveform [B, slice_len, 1] in [-1, 1].

    Dense to [16, dim * 2^(n-1)], ReLU, then n transposed 1-D convolutions
    ("same" padding, with bias), ReLU between them and tanh at the end.
    """

    def __init__(self, slice_len=16384, dim=64, kernel_len=25, latent_dim=100, seed=0,
                 name="generator"):
        super().__init__(name=name)
        self.slice_len = int(slice_len)
        self.dim = int(dim)
        self.kernel_len = int(kernel_len)
        self.latent_dim = int(latent_dim)
        self.seed = int(seed)
        self.strides = tuple(layer_strides(self.slice_len))
        n = len(self.strides)
        self.start_width = self.dim * 2 ** (n - 1)

        def init(i):
            return _kernel_init(self.seed, _GENERATOR_SEED_OFFSET, i)

        self.dense = keras.layers.Dense(
            START_LEN * self.start_width, kernel_initializer=init(0),
            bias_initializer="zeros", name="dense")
        self.reshape = keras.layers.Reshape((START_LEN, self.start_width), name="reshape")
        width = self.start_width
        for i, stride in enumerate(self.strides):
            last = i == n - 1
            width = 1 if last else width // 2
            # One attribute per layer, not a list: tf.train.Checkpoint does not see
            # layers inside Keras 3 tracked lists, so their weights would not be saved.
            setattr(self, f"upconv_{i}", keras.layers.Conv1DTranspose(
                width, self.kernel_len, strides=stride, padding="same", use_bias=True,
                activation="tanh" if last else "relu",
                kernel_initializer=init(i + 1), bias_initializer="zeros",
                name=f"upconv_{i}"))

    @property
    def upconvs(self):
        """The transposed convolution layers, from the length-16 end to the waveform."""
        return [getattr(self, f"upconv_{i}") for i in range(len(self.strides))]

    @property
    def summary_layers(self):
        """(layer, what follows it) in call order, for layer tables."""
        n = len(self.strides)
        return ([(self.dense, ""), (self.reshape, "ReLU")]
                + [(layer, "tanh" if i == n - 1 else "ReLU") for i, layer in enumerate(self.upconvs)])

    def call(self, z, training=False):
        """Args: z float [B, latent_dim]. Returns float32 [B, slice_len, 1] in [-1, 1]."""
        x = self.dense(keras.ops.cast(z, "float32"))
        x = keras.ops.relu(self.reshape(x))
        for layer in self.upconvs:
            x = layer(x)
        return x


class WaveGANCritic(keras.Model):
    """WaveGAN critic (WGAN-GP, no batch norm): waveform [B, slice_len, 1] -> score [B].

    n strided 1-D convolutions ("same", with bias), each followed by LeakyReLU(0.2);
    phase shuffle after every one but the last; then flatten and a linear Dense to 1.
    """

    def __init__(self, slice_len=16384, dim=64, kernel_len=25, phase_shuffle=2, seed=0,
                 name="critic"):
        super().__init__(name=name)
        self.slice_len = int(slice_len)
        self.dim = int(dim)
        self.kernel_len = int(kernel_len)
        self.phase_shuffle_radius = int(phase_shuffle)
        self.seed = int(seed)
        self.strides = tuple(layer_strides(self.slice_len))
        n = len(self.strides)

        def init(i):
            return _kernel_init(self.seed, _CRITIC_SEED_OFFSET, i)

        for i, stride in enumerate(self.strides):
            # Attributes rather than a list so tf.train.Checkpoint tracks them (see generator).
            setattr(self, f"conv_{i}", keras.layers.Conv1D(
                self.dim * 2**i, self.kernel_len, strides=stride, padding="same",
                use_bias=True, kernel_initializer=init(i), bias_initializer="zeros",
                name=f"conv_{i}"))
        self.flatten = keras.layers.Flatten(name="flatten")
        self.dense = keras.layers.Dense(
            1, kernel_initializer=init(n), bias_initializer="zeros", name="dense")

    @property
    def convs(self):
        """The convolution layers, from the waveform end to the length-16 end."""
        return [getattr(self, f"conv_{i}") for i in range(len(self.strides))]

    @property
    def summary_layers(self):
        """(layer, what follows it) in call order, for layer tables."""
        shuffle = f", phase shuffle ±{self.phase_shuffle_radius}" if self.num_shuffle_layers else ""
        return ([(conv, "LeakyReLU 0.2" + (shuffle if i < self.num_shuffle_layers else ""))
                 for i, conv in enumerate(self.convs)]
                + [(self.flatten, ""), (self.dense, "linear score")])

    @property
    def num_shuffle_layers(self):
        """Number of layers that take a phase shift: n - 1, or 0 without phase shuffle."""
        return len(self.strides) - 1 if self.phase_shuffle_radius > 0 else 0

    def call(self, x, shifts=None, training=False):
        """Scores waveforms.

        Args:
          x: float [B, slice_len, 1].
          shifts: int32 [B, num_shuffle_layers] with values in
            [-phase_shuffle, phase_shuffle] (column i is used after conv layer i),
            or None for no phase shuffle (as at evaluation).
          training: unused; kept for the Keras call convention.

        Returns:
          float32 [B], one linear score per example.
        """
        x = keras.ops.cast(x, "float32")
        for i, conv in enumerate(self.convs):
            x = keras.ops.leaky_relu(conv(x), negative_slope=0.2)
            if shifts is not None and i < self.num_shuffle_layers:
                x = _phase_shuffle(x, shifts[:, i], self.phase_shuffle_radius)
        x = self.dense(self.flatten(x))
        return keras.ops.squeeze(x, axis=-1)


def build_models(slice_len, dim, kernel_len, latent_dim, phase_shuffle, seed):
    """Creates the generator and critic and their variables.

    Each network is called once on a batch of one zero input so that all variables
    exist before any tf.function trace (call this inside a strategy scope to get
    distributed variables).

    Args:
      slice_len: waveform length, 16 * 4^k or 16 * 4^k * 2 (else UserError).
      dim: model width d; channel widths run from d to d * 2^(n-1).
      kernel_len: convolution kernel length (25 in the paper).
      latent_dim: length of the generator's input z.
      phase_shuffle: critic phase shuffle radius; 0 disables it.
      seed: int; the same seed always gives the same initial weights.

    Returns:
      (WaveGANGenerator, WaveGANCritic).
    """
    generator = WaveGANGenerator(slice_len=slice_len, dim=dim, kernel_len=kernel_len,
                                 latent_dim=latent_dim, seed=seed)
    critic = WaveGANCritic(slice_len=slice_len, dim=dim, kernel_len=kernel_len,
                           phase_shuffle=phase_shuffle, seed=seed)
    generator(tf.zeros([1, generator.latent_dim], tf.float32))
    critic(tf.zeros([1, critic.slice_len, 1], tf.float32))
    return generator, critic
