"""Reading a run's checkpoints and config.json: the newest checkpoint, which are
intact, what a checkpoint holds, and the advice a damaged one gets."""

from __future__ import annotations

import json
import logging
import os
import re

import tensorflow as tf

from wavegan_dist.errors import UserError, first_line
from wavegan_dist.run_folder import CONFIG_FILE


def tf_reason(err: BaseException, limit: int = 300) -> str:
    """An error's first line without TensorFlow's "{{function_node ...}}" prefix and
    "[Op:...]" suffix."""
    text = re.sub(r"^\{\{[^}]*\}\}\s*", "", first_line(err, limit))
    return re.sub(r"\s*\[Op:\w+\]$", "", text)


def os_reason(err: BaseException) -> str:
    """The reason of a file-system error, e.g. "No space left on device" (TensorFlow
    words them "<path>; <reason>"); other errors -> their first line."""
    return tf_reason(err).rsplit("; ", 1)[-1]


def checkpoint_numbers(directory: str) -> list[int]:
    """N of every ckpt-N.index in `directory`, ascending (the state file aside)."""
    numbers = []
    for index in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index")):
        number = os.path.basename(index)[len("ckpt-") : -len(".index")]
        if number.isdigit():
            numbers.append(int(number))
    return sorted(numbers)


def damage_of(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be read, or None if every value reads back.

    Reads the .index and every tensor of the .data files (whose checksums TensorFlow
    checks), so a truncated or garbled file is found without restoring into a model.
    """
    try:
        reader = tf.train.load_checkpoint(path)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except (tf.errors.OpError, IndexError, ValueError) as err:
        # IndexError: a truncated .data file; ValueError: an unparsable index.
        reason = tf_reason(err, 400).replace(os.path.dirname(path) + os.sep, "")
        return reason if len(reason) <= 200 else reason[:200].rsplit(" ", 1)[0] + " ..."
    return None


def newest_intact(directory: str, below: int | None = None) -> str | None:
    """Path prefix of the newest checkpoint in `directory` numbered below `below`
    (all if None) whose files read back completely, or None."""
    for number in reversed(checkpoint_numbers(directory)):
        if below is not None and number >= below:
            continue
        path = os.path.join(directory, f"ckpt-{number}")
        if damage_of(path) is None:
            return path
    return None


def damaged_advice(path: str, flag: str, in_run: bool) -> str:
    """What to do about the damaged checkpoint `path`: the newest intact one to use, or
    that there is none.

    Args:
      path: the damaged checkpoint's path prefix (<folder>/ckpt-N).
      flag: the flag that picks a checkpoint ("--resume_from", "--checkpoint").
      in_run: True for training (the flag takes ckpt-N; the newer files are moved
        aside), False for commands that read a checkpoint (the flag takes a path).
    """
    directory, name = os.path.split(path)
    number = name[len("ckpt-") :] if name.startswith("ckpt-") else ""
    intact = newest_intact(directory, int(number) if number.isdigit() else None)
    if intact is None:
        return f"no older checkpoint in {directory} reads back intact" + (
            "; use a new --model_dir (or move this one away) to start from step 0" if in_run else ""
        )
    if in_run:
        name = os.path.basename(intact)
        return (
            f"the newest intact one is {name}: add {flag}={name} to continue from it "
            "(the newer checkpoints are then moved to a set_aside folder, not deleted)"
        )
    return f"the newest intact one is {intact}: pass {flag}={intact}"


# What tf.train.Checkpoint logs when objects a restore left half-done are freed.
PARTIAL_RESTORE_WARNINGS = (
    "Detecting that an object or model or tf.train.Checkpoint is being deleted",
    "Value in checkpoint could not be found in the restored object",
    "An attribute in the restored object could not be found in the checkpoint",
)


class DropPartialRestoreWarnings(logging.Filter):
    """Drops tf.train.Checkpoint's per-value warnings about unused restored values."""

    def filter(self, record):
        return not record.getMessage().startswith(PARTIAL_RESTORE_WARNINGS)


_DROPPING = DropPartialRestoreWarnings()


def silence_partial_restore_warnings() -> None:
    """Drops those warnings for the rest of the process (after a failed restore).

    A restore that raises half-way never gets expect_partial(), and the trainer's
    objects it touched log one warning per checkpoint value when they are freed,
    dozens of lines after the one-line error; the error already says what failed.
    """
    tf.get_logger().addFilter(_DROPPING)  # adding the same filter twice is a no-op


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
    numbers = checkpoint_numbers(directory)
    if not numbers:
        return None
    newest = f"ckpt-{max(numbers)}"
    raise UserError(
        f"{os.path.join(directory, 'checkpoint')} is missing or unreadable, but "
        f"{len(numbers)} checkpoint(s) are there (newest {newest}); write it back "
        f'as the line model_checkpoint_path: "{newest}"{hint}'
    )


def has_node(path: str, name: str) -> bool:
    """True if the checkpoint at `path` holds a value under the top-level node `name`
    (a variable `name` or the variables of an object `name/...`)."""
    return any(key.split("/", 1)[0] == name for key, _ in tf.train.list_variables(path))


def recorded_config(model_dir: str) -> dict | None:
    """The configuration the run in `model_dir` recorded (its config.json), or None if
    there is none. Raises UserError if the folder or the file cannot be read."""
    path = os.path.join(model_dir, CONFIG_FILE)
    try:
        if not tf.io.gfile.exists(path):
            return None
    except tf.errors.OpError as err:
        # e.g. a gs:// model_dir without network or credentials
        reason = first_line(err, 200)
        raise UserError(
            f"--model_dir={model_dir} cannot be read ({reason}); check the path, "
            "the network and the credentials"
        ) from err
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except (tf.errors.OpError, ValueError) as err:
        raise UserError(
            f"{path} is unreadable ({err}); move it away or use a new --model_dir"
        ) from err
