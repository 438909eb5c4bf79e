"""deeplake dataset -> prepared folder: the selected examples, shuffled once, in shards.

The selected rows (after filters and --condition's label check, exactly the rows
a deeplake-path run would train on) are put in one seeded random order; the
example at position i of that order goes to shard i % S, at index i // S. Every
shard is therefore a uniform random sample of the selection, so any pipeline
reading any subset of the shards front to back gets well-mixed batches, and the
shards can be dealt out to input pipelines (shard k to pipeline k % P).

Safe to interrupt: the plan is written first, each shard goes to a temporary name
and is renamed when complete, and the manifest is written last. A re-run of the
same command skips the complete shards; a re-run with another selection, seed,
shard count or source content into the same folder is refused.
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import tensorflow as tf

from wavegan_dist.data import pipeline
from wavegan_dist.data.labels import attach_labels, label_counts
from wavegan_dist.data.prepared import manifest as mf
from wavegan_dist.data.source import load_source
from wavegan_dist.errors import UserError, first_line

SHARD_BYTES = 128 << 20  # automatic shard count: shards of about this size
SHARD_MULTIPLE = 16  # ... and a multiple of this, so 1, 2, 4, 8 or 16 pipelines split them evenly
ORDER_STREAM = 0x9E9A  # keeps the write order's random stream apart from the run's others
TFRECORD_FRAMING = 16  # bytes TFRecord adds per record (length, two CRCs)


def auto_shards(examples: int, record_bytes: int) -> int:
    """Shards of about SHARD_BYTES, a multiple of SHARD_MULTIPLE, at most one per example."""
    wanted = max(1, math.ceil(examples * record_bytes / SHARD_BYTES))
    return max(1, min(examples, -(-wanted // SHARD_MULTIPLE) * SHARD_MULTIPLE))


def write_order(examples: int, seed: int) -> np.ndarray:
    """The seeded order of the selected rows in the prepared form: int64 [examples]."""
    return np.random.default_rng([seed, ORDER_STREAM]).permutation(examples)


def _records(pcm: np.ndarray, scale: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """The record bytes of each example (layout: see manifest.py)."""
    layout = np.dtype([("pcm", "<i2", (pcm.shape[1],)), ("scale", "<f4"), ("label", "<i4")])
    packed = np.empty(len(pcm), layout)
    packed["pcm"], packed["scale"], packed["label"] = pcm, scale, labels
    return [row.tobytes() for row in packed]


def _digest(rows: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(rows.astype("<i8").tobytes() + labels.astype("<i4").tobytes()).hexdigest()


def _check_dest(dest: str) -> None:
    try:
        if tf.io.gfile.exists(dest) and not tf.io.gfile.isdir(dest):
            raise UserError(
                f"--dest={dest} is a file; give a folder (or gs:// URL) for the prepared data"
            )
        tf.io.gfile.makedirs(dest)
    except tf.errors.OpError as err:
        raise UserError(f"cannot create --dest={dest}: {first_line(err)}") from err


def _start_or_resume(dest: str, plan: dict, log) -> bool:
    """Checks dest against the plan and records the plan; True if already complete."""
    done = mf.read_json(mf.join(dest, mf.MANIFEST))
    if done == plan:
        return True
    old = done or mf.read_json(mf.join(dest, mf.PLAN))
    if old is not None and old != plan:
        keys = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
        raise UserError(
            f"--dest={dest} already holds data prepared differently ({', '.join(keys)} "
            "differ); choose another --dest, or repeat the original command"
        )
    if old is None:
        if tf.io.gfile.listdir(dest):
            raise UserError(
                f"--dest={dest} is not empty and holds no prepared data; give a new or empty folder"
            )
        mf.write_json(mf.join(dest, mf.PLAN), plan)
    else:
        log(f"resuming the prepare into {dest}")
    for name in tf.io.gfile.listdir(dest):
        if ".tmp" in name:  # a shard or JSON file whose writer was killed
            tf.io.gfile.remove(mf.join(dest, name))
    return False


def _read_notes(column, ids: np.ndarray):
    """Starts reading rows `ids` (unique, any order); the result comes back in that order."""
    order = np.argsort(ids)
    read = pipeline.read_column_rows(column, ids[order])  # the deeplake path's ranged reads
    return lambda: np.asarray(read.result())[np.argsort(order)]


def _write_shard(
    dest: str,
    name: str,
    source,
    ids: np.ndarray,
    labels: np.ndarray,
    stored_len: int,
    normalize: str,
    read_rows: int,
) -> None:
    """Writes the examples of rows `ids` (in that order) to dest/name through a temporary name."""
    tmp = mf.join(dest, f".{name}.tmp-{os.getpid()}")
    column = source.dataset["audio"]
    chunks = [slice(i, i + read_rows) for i in range(0, len(ids), read_rows)]
    pending = _read_notes(column, ids[chunks[0]])
    with tf.io.TFRecordWriter(tmp) as writer:
        for n, part in enumerate(chunks):
            notes = pending()
            if n + 1 < len(chunks):  # the next read runs while this chunk is written
                pending = _read_notes(column, ids[chunks[n + 1]])
            pcm, scale = pipeline.examples_from_notes(
                notes, np.zeros(len(notes), np.int64), stored_len, normalize
            )
            for record in _records(pcm, scale, labels[part]):
                writer.write(record)
    tf.io.gfile.rename(tmp, mf.join(dest, name), overwrite=True)


def prepare(cfg, dest: str, shards: int = 0, log=print) -> dict:
    """Writes the examples `cfg` selects into the prepared folder `dest`.

    Args:
      cfg: a Config; its data, split, data_cache, selection fields (manifest.SELECTION),
        seed and read_rows are used.
      dest: local folder, file:// or gs:// URL.
      shards: number of shard files (0: about SHARD_BYTES each, a multiple of 16).
      log: one-line progress messages.
    Returns:
      The manifest (dict). Raises UserError for a bad source, dest or shard count.
    """
    dest = dest[len("file://") :] if dest.startswith("file://") else dest
    if dest.startswith(("s3://", "gcs://", "azure://", "al://", "hub://")):
        raise UserError(f"--dest={dest}: prepared data goes to a local folder or gs://")
    source = load_source(cfg.data, cfg.split, cfg.row_filter(), cfg.data_cache, log)
    source, labels = attach_labels(source, cfg.condition, log)
    examples = len(source.rows)
    labels = np.zeros(examples, np.int32) if labels is None else labels
    stored_len = (
        max(cfg.net.slice_len, source.num_samples)
        if cfg.slice_offset == "random"
        else cfg.net.slice_len
    )
    size = mf.record_bytes(stored_len)
    shards = shards or auto_shards(examples, size)
    if not 1 <= shards <= examples:
        raise UserError(
            f"--shards={shards}: give between 1 and the {examples} selected "
            "examples (0 = automatic)"
        )
    counts = [len(range(k, examples, shards)) for k in range(shards)]
    plan = {
        "format": mf.FORMAT,
        "version": mf.VERSION,
        "source": source.path,
        "selection": mf.selection_of(cfg),
        "seed": cfg.seed,
        "examples": examples,
        "sample_rate": source.sample_rate,
        "slice_len": cfg.net.slice_len,
        "stored_len": stored_len,
        "record_bytes": size,
        "label_counts": (
            None if cfg.condition == "none" else label_counts(labels, cfg.condition).tolist()
        ),
        "rows_sha256": _digest(source.rows, labels),
        "shards": [{"file": mf.shard_name(k, shards), "examples": n} for k, n in enumerate(counts)],
    }
    _check_dest(dest)
    if _start_or_resume(dest, plan, log):
        log(f"{dest} is already complete: {examples} examples in {shards} shards")
        return plan
    order = write_order(examples, cfg.seed)
    for k, shard in enumerate(plan["shards"]):
        path = mf.join(dest, shard["file"])
        expected = shard["examples"] * (size + TFRECORD_FRAMING)
        if tf.io.gfile.exists(path) and tf.io.gfile.stat(path).length == expected:
            continue
        mine = order[k::shards]
        _write_shard(
            dest,
            shard["file"],
            source,
            source.rows[mine],
            labels[mine],
            stored_len,
            cfg.normalize,
            cfg.read_rows,
        )
        log(f"shard {k + 1}/{shards}: {shard['examples']} examples")
    mf.write_json(mf.join(dest, mf.MANIFEST), plan)
    log(
        f"prepared {examples} examples of {source.path} in {shards} shards "
        f"({examples * size / 2**20:.1f} MiB) at {dest}"
    )
    return plan
