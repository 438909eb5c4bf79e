"""Checkpoints of a run: save every N steps and at the end, resume from the latest.

A run's model folder also holds `config.json`, the configuration it was started
with; resuming with flags that change the networks' shapes is refused with a
clear error rather than failing deep inside a restore.
"""

from __future__ import annotations

import json
import os
import re
import time

import tensorflow as tf

from wavegan_dist.config import Config, recorded_defaults
from wavegan_dist.errors import UserError, first_line
from wavegan_dist.options import ORDER, REFUSE, fields_on_resume, resume_notes
from wavegan_dist.paths import check_output_folder
from wavegan_dist.run_folder import CHECKPOINT_FOLDER, CONFIG_FILE
from wavegan_dist.run_folder.checkpoint_files import (
    checkpoint_numbers,
    damage_of,
    damaged_advice,
    has_node,
    latest_in,
    os_reason,
    recorded_config,
    silence_partial_restore_warnings,
)


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

    def __init__(
        self,
        model_dir: str,
        keep: int,
        step: tf.Variable,
        models: dict,
        optimizers: dict,
        save_dir: str | None = None,
        optional: dict | None = None,
    ):
        self.directory = os.path.join(model_dir, CHECKPOINT_FOLDER)
        parts = dict(
            step=step,
            models=tf.train.Checkpoint(**models),
            optimizers=tf.train.Checkpoint(**optimizers),
        )
        self.checkpoint = tf.train.Checkpoint(**parts, **(optional or {}))
        # What every checkpoint must hold; restored and checked on its own.
        self._required = tf.train.Checkpoint(**parts)
        self._optional = tf.train.Checkpoint(**(optional or {}))
        self._optional_names = tuple(optional or ())
        self.missing: tuple[str, ...] = ()  # optional names the last restore did not find
        self.restored: str | None = None  # the checkpoint the last restore read
        # Only the process that saves into the run's own folder may rearrange it.
        self._owns_directory = not save_dir
        self._target = os.path.join(save_dir, CHECKPOINT_FOLDER) if save_dir else self.directory
        self._keep = keep
        self.step = step
        self.manager = self._open_manager()

    def _open_manager(self) -> tf.train.CheckpointManager:
        try:
            return tf.train.CheckpointManager(
                self.checkpoint, self._target, max_to_keep=self._keep, step_counter=self.step
            )
        except ValueError as err:  # a state file that parses but names nothing (empty)
            latest_in(self._target)  # checkpoints beside it: that message, with the way out
            raise UserError(
                f"{os.path.join(self._target, 'checkpoint')} is unreadable and no "
                "checkpoint is next to it; delete it to start the run"
            ) from err

    @property
    def latest(self) -> str | None:
        """Path prefix of the run's newest checkpoint, or None (see `latest_in`)."""
        return latest_in(self.directory)

    def resume(self, resume_from: str = "", log=None) -> int | None:
        """Restores where a run continues: `resume_from` if given, else the newest checkpoint.

        Args:
          resume_from: "" for the run's newest checkpoint, "ckpt-N" for one in the
            run's checkpoints folder, or a checkpoint path prefix.
          log: receives one-line messages (checkpoints moved aside); None = silent.
        Returns:
          The restored step, or None if there is nothing to resume. With `resume_from`,
          the run's checkpoints numbered above the restored step are moved, with the
          state file, to <checkpoints>/set_aside-<time>/ (never deleted: the run
          would otherwise overwrite them or pick them as its latest again), and the
          state file is rewritten to name what is left. Raises UserError for a
          missing, damaged or unfitting checkpoint.
        """
        if not resume_from:
            return self.restore_latest()
        path = self._named(resume_from)
        step = self._restore(path, f"--resume_from={resume_from}: ")
        if self._owns_directory:
            moved = self._set_aside_after(step)
            if moved:
                names = ", ".join(os.path.basename(p) for p in moved[1:])
                (log or (lambda _: None))(
                    f"moved {names} (newer than step {step}) and the old "
                    f"state file to {moved[0]}; nothing was deleted"
                )
            self.manager = self._open_manager()
        return step

    def to_resume(self, resume_from: str = "") -> str | None:
        """The checkpoint `resume` would restore (path prefix), or None; reads no weights.
        Raises UserError for a `resume_from` that names no checkpoint."""
        return self._named(resume_from) if resume_from else self.latest

    def restore_latest(self) -> int | None:
        """Restores the run's newest checkpoint, if any; returns its step or None.

        Optional state the checkpoint lacks keeps its current value and is listed in
        `self.missing`, for the caller to initialise.
        """
        latest = self.latest
        return None if not latest else self._restore(latest)

    def _named(self, resume_from: str) -> str:
        """The checkpoint path prefix --resume_from names; UserError if there is none."""
        path = (
            os.path.join(self.directory, resume_from)
            if re.fullmatch(r"ckpt-\d+", resume_from)
            else resume_from
        )
        if not tf.io.gfile.exists(path + ".index"):
            have = [f"ckpt-{n}" for n in checkpoint_numbers(self.directory)]
            listed = f"the run has {', '.join(have)}" if have else "the run has no checkpoint"
            raise UserError(
                f"--resume_from={resume_from}: there is no checkpoint {path} (no "
                f".index file); {listed} in {self.directory}"
            )
        return path

    def _restore(self, path: str, context: str = "") -> int:
        """Restores the checkpoint at `path` into the trainer's state; returns its step."""
        try:
            # expect_partial: the file also holds the optional values, restored next.
            self._required.restore(path).assert_existing_objects_matched().expect_partial()
            self._optional.restore(path).expect_partial()
            self.missing = tuple(name for name in self._optional_names if not has_node(path, name))
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as err:
            # IndexError: what restoring from a truncated .data file raises.
            silence_partial_restore_warnings()
            damage = damage_of(path)
            if damage:
                advice = damaged_advice(path, "--resume_from", in_run=True)
                raise UserError(
                    f"{context}cannot restore checkpoint {path}: it is damaged ({damage}); {advice}"
                ) from err
            reason = first_line(err, 200)
            raise UserError(
                f"{context}cannot restore checkpoint {path}: {reason}; use a new "
                "--model_dir or the flags the run was started with"
            ) from err
        self.restored = path
        return int(self.step.numpy())

    def _set_aside_after(self, step: int) -> list[str]:
        """Moves the run's checkpoints numbered above `step` (and a copy of the state
        file) into a new set_aside-<time> folder and rewrites the state file to name
        the checkpoints left. Returns [that folder, moved checkpoint prefixes...], or
        [] if nothing was newer."""
        numbers = checkpoint_numbers(self.directory)
        newer = [n for n in numbers if n > step]
        aside = []
        if newer:
            folder = os.path.join(self.directory, "set_aside-" + time.strftime("%Y%m%d-%H%M%S"))
            while tf.io.gfile.exists(folder):
                folder += "+"
            tf.io.gfile.makedirs(folder)
            state = os.path.join(self.directory, "checkpoint")
            if tf.io.gfile.exists(state):
                tf.io.gfile.copy(state, os.path.join(folder, "checkpoint"))
            for n in newer:
                # The files of ckpt-N, and a ckpt-N_temp folder a failed save left.
                for name in tf.io.gfile.glob(os.path.join(self.directory, f"ckpt-{n}[._]*")):
                    tf.io.gfile.rename(name, os.path.join(folder, os.path.basename(name)))
            aside = [folder] + [os.path.join(self.directory, f"ckpt-{n}") for n in newer]
        _write_state(self.directory, [n for n in numbers if n <= step])
        return aside

    def save(self) -> str:
        """Writes a checkpoint numbered by the current step; returns its path.

        A save that fails (a full disk, a folder that became read-only) removes
        what it had written and raises UserError; earlier checkpoints stay intact.
        """
        number = int(self.step.numpy())
        before = (
            set(tf.io.gfile.listdir(self._target)) if tf.io.gfile.isdir(self._target) else set()
        )
        try:
            return self.manager.save(checkpoint_number=number)
        except (tf.errors.OpError, OSError) as err:
            prefix = os.path.join(self._target, f"ckpt-{number}")
            _remove_partial_save(self._target, before, prefix)
            kept = latest_in(self._target)
            kept = f"the last checkpoint {kept} is intact" if kept else "no earlier checkpoint"
            raise UserError(
                f"cannot write checkpoint {prefix}: {os_reason(err)}; its partial "
                f"files were removed and {kept}; free space or fix the folder, then "
                "run the same command again to resume"
            ) from err


