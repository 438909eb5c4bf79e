"""WaveGAN generator and critic (Donahue et al., ICLR 2019) as Keras 3 models.

Both networks start (generator) or end (critic) at length 16. For slice_len
16 * 4^k (* 2) there are n = k (+1) layers with strides [4] * k (+ [2]); channel
widths double from `dim` up to dim * 2^(n-1) towards the length-16 end. The paper's
16384 model is n = 5 (16 * 16d dense), 32768 and 65536 are n = 6 (16 * 32d).
"""

import keras

from wavegan_dist.models import activations, fast_conv
from wavegan_dist.models.batch_norm import GeneratorBatchNorm
from wavegan_dist.models.conditioning import (
    Projection,
    class_head,
    class_logits,
    critic_score,
    with_label,
)
from wavegan_dist.models.phase_shuffle import phase_shuffle as _phase_shuffle
from wavegan_dist.models.network import SpecNetwork
from wavegan_dist.models.shapes import START_LEN, layer_strides
from wavegan_dist.models.spec import ModelSpec

# Keeps generator and critic initializer seeds apart for the same user seed.
_GENERATOR_SEED_OFFSET = 0
_CRITIC_SEED_OFFSET = 500


def _init_seed(seed, offset, layer_index):
    # Keras seeds are 32-bit; keep them non-negative and in range for any user seed.
    return (seed * 1000 + offset + layer_index) % (2**31)


def _kernel_init(seed, offset, layer_index):
    return keras.initializers.GlorotUniform(seed=_init_seed(seed, offset, layer_index))


def _conv_layers(kernels):
    """(Conv1D class, Conv1DTranspose class) for ModelSpec.kernels.

    "fast": the polyphase layers of models/fast_conv.py (the same variables and
    mathematics as Keras's, computed as stride-1 convolutions or matmuls, which the
    CPU kernels run faster); "reference": Keras's own layers.
    """
    if kernels == "fast":
        return fast_conv.PolyphaseConv1D, fast_conv.PolyphaseConv1DTranspose
    if kernels == "reference":
        return keras.layers.Conv1D, keras.layers.Conv1DTranspose
    raise ValueError(f"kernels must be fast or reference, got {kernels!r}")


def shuffle_layer_count(spec: ModelSpec) -> int:
    """Critic layers followed by phase shuffle: the first spec.phase_shuffle_layers,
    never the last (its output goes to the dense layer); 0 without phase shuffle.

    With the default 4 this is the authors' code at 16384, 32768 and 65536 samples
    (after conv_0..conv_3), and 3 at slices with only 4 layers."""
    if not spec.phase_shuffle or spec.phase_shuffle <= 0:
        return 0
    return min(spec.phase_shuffle_layers, len(layer_strides(spec.slice_len)) - 1)


POST_FILTER_TAPS = 512  # the public code's post-processing filter length


