"""Label conditioning shared by every model family.

The generator takes the label as a one-hot vector appended to z (as GANSynth does
with pitch). The critic uses a projection (Miyato & Koyama, 2018): its score gains
the dot product of a learned per-class embedding with the critic's last features.
A projection keeps the critic a single linear score, so the WGAN-GP loss and the
per-example gradient penalty stay exactly as in the unconditional model.

With --aux_classifier the critic also has a linear classifier on the same features
(the auxiliary classifier of Odena et al., 2017, as GANSynth's discriminator predicts
pitch): its logits feed only the auxiliary cross-entropy, never the score, so the
gradient penalty is unchanged.
"""

from __future__ import annotations

import keras


def with_label(z, labels, num_classes: int):
    """Appends the one-hot label to z.

    Args:
      z: float32 [B, latent_dim].
      labels: int [B] in [0, num_classes), or None.
      num_classes: 0 for an unconditional model (z is returned unchanged).
    Returns:
      float32 [B, latent_dim + num_classes] (or z itself).
    """
    if not num_classes:
        return z
    if labels is None:
        raise ValueError("this generator is conditional: pass labels")
    return keras.ops.concatenate(
        [z, keras.ops.one_hot(keras.ops.cast(labels, "int32"), num_classes, dtype=z.dtype)], axis=-1
    )


class Projection(keras.layers.Layer):
    """Class-projection term of a conditional critic: <embed(label), features>.

    Args:
      num_classes: number of label classes.
      seed: initializer seed.
    Call:
      features float32 [B, F], labels int [B] -> float32 [B].
    """

    def __init__(self, num_classes: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.seed = int(seed)

    def build(self, features_shape):
        # Small initial embeddings: at the start the critic behaves like the
        # unconditional one and the label term grows as it learns.
        self.embedding = self.add_weight(
            shape=(self.num_classes, int(features_shape[-1])),
            name="embedding",
            initializer=keras.initializers.RandomNormal(stddev=0.02, seed=self.seed),
        )

    def call(self, features, labels):
        rows = keras.ops.take(self.embedding, keras.ops.cast(labels, "int32"), axis=0)
        return keras.ops.sum(rows * features, axis=-1)

    def compute_output_shape(self, features_shape):
        return (features_shape[0],)


def critic_score(dense, projection, features, labels):
    """A critic's linear score of its flattened features, plus the class projection.

    Args:
      dense: the Dense(1) output layer.
      projection: a Projection layer, or None for an unconditional critic.
      features: float32 [B, F].
      labels: int [B] (required when projection is given), or None.
    Returns:
      float32 [B] (also under mixed precision: losses are taken in float32).
    """
    score = keras.ops.cast(keras.ops.squeeze(dense(features), axis=-1), "float32")
    if projection is None:
        return score
    if labels is None:
        raise ValueError("this critic is conditional: pass labels")
    return score + keras.ops.cast(projection(features, labels), "float32")


def class_head(spec, seed: int) -> keras.layers.Dense | None:
    """The auxiliary classifier a critic of `spec` (a ModelSpec) has: a Dense layer from
    its flattened features to spec.num_classes logits, named "classifier"; None unless
    the spec is conditional with aux_classifier."""
    if not (spec.num_classes and spec.aux_classifier):
        return None
    return keras.layers.Dense(
        spec.num_classes,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        bias_initializer="zeros",
        name="classifier",
    )


def class_logits(classifier, features):
    """The auxiliary classifier's logits of a critic's flattened features.

    Args:
      classifier: class_head's layer, or None for a critic without one (ValueError).
      features: float32 [B, F].
    Returns:
      float32 [B, num_classes].
    """
    if classifier is None:
        raise ValueError("this critic has no auxiliary classifier (build it with aux_classifier)")
    return keras.ops.cast(classifier(features), "float32")
