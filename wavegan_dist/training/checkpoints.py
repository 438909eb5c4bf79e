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

    Variables are keyed `models/generator/...`, `models/critic/...`,
    `optimizers/generator/...`, `optimizers/critic/...` and `step`. (A checkpoint
    names each variable by the first path it finds, breadth first with children in
    name order, so the models sit in their own node ahead of the optimizers that
    also reference their weights.)

    Args:
      model_dir: the run's folder.
      keep: how many checkpoints to keep.
      step: the int64 step variable (numbers the checkpoints).
      models: {name: keras.Model}.
      optimizers: {name: optimizer}, named after the model each one trains.
    """

    def __init__(self, model_dir: str, keep: int, step: tf.Variable, models: dict,
                 optimizers: dict):
        self.directory = os.path.join(model_dir, "checkpoints")
        self.checkpoint = tf.train.Checkpoint(step=step, models=tf.train.Checkpoint(**models),
                                              optimizers=tf.train.Checkpoint(**optimizers))
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


def check_config(model_dir: str, config: dict) -> None:
    """Raises UserError if `model_dir` holds a run whose model flags differ from `config`'s.

    Args:
      model_dir: the run's folder (may not exist yet).
      config: the new run's configuration as a dict.
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


def record_config(model_dir: str, config: dict) -> None:
    """Writes `config` to <model_dir>/config.json atomically (creating the folder)."""
    path = os.path.join(model_dir, CONFIG_FILE)
    os.makedirs(model_dir, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    os.replace(tmp, path)  # never leaves a half-written config
