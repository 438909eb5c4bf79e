"""A trained generator as a TF SavedModel that loads without wavegan_dist.

    loaded = tf.saved_model.load(path)
    audio = loaded.signatures["serving_default"](z=z)["audio"]          # unconditional
    audio = loaded.signatures["serving_default"](z=z, label=label)["audio"]  # conditional
    loaded.sample_rate.numpy(), loaded.slice_len.numpy(), loaded.latent_dim.numpy(),
    loaded.num_classes.numpy(), loaded.condition.numpy()  # b"none" | b"pitch" | ...

z is float32 [B, latent_dim] (training drew it uniform in [-1, 1)); label is int32 [B],
the stored metadata value itself (MIDI pitch 0-127 or instrument family 0-10); audio is
float32 [B, slice_len] at sample_rate Hz. `loaded.generate` is the same function.
"""

from __future__ import annotations

from wavegan_dist import inference
from wavegan_dist.errors import UserError


def check_export_dir(path: str) -> None:
    """Raises UserError unless `path` is missing or an empty folder (nothing is overwritten)."""
    if not path:
        raise UserError("--export needs a folder path")
    if not inference.path_exists(path):
        return
    if not inference.is_folder(path):
        raise UserError(f"--export={path} is a file; pass a new or empty folder")
    if inference.list_folder(path):
        raise UserError(
            f"--export={path} is not empty; pass a new or empty folder (an export "
            "never overwrites what is there)"
        )


def _metadata_variable(value, dtype, name):
    import tensorflow as tf

    # Variables, not constants: a SavedModel keeps a module's variables as attributes
    # of the loaded object, so the numbers travel with the model.
    return tf.Variable(value, dtype=dtype, trainable=False, name=name)


def make_export_module(generator, cfg, sample_rate: int):
    """Wraps a generator in a tf.Module with a serving function and metadata.

    Args:
      generator: the Keras generator (from inference.restore.load_generator).
      cfg: the run's Config (slice_len, latent_dim, condition).
      sample_rate: Hz.
    Returns:
      A tf.Module with `generate` (a tf.function: z float32 [None, latent_dim]
      (+ label int32 [None] if conditional) -> {"audio": float32 [None, slice_len]})
      and variables sample_rate, slice_len, latent_dim, num_classes (int32) and
      condition (string).
    """
    import tensorflow as tf

    from wavegan_dist.data.schema import LABEL_CLASSES

    num_classes = LABEL_CLASSES.get(cfg.condition, 0)
    module = tf.Module(name="wavegan_generator")
    # The module keeps the generator's variables, not the Keras model itself: saving
    # a Keras 3 model traces its default serving function, which calls it on z alone
    # and so fails for a conditional generator. Keras's own ExportArchive does the same.
    module.generator_variables = list(generator.variables)
    module.sample_rate = _metadata_variable(sample_rate, tf.int32, "sample_rate")
    module.slice_len = _metadata_variable(cfg.net.slice_len, tf.int32, "slice_len")
    module.latent_dim = _metadata_variable(cfg.net.latent_dim, tf.int32, "latent_dim")
    module.num_classes = _metadata_variable(num_classes, tf.int32, "num_classes")
    module.condition = _metadata_variable(cfg.condition, tf.string, "condition")
    z_spec = tf.TensorSpec([None, cfg.net.latent_dim], tf.float32, name="z")

    def audio(waves):
        return {"audio": waves[:, :, 0]}  # [B, slice_len, 1] -> [B, slice_len]

    if num_classes:

        def generate(z, label):
            # one_hot turns an out-of-range label into an all-zero vector, which
            # would make plausible-looking audio of no class; refuse it instead.
            checks = [
                tf.debugging.assert_equal(
                    tf.shape(label)[0],
                    tf.shape(z)[0],
                    message="label must have one entry per row of z",
                ),
                tf.debugging.assert_non_negative(label, message="label must be >= 0"),
                tf.debugging.assert_less(
                    label, num_classes, message=f"label must be < {num_classes}"
                ),
            ]
            with tf.control_dependencies(checks):
                return audio(generator(z, label, training=False))

        module.generate = tf.function(
            generate,
            input_signature=[z_spec, tf.TensorSpec([None], tf.int32, name="label")],
            autograph=False,
        )
    else:

        def generate(z):
            return audio(generator(z, None, training=False))

        module.generate = tf.function(generate, input_signature=[z_spec], autograph=False)
    return module


def export_generator(generator, cfg, sample_rate: int, path: str) -> str:
    """Writes the generator as a SavedModel with a `serving_default` signature.

    Args:
      generator: the Keras generator (from inference.restore.load_generator).
      cfg: the run's Config.
      sample_rate: Hz, recorded in the SavedModel.
      path: a new or empty folder (local or tf.io.gfile URL).
    Returns:
      path. Raises UserError if the folder is not new or empty. If saving fails,
      whatever it wrote is removed again.
    """
    import tensorflow as tf

    check_export_dir(path)
    existed = inference.path_exists(path)
    module = make_export_module(generator, cfg, sample_rate)
    try:
        tf.saved_model.save(module, path, signatures={"serving_default": module.generate})
    except BaseException:
        # The folder was new or empty, so everything in it now is a partial export.
        if inference.path_exists(path):
            tf.io.gfile.rmtree(path)
            if existed:
                tf.io.gfile.makedirs(path)
        raise
    return path
