"""Checkpoints of a run: save every N steps and at the end, resume from the latest.

A run's model folder also holds `config.json`, the configuration it was started
with; resuming with flags that change the networks' shapes is refused with a
clear error rather than failing deep inside a restore.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from wavegan_dist.errors import UserError, first_line

# Fields that change variable shapes or meaning: a checkpoint cannot be resumed across them.
MODEL_FIELDS = ("model", "slice_len", "dim", "kernel_len", "latent_dim", "upsample",
                "post_filter", "gen_batchnorm", "condition")
CONFIG_FILE = "config.json"
# Checkpoint node of the generator's moving-average copy (optional: runs with
# --generator_ema=0, and older ones, have none); inference/restore.py reads it too.
GENERATOR_EMA = "generator_ema"


class Checkpointer:
    """Saves and restores the trainer's state in `<model_dir>/checkpoints`.

    Variables are keyed `models/generator/...`, `models/critic/...`,
    `optimizers/generator/...`, `optimizers/critic/...` and `step`, and optional
    state by its name (`noise_seed`, `generator_ema/...`). (A checkpoint
    names each variable by the first path it finds, breadth first with children in
    name order, so the models sit in their own node ahead of the optimizers that
    also reference their weights.)

    Args:
      model_dir: the run's folder; checkpoints are restored from <model_dir>/checkpoints.
      keep: how many checkpoints to keep.
      step: the int64 step variable (numbers the checkpoints).
      models: {name: keras.Model}.
      optimizers: {name: optimizer}, named after the model each one trains.
      save_dir: where this process saves, if not the run's own folder (non-chief
        multi-worker processes must take part in saving but write somewhere
        throwaway; they still restore from the run's folder).
      optional: {name: variable or model} saved with the rest but restored only if the
        checkpoint has it (state added after checkpoints of older versions exist,
        such as the noise seed and the generator EMA).
    """

    def __init__(self, model_dir: str, keep: int, step: tf.Variable, models: dict,
                 optimizers: dict, save_dir: str | None = None, optional: dict | None = None):
        self.directory = os.path.join(model_dir, "checkpoints")
        parts = dict(step=step, models=tf.train.Checkpoint(**models),
                     optimizers=tf.train.Checkpoint(**optimizers))
        self.checkpoint = tf.train.Checkpoint(**parts, **(optional or {}))
        # What every checkpoint must hold; restored and checked on its own.
        self._required = tf.train.Checkpoint(**parts)
        self._optional = tf.train.Checkpoint(**(optional or {}))
        self._optional_names = tuple(optional or ())
        self.missing: tuple[str, ...] = ()  # optional names the last restore did not find
        target = os.path.join(save_dir, "checkpoints") if save_dir else self.directory
        try:
            self.manager = tf.train.CheckpointManager(self.checkpoint, target,
                                                      max_to_keep=keep, step_counter=step)
        except ValueError as err:  # a state file that parses but names nothing (empty)
            latest_in(target)  # checkpoints beside it: that message, with the way out
            raise UserError(f"{os.path.join(target, 'checkpoint')} is unreadable and no "
                            "checkpoint is next to it; delete it to start the run") from err
        self.step = step

    @property
    def latest(self) -> str | None:
        """Path prefix of the run's newest checkpoint, or None (see `latest_in`)."""
        return latest_in(self.directory)

    def restore_latest(self) -> int | None:
        """Restores the run's newest checkpoint, if any; returns its step or None.

        Optional state the checkpoint lacks keeps its current value and is listed in
        `self.missing`, for the caller to initialise.
        """
        latest = self.latest
        if not latest:
            return None
        try:
            # expect_partial: the file also holds the optional values, restored next.
            self._required.restore(latest).assert_existing_objects_matched().expect_partial()
            self._optional.restore(latest).expect_partial()
            self.missing = tuple(name for name in self._optional_names
                                 if not has_node(latest, name))
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as err:
            # IndexError: what restoring from a truncated .data file raises.
            reason = first_line(err, 200)
            raise UserError(f"cannot restore checkpoint {latest}: {reason}; use a new "
                            "--model_dir or the flags the run was started with") from err
        return int(self.step.numpy())

    def save(self) -> str:
        """Writes a checkpoint numbered by the current step; returns its path."""
        return self.manager.save(checkpoint_number=int(self.step.numpy()))


