"""Making the generator and critic a ModelSpec describes, with their variables."""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import tensorflow as tf

from wavegan_dist.kernels import local_device_type, resolve_kernels
from wavegan_dist.models import registry
from wavegan_dist.models.spec import ModelSpec


@contextlib.contextmanager
def _dtype_policy(precision: str):
    # Keras layers take the global policy when they are created; it is set only while
    # this spec's layers are made, so other models in the process are unaffected.
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def buildable(spec: ModelSpec) -> ModelSpec:
    """`spec` ready to build: family defaults filled, kernels "auto" resolved for this
    process's device; raises UserError for a slice_len the family cannot make."""
    spec = registry.complete(spec)
    registry.check_slice_len(spec)
    if spec.kernels == "auto":
        spec = dataclasses.replace(spec, kernels=resolve_kernels("auto", local_device_type()))
    return spec


def build_generator(spec: ModelSpec):
    """Creates only the generator `spec` describes, with its variables (for inference).

    Returns:
      generator(z [B, latent_dim], labels [B] int or None) -> float32 [B, slice_len, 1].
    """
    spec = buildable(spec)
    with _dtype_policy(spec.precision):
        generator = registry.network_classes(spec)[0](spec)
    generator(
        tf.zeros([1, spec.latent_dim], tf.float32),
        tf.zeros([1], tf.int32) if spec.num_classes else None,
    )
    return generator


def build_models(spec: ModelSpec):
    """Creates the generator and critic that `spec` describes, with their variables.

    Each network is called once on a batch of one zero input so that all variables
    exist before any tf.function trace (call this inside a strategy scope to get
    distributed variables).

    Returns:
      (generator, critic): generator(z [B, latent_dim], labels [B] int or None) ->
      float32 [B, slice_len, 1] in [-1, 1] (beyond it only with the post filter);
      critic(x [B, slice_len, 1], shifts [B, L] int or None, labels [B] or None) ->
      float32 [B] (and, with_logits=True and spec.aux_classifier, the auxiliary
      classifier's float32 [B, num_classes] logits). Raises UserError for a slice_len the model cannot make.
    """
    spec = buildable(spec)
    generator = build_generator(spec)
    with _dtype_policy(spec.precision):
        critic = registry.network_classes(spec)[1](spec)
    critic(
        tf.zeros([1, spec.slice_len, 1], tf.float32),
        None,
        tf.zeros([1], tf.int32) if spec.num_classes else None,
        with_logits=critic.classifier is not None,  # builds the auxiliary classifier too
    )
    return generator, critic
