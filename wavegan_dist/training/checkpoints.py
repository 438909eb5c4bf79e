"""Checkpoints of a run: save every N steps and at the end, resume from the latest.

A run's model folder also holds `config.json`, the configuration it was started
with; resuming with flags that change the networks' shapes is refused with a
clear error rather than failing deep inside a restore.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from wavegan_dist.errors import UserError

# Fields that change variable shapes or meaning: a checkpoint cannot be resumed across them.
MODEL_FIELDS = ("model", "slice_len", "dim", "kernel_len", "latent_dim")
CONFIG_FILE = "config.json"


class Checkpointer:
    """Saves and restores the trainer's state in `<model_dir>/checkpoints`.

    Args:
      model_dir: the run's folder.
      keep: how many checkpoints to keep.
      step: the int64 step variable (numbers the checkpoints).
      objects: trackables to save (models, optimizers, step).
    """

    def __init__(self, model_dir: str, keep: int, step: tf.Variable, **objects):
        self.directory = os.path.join(model_dir, "checkpoints")
        self.checkpoint = tf.train.Checkpoint(step=step, **objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=keep, step_counter=step)
        self.step = step

    def restore_latest(self) -> int | None:
        """Restores the newest checkpoint, if any; returns its step or None."""
        latest = self.manager.latest_checkpoint
        if not latest:
            return None
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise UserError(f"cannot restore checkpoint {latest}: {reason}; use a new "
                            "--model_dir or the flags the run was started with") from err
        return int(self.step.numpy())

    def save(self) -> str:
        """Writes a checkpoint numbered by the current step; returns its path."""
        return self.manager.save(checkpoint_number=int(self.step.numpy()))


def check_and_record_config(model_dir: str, config: dict, write: bool = True) -> None:
    """Refuses to reuse a model_dir whose recorded model shape differs, then records `config`.

    Args:
      model_dir: the run's folder (created if missing).
      config: the run's configuration as a dict.
      write: whether this process records it (only the chief should).
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError) as err:
            raise UserError(f"{path} is unreadable ({err}); move it away or use a new "
                            "--model_dir") from err
        changed = [f"--{k}={config[k]} (run has {old[k]})" for k in MODEL_FIELDS
                   if k in old and old[k] != config[k]]
        if changed:
            raise UserError(f"--model_dir={model_dir} holds a run with other model flags: "
                            f"{', '.join(changed)}; use a new --model_dir or the same flags")
    if write:
        os.makedirs(model_dir, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        os.replace(tmp, path)  # never leaves a half-written config