def _remove_partial_save(directory: str, before: set, prefix: str) -> None:
    """Removes what a failed save added to `directory` (its ckpt-N_temp folder, temporary
    files), keeping the new checkpoint only if the state file already names it."""
    try:
        named = tf.train.latest_checkpoint(directory) == prefix
    except ValueError:
        named = False
    for name in set(tf.io.gfile.listdir(directory)) - before:
        path = os.path.join(directory, name.rstrip("/"))
        if named and path.startswith(prefix + "."):
            continue
        try:
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
        except tf.errors.OpError:
            pass  # the save's own error is the one to report


def _write_state(directory: str, numbers: list[int]) -> None:
    """Rewrites <directory>/checkpoint to list ckpt-N for `numbers` (ascending), the
    last one as the latest; removes it if `numbers` is empty. Each checkpoint's
    timestamp is its .index file's time, so the CheckpointManager rotates them as usual."""
    state = os.path.join(directory, "checkpoint")
    if not numbers:
        if tf.io.gfile.exists(state):
            tf.io.gfile.remove(state)
        return
    names = [f"ckpt-{n}" for n in numbers]
    stamps = [
        tf.io.gfile.stat(os.path.join(directory, name + ".index")).mtime_nsec / 1e9
        for name in names
    ]
    lines = (
        [f'model_checkpoint_path: "{names[-1]}"']
        + [f'all_model_checkpoint_paths: "{name}"' for name in names]
        + [f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in stamps]
        + ["last_preserved_timestamp: 0.0"]
    )
    _write_whole(state, "\n".join(lines) + "\n")


