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


def _gfile(path: str, call):
    """call(tf.io.gfile) for a URL; a store that cannot be reached is a UserError."""
    import tensorflow as tf

    from wavegan_dist.errors import UserError, first_line

    try:
        return call(tf.io.gfile)
    except tf.errors.OpError as err:
        raise UserError(
            f"cannot read {path} ({first_line(err, 200)}); check the path, the "
            "network and the credentials"
        ) from err


def path_exists(path: str) -> bool:
    """True if `path` (local, or a tf.io.gfile URL) exists."""
    if _is_url(path):
        return _gfile(path, lambda gfile: gfile.exists(path))
    return os.path.exists(path)


def is_folder(path: str) -> bool:
    """True if `path` (local, or a tf.io.gfile URL) is a folder."""
    if _is_url(path):
        return _gfile(path, lambda gfile: gfile.isdir(path))
    return os.path.isdir(path)


def list_folder(path: str) -> list[str]:
    """Sorted names in the folder `path` (local, or a tf.io.gfile URL)."""
    if _is_url(path):
        return sorted(name.rstrip("/") for name in _gfile(path, lambda gfile: gfile.listdir(path)))
    return sorted(os.listdir(path))


def read_text(path: str) -> str:
    """The text of the file `path` (local, or a tf.io.gfile URL)."""
    if _is_url(path):

        def read(gfile):
            with gfile.GFile(path) as f:
                return f.read()

        return _gfile(path, read)
    with open(path, encoding="utf-8") as f:
        return f.read()