class WaveGANGenerator(SpecNetwork):
    """WaveGAN generator: z [B, latent_dim] (+ label) -> waveform [B, slice_len, 1].

    Dense to [16, dim * 2^(n-1)], ReLU, then n upsampling 1-D convolutions ("same",
    with bias), ReLU between them and tanh at the end. Options (ModelSpec): "nn"
    upsampling (repeat each sample `stride` times, then a stride-1 convolution)
    instead of transposed convolutions; batch norm before each ReLU; a learned
    512-tap filter (no bias) after the tanh; a one-hot label appended to z.
    """

    def __init__(self, spec: ModelSpec, name="generator"):
        super().__init__(spec, name)
        spec = self.spec  # with the family defaults filled in
        self.strides = tuple(layer_strides(spec.slice_len))
        n = len(self.strides)
        self.start_width = spec.dim * 2 ** (n - 1)

        def init(i):
            return _kernel_init(spec.seed, _GENERATOR_SEED_OFFSET, i)

        conv_transpose_cls = _conv_layers(spec.kernels)[1]

        # A bias right before batch norm is cancelled by it (its gradient is pure
        # round-off, which Adam would blow up to full-size steps), so layers followed by
        # batch norm have none.
        self.dense = keras.layers.Dense(
            START_LEN * self.start_width,
            kernel_initializer=init(0),
            use_bias=not spec.gen_batchnorm,
            name="dense",
        )
        self.reshape = keras.layers.Reshape((START_LEN, self.start_width), name="reshape")
        # One attribute per layer, not a list: tf.train.Checkpoint does not see layers
        # inside Keras 3 tracked lists, so their weights would not be saved.
        if spec.gen_batchnorm:
            self.norm_dense = _batch_norm("norm_dense")
        width = self.start_width
        for i, stride in enumerate(self.strides):
            last = i == n - 1
            width = 1 if last else width // 2
            conv_args = dict(
                padding="same",
                use_bias=last or not spec.gen_batchnorm,
                kernel_initializer=init(i + 1),
                name=f"upconv_{i}",
            )
            if spec.upsample == "nn":
                setattr(
                    self, f"upsample_{i}", keras.layers.UpSampling1D(stride, name=f"upsample_{i}")
                )
                conv = keras.layers.Conv1D(width, spec.kernel_len, **conv_args)
            else:
                conv = conv_transpose_cls(width, spec.kernel_len, strides=stride, **conv_args)
            setattr(self, f"upconv_{i}", conv)
            if spec.gen_batchnorm and not last:
                setattr(self, f"norm_{i}", _batch_norm(f"norm_{i}"))
        if spec.post_filter:
            self.post_filter = keras.layers.Conv1D(
                1,
                POST_FILTER_TAPS,
                padding="same",
                use_bias=False,
                kernel_initializer=init(n + 1),
                name="post_filter",
            )

    @property
    def upconvs(self):
        """The (transposed) convolution of each upsampling stage, length-16 end first."""
        return [getattr(self, f"upconv_{i}") for i in range(len(self.strides))]

    def _stage(self, i):
        """Layers of upsampling stage i in call order, with what follows each."""
        last = i == len(self.strides) - 1
        layers = []
        if self.spec.upsample == "nn":
            layers.append((getattr(self, f"upsample_{i}"), ""))
        conv = getattr(self, f"upconv_{i}")
        if self.spec.gen_batchnorm and not last:
            layers += [(conv, ""), (getattr(self, f"norm_{i}"), "ReLU")]
        else:
            layers.append((conv, "tanh" if last else "ReLU"))
        return layers

    @property
    def summary_layers(self):
        """(layer, what follows it) in call order, for layer tables."""
        head = [(self.dense, ""), (self.reshape, "" if self.spec.gen_batchnorm else "ReLU")]
        if self.spec.gen_batchnorm:
            head.append((self.norm_dense, "ReLU"))
        stages = [pair for i in range(len(self.strides)) for pair in self._stage(i)]
        tail = [(self.post_filter, "")] if self.spec.post_filter else []
        return head + stages + tail

    def call(self, z, labels=None, training=False):
        """Args: z float [B, latent_dim]; labels int [B] (conditional models) or None.
        Returns float32 [B, slice_len, 1]."""
        x = with_label(keras.ops.cast(z, "float32"), labels, self.num_classes)
        x = self.reshape(self.dense(x))
        if self.spec.gen_batchnorm:
            x = self.norm_dense(x, training=training)
        x = keras.ops.relu(x)
        for i in range(len(self.strides)):
            last = i == len(self.strides) - 1
            if self.spec.upsample == "nn":
                x = getattr(self, f"upsample_{i}")(x)
            x = getattr(self, f"upconv_{i}")(x)
            if last:
                x = keras.ops.tanh(x)
            else:
                if self.spec.gen_batchnorm:
                    x = getattr(self, f"norm_{i}")(x, training=training)
                x = keras.ops.relu(x)
        if self.spec.post_filter:
            x = self.post_filter(x)
        return keras.ops.cast(x, "float32")  # float32 out under mixed precision too