def latest_in(directory: str, hint: str = "") -> str | None:
    """The newest checkpoint in `directory` by its `checkpoint` state file, or None if
    the folder has no checkpoint.

    Raises UserError when ckpt-N files are there but the state file is missing or
    unreadable: a run would otherwise start again from step 0 next to them.
    `hint` ends the message (e.g. how to name a checkpoint explicitly).
    """
    try:
        found = tf.train.latest_checkpoint(directory)
    except ValueError:  # an empty state file: "Invalid checkpoint state loaded from ..."
        found = None
    if found:
        return found
    numbers = []
    for index in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index")):
        number = os.path.basename(index)[len("ckpt-"):-len(".index")]
        if number.isdigit():
            numbers.append(int(number))
    if not numbers:
        return None
    newest = f"ckpt-{max(numbers)}"
    raise UserError(f"{os.path.join(directory, 'checkpoint')} is missing or unreadable, but "
                    f"{len(numbers)} checkpoint(s) are there (newest {newest}); write it back "
                    f"as the line model_checkpoint_path: \"{newest}\"{hint}")


def has_node(path: str, name: str) -> bool:
    """True if the checkpoint at `path` holds a value under the top-level node `name`
    (a variable `name` or the variables of an object `name/...`)."""
    return any(key.split("/", 1)[0] == name for key, _ in tf.train.list_variables(path))


# Fields that change the data order or the random draws: a resume may change them,
# but then it no longer continues exactly, so the user is told.
ORDER_FIELDS = ("data", "split", "num_samples", "subset", "instrument_source",
                "instrument_family", "pitch_min", "pitch_max", "velocity", "batch_size",
                "n_critic", "seed", "shuffle", "shuffle_window", "slice_offset", "normalize",
                "phase_shuffle", "precision")


# Fields that change how training goes on but not the data order: a resume may change
# them, and each gets a note saying what happens from the resumed step on.
TRAINING_FIELDS = {
    "learning_rate": "both optimizers use the new learning rate from the resumed step on "
                     "(Adam's moment estimates are kept)",
    "beta1": "Adam's first-moment decay takes the new value from the resumed step on "
             "(the moment estimates are kept)",
    "beta2": "Adam's second-moment decay takes the new value from the resumed step on "
             "(the moment estimates are kept)",
    "gp_weight": "the critic's gradient penalty uses the new weight from the resumed step on",
    "generator_ema": "the generator's moving average goes on from its saved weights with the "
                     "new decay (0 stops keeping it: samples and later checkpoints then use "
                     "the generator's own weights)",
    "jit_compile": "the step is compiled the other way from now on; results differ in "
                   "rounding only",
    "conv_impl": "the convolutions are computed the other way from now on; results differ "
                 "in rounding only",
}


def _json_equal(a, b) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def check_config(model_dir: str, config: dict) -> list[str]:
    """Compares `config` with the run recorded in `model_dir`, if any.

    Args:
      model_dir: the run's folder (may not exist yet; local or a tf.io.gfile URL).
      config: the new run's configuration as a dict.
    Returns:
      One-line notes on flags of ORDER_FIELDS and TRAINING_FIELDS that changed, each
      saying what that means (empty for a new run).
      Raises UserError if a model-shape flag changed.
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    try:
        if not tf.io.gfile.exists(path):
            return []
    except tf.errors.OpError as err:
        # e.g. a gs:// model_dir without network or credentials
        reason = first_line(err, 200)
        raise UserError(f"--model_dir={model_dir} cannot be read ({reason}); check the path, "
                        "the network and the credentials") from err
    try:
        with tf.io.gfile.GFile(path) as f:
            old = json.load(f)
    except (tf.errors.OpError, ValueError) as err:
        raise UserError(f"{path} is unreadable ({err}); move it away or use a new "
                        "--model_dir") from err
    changed = [f"--{k}={config[k]} (run has {old[k]})" for k in MODEL_FIELDS
               if k in old and old[k] != config[k]]
    if changed:
        raise UserError(f"--model_dir={model_dir} holds a run with other model flags: "
                        f"{', '.join(changed)}; use a new --model_dir or the same flags")
    changed = [k for k in (*ORDER_FIELDS, *TRAINING_FIELDS)
               if k in old and not _json_equal(old[k], config[k])]
    return [f"--{k} changed from {old[k]} to {config[k]} since the run started; " + (
        TRAINING_FIELDS[k] if k in TRAINING_FIELDS else "training continues with the new "
        "value, so it no longer repeats an uninterrupted run exactly") for k in changed]


def record_config(model_dir: str, config: dict) -> None:
    """Writes `config` to <model_dir>/config.json (local or remote), replacing it whole."""
    path = os.path.join(model_dir, CONFIG_FILE)
    tf.io.gfile.makedirs(model_dir)
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    tf.io.gfile.rename(tmp, path, overwrite=True)  # never leaves a half-written config
