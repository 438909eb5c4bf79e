"""Using a trained run's generator: restore it, draw audio, export it as a SavedModel.

Modules:
  restore: read a run's config, restore its generator from a checkpoint, run it.
  export: write the generator as a TF SavedModel that loads without wavegan_dist.
  grid: tile clips' spectrograms into one PNG image.

The helpers below look at local paths with `os` and only at URLs (gs://, ...) with
tf.io.gfile: a command line can then refuse bad input before it spends seconds
importing TensorFlow.
"""

from __future__ import annotations

import os


def _is_url(path: str) -> bool:
    return "://" in path


def path_exists(path: str) -> bool:
    """True if `path` (local, or a tf.io.gfile URL) exists."""
    if _is_url(path):
        import tensorflow as tf
        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def is_folder(path: str) -> bool:
    """True if `path` (local, or a tf.io.gfile URL) is a folder."""
    if _is_url(path):
        import tensorflow as tf
        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def list_folder(path: str) -> list[str]:
    """Sorted names in the folder `path` (local, or a tf.io.gfile URL)."""
    if _is_url(path):
        import tensorflow as tf
        return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))
    return sorted(os.listdir(path))


def read_text(path: str) -> str:
    """The text of the file `path` (local, or a tf.io.gfile URL)."""
    if _is_url(path):
        import tensorflow as tf
        with tf.io.gfile.GFile(path) as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()