class WaveGANCritic(SpecNetwork):
    """WaveGAN critic (WGAN-GP, no batch norm): waveform [B, slice_len, 1] -> score [B].

    n strided 1-D convolutions ("same", with bias), each followed by LeakyReLU(0.2);
    phase shuffle after the first `num_shuffle_layers` (4, as the authors' code, at the
    paper's lengths; see `shuffle_layer_count`); then flatten and a linear Dense to 1,
    plus a label projection of the flattened features in a conditional model.
    """

    def __init__(self, spec: ModelSpec, name="critic"):
        super().__init__(spec, name)
        spec = self.spec  # with the family defaults filled in
        self.phase_shuffle_radius = spec.phase_shuffle
        self.strides = tuple(layer_strides(spec.slice_len))
        n = len(self.strides)

        def init(i):
            return _kernel_init(spec.seed, _CRITIC_SEED_OFFSET, i)

        conv_cls = _conv_layers(spec.kernels)[0]
        self.leaky_relu = activations.critic_leaky_relu(spec.kernels)  # (x, negative_slope)
        for i, stride in enumerate(self.strides):
            # Attributes rather than a list so tf.train.Checkpoint tracks them (see generator).
            setattr(
                self,
                f"conv_{i}",
                conv_cls(
                    spec.dim * 2**i,
                    spec.kernel_len,
                    strides=stride,
                    padding="same",
                    use_bias=True,
                    kernel_initializer=init(i),
                    bias_initializer="zeros",
                    name=f"conv_{i}",
                ),
            )
        self.flatten = keras.layers.Flatten(name="flatten")
        self.dense = keras.layers.Dense(
            1, kernel_initializer=init(n), bias_initializer="zeros", name="dense"
        )
        if spec.num_classes:
            self.projection = Projection(
                spec.num_classes,
                _init_seed(spec.seed, _CRITIC_SEED_OFFSET, n + 1),
                name="projection",
            )
        self.classifier = class_head(spec, _init_seed(spec.seed, _CRITIC_SEED_OFFSET, n + 2))

    @property
    def convs(self):
        """The convolution layers, from the waveform end to the length-16 end."""
        return [getattr(self, f"conv_{i}") for i in range(len(self.strides))]

    @property
    def summary_layers(self):
        """(layer, what follows it) in call order, for layer tables."""
        shuffle = f", phase shuffle ±{self.phase_shuffle_radius}" if self.num_shuffle_layers else ""
        head = [
            (conv, "LeakyReLU 0.2" + (shuffle if i < self.num_shuffle_layers else ""))
            for i, conv in enumerate(self.convs)
        ]
        if not self.num_classes:
            return head + [(self.flatten, ""), (self.dense, "linear score")]
        tail = [(self.flatten, ""), (self.dense, "+ projection"), (self.projection, "linear score")]
        if self.classifier is not None:
            tail.append((self.classifier, "auxiliary class logits", "flatten"))
        return head + tail

    @property
    def num_shuffle_layers(self):
        """Number of layers that take a phase shift (`shuffle_layer_count`)."""
        return shuffle_layer_count(self.spec)

    def call(self, x, shifts=None, labels=None, training=False, with_logits=False):
        """Scores waveforms.

        Args:
          x: float [B, slice_len, 1].
          shifts: int32 [B, num_shuffle_layers] with values in
            [-phase_shuffle, phase_shuffle] (column i is used after conv layer i),
            or None for no phase shuffle (as at evaluation).
          labels: int [B] for a conditional critic, else None.
          training: unused; kept for the Keras call convention.
          with_logits: also return the auxiliary classifier's logits.

        Returns:
          float32 [B], one linear score per example; with_logits: (that, float32
          [B, num_classes]).
        """
        x = keras.ops.cast(x, "float32")
        for i, conv in enumerate(self.convs):
            x = self.leaky_relu(conv(x), negative_slope=0.2)
            if shifts is not None and i < self.num_shuffle_layers:
                x = _phase_shuffle(x, shifts[:, i], self.phase_shuffle_radius)
        features = self.flatten(x)
        score = critic_score(
            self.dense, self.projection if self.num_classes else None, features, labels
        )
        return (score, class_logits(self.classifier, features)) if with_logits else score


def _batch_norm(name):
    # Statistics over the global batch, so N replicas normalise exactly like one device.
    return GeneratorBatchNorm(synchronized=True, name=name)
