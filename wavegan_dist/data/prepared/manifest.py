"""What a prepared folder holds: its manifest, and the checks made against it.

A prepared folder (local or gs://, read and written through tf.io.gfile) holds
  PLAN      JSON written before any shard: what is being written (the selection,
            seed, row count, shard names and sizes, record layout);
  shards    `shard-KKKKK-of-SSSSS.tfrecord`, each written to a temporary name and
            renamed when complete;
  MANIFEST  the plan again, written last: its presence means every shard is there.

Each record is one example, raw little-endian bytes (no tf.train.Example):
int16 PCM [stored_len], then the float32 scale that maps the PCM to [-1, 1], then
the int32 label (0 without --condition). stored_len is slice_len, or the whole
note with --slice_offset=random (the window is cut at read time).
"""

from __future__ import annotations

import json
import posixpath

import tensorflow as tf

from wavegan_dist.data.dataset_cache import BUILTIN_SETS
from wavegan_dist.data.prepared import MANIFEST, PLAN, SELECTION
from wavegan_dist.errors import UserError, first_line

FORMAT = "wavegan_dist-prepared"
VERSION = 1
TRAILER_BYTES = 8  # float32 scale + int32 label after the PCM


def record_bytes(stored_len: int) -> int:
    """Bytes of one record holding `stored_len` int16 samples."""
    return 2 * stored_len + TRAILER_BYTES


def shard_name(index: int, count: int) -> str:
    """File name of shard `index` of `count`."""
    return f"shard-{index:05d}-of-{count:05d}.tfrecord"


def join(folder: str, name: str) -> str:
    """folder/name for local paths and URLs alike."""
    return posixpath.join(folder, name) if "://" in folder else f"{folder.rstrip('/')}/{name}"


def _local(data: str) -> str:
    return data[len("file://") :] if data.startswith("file://") else data


def _may_hold_prepared(data: str) -> bool:
    # Only local folders and gs:// are looked at: tf.io.gfile cannot open deeplake's
    # other schemes (s3://, al://, ...), which are never prepared folders. A "{split}"
    # path is deeplake's per-split layout, which prepared data does not use.
    return (
        data not in BUILTIN_SETS
        and "{split}" not in data
        and ("://" not in data or data.startswith(("file://", "gs://")))
    )


def is_prepared(data: str) -> bool:
    """True if --data names a prepared folder (complete or being written)."""
    if not _may_hold_prepared(data):
        return False
    folder = _local(data)
    try:
        return any(tf.io.gfile.exists(join(folder, name)) for name in (MANIFEST, PLAN))
    except tf.errors.OpError as err:  # e.g. gs:// without network or credentials
        raise UserError(
            f"--data={data} cannot be read ({first_line(err, 200)}); check the "
            "path, the network and the credentials"
        ) from err


def read_json(path: str) -> dict | None:
    """The JSON object at `path`, or None if there is no such file."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


def write_json(path: str, value: dict) -> None:
    """Writes `value` as JSON to `path` through a temporary name, so it is whole or absent."""
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def load_manifest(data: str) -> dict:
    """The manifest of the complete prepared folder `data`; UserError if unfinished or foreign."""
    folder = _local(data)
    manifest = read_json(join(folder, MANIFEST))
    if manifest is None:
        plan = read_json(join(folder, PLAN)) or {}
        raise UserError(
            f"--data={data} is an unfinished prepare (no {MANIFEST} yet); run the "
            f"same prepare command again to finish it (source "
            f"{plan.get('source', '?')})"
        )
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise UserError(
            f"--data={data}: {MANIFEST} is not a version-{VERSION} "
            f"{FORMAT} manifest; prepare the data again with this version"
        )
    return manifest


def _shown(value) -> str:
    if value is None:
        return "any"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "any"
    return str(value)


def selection_of(cfg) -> dict:
    """The selection fields of a Config, as JSON values (tuples become lists)."""
    values = cfg.to_dict()
    return {k: list(values[k]) if isinstance(values[k], tuple) else values[k] for k in SELECTION}


def check_selection(data: str, manifest: dict, cfg) -> None:
    """Raises UserError (one line) if cfg's selection flags differ from the manifest's."""
    wanted, made = selection_of(cfg), manifest["selection"]
    differ = [k for k in SELECTION if wanted[k] != made.get(k)]
    if differ:
        asked = " ".join(f"--{k}={_shown(wanted[k])}" for k in differ)
        prepared = " ".join(f"--{k}={_shown(made.get(k))}" for k in differ)
        raise UserError(
            f"--data={data} was prepared with {prepared}, but this run asks for "
            f"{asked}; pass the prepared values, or prepare the data again "
            "with these"
        )
