"""The base of every generator and critic: a Keras model that knows its ModelSpec."""

from __future__ import annotations

import keras

from wavegan_dist.models import registry
from wavegan_dist.models.spec import ModelSpec


class SpecNetwork(keras.Model):
    """A keras.Model built from a ModelSpec, exposing the facts trainers and tools read.

    Attributes:
      spec: the ModelSpec.
      slice_len: waveform samples per example.
      latent_dim: length of z.
      num_classes: label classes (0 = unconditional).
    """

    def __init__(self, spec: ModelSpec, name: str):
        super().__init__(name=name)
        spec = registry.complete(spec)  # a spec made by hand may leave family defaults None
        self.spec = spec
        self.slice_len = spec.slice_len
        self.latent_dim = spec.latent_dim
        self.num_classes = spec.num_classes