def _write_whole(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file renamed over it, so `path` never
    holds half of it; the temporary file is removed if the write fails."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except tf.errors.OpError:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise


# What a resume with a changed flag does, as each field declares it (options.option):
# refused (the networks' variables differ), allowed with a warning that the data order
# or random draws change, or allowed with a note saying what happens from then on.
_FLAG_FIELDS = Config.flag_fields()
MODEL_FIELDS = fields_on_resume(_FLAG_FIELDS, REFUSE)
ORDER_FIELDS = fields_on_resume(_FLAG_FIELDS, ORDER)
TRAINING_FIELDS = resume_notes(_FLAG_FIELDS)


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
      Raises UserError if a model-shape flag changed, or if `model_dir` is a file or
      a folder this process cannot write or create (checked before any work is done).
    """
    check_output_folder("--model_dir", model_dir)
    old = recorded_config(model_dir)
    if old is None:
        return []
    legacy = recorded_defaults(old)
    old = {**legacy, **old}  # fields it never recorded: the values it trained with
    changed = [
        f"--{k}={config[k]} (run has {old[k]})"
        for k in MODEL_FIELDS
        if k in old and old[k] != config[k]
    ]
    if changed:
        raise UserError(
            f"--model_dir={model_dir} holds a run with other model flags: "
            f"{', '.join(changed)}; use a new --model_dir or the same flags"
        )
    changed = [
        k
        for k in (*ORDER_FIELDS, *TRAINING_FIELDS)
        if k in old and not _json_equal(old[k], config[k])
    ]
    notes = [
        f"--{k} changed from {old[k]} to {config[k]} since the run started; "
        + (
            TRAINING_FIELDS[k]
            if k in TRAINING_FIELDS
            else "training continues with the new "
            "value, so it no longer repeats an uninterrupted run exactly"
        )
        for k in changed
    ]
    defaults = Config().to_dict()
    # A field whose kept value is also the new default changes nothing worth a note.
    kept = [k for k in legacy if k not in changed and not _json_equal(old[k], defaults[k])]
    if kept:
        notes.insert(
            0,
            "the run was started before "
            + ", ".join(f"--{k}" for k in kept)
            + " existed and keeps what it trained with: "
            + " ".join(f"--{k}={old[k]}" for k in kept)
            + " (new runs: "
            + " ".join(f"--{k}={defaults[k]}" for k in kept)
            + "); give the flag to change it",
        )
    return notes


def record_config(model_dir: str, config: dict) -> None:
    """Writes `config` to <model_dir>/config.json (local or remote), replacing it whole.

    A field the run's config.json lacked (the run started before it existed) stays
    out while the run keeps the value it trained with, and keys of the old file that
    are no longer Config fields (such as conv_impl) stay in, so every later resume
    reads the same values from it (config.recorded_defaults).
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    before = recorded_config(model_dir) or {}
    legacy = recorded_defaults(before) if before else {}
    fields = {f.name for f in _FLAG_FIELDS}
    config = {
        **{k: v for k, v in before.items() if k not in config and k not in fields},
        **{k: v for k, v in config.items() if not (k in legacy and _json_equal(v, legacy[k]))},
    }
    try:
        tf.io.gfile.makedirs(model_dir)
        _write_whole(path, json.dumps(config, indent=2, sort_keys=True))
    except tf.errors.OpError as err:
        raise UserError(
            f"cannot write {path}: {os_reason(err)}; free space or pass a "
            "--model_dir you can write to"
        ) from err
