"""Finding and opening the dataset a run trains on, and choosing its rows.

`--data` is "builtin" (the procedural dataset, built on first use),
"builtin-instruments" (sampled instrument notes, built on first use) or a deeplake
path: a local folder, file://, s3://, gcs:// (or gs://), azure://, al:// or
hub:// (hub:// is Activeloop's old name for al://). How splits are laid out:
  * a path containing "{split}" has it replaced by --split
    (e.g. s3://bucket/nsynth/{split});
  * a local folder whose `train`, `valid` and `test` subfolders are datasets is
    read at <folder>/<split> (the built-in dataset and `ingest` use this layout);
  * any other path is one dataset, used whatever --split says.

Opening a remote dataset gives up after OPEN_TIMEOUT_S seconds (the environment
variable WAVEGAN_DIST_OPEN_TIMEOUT sets another bound).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time

import deeplake
import numpy as np

from wavegan_dist.data import dataset_cache, prepared, schema
from wavegan_dist.data.filters import RowFilter, select_rows
from wavegan_dist.errors import UserError, first_line

REMOTE_SCHEMES = ("s3://", "gcs://", "gs://", "azure://", "az://", "al://", "hub://")
# Seconds a remote open may take; deeplake's own retries give up after 40-80 s offline.
OPEN_TIMEOUT_S = 90.0
OPEN_TIMEOUT_ENV = "WAVEGAN_DIST_OPEN_TIMEOUT"
_remote_opens = []  # paths of remote stores this process has tried to open
DEEPLAKE_LOG = "_deeplake_log"  # every deeplake v4 dataset folder holds this folder


@dataclasses.dataclass(frozen=True)
class DataSource:
    """An opened dataset and the rows a run uses.

    Attributes:
      path: where the dataset lives.
      dataset: the read-only deeplake dataset.
      rows: int64 [N] row indices selected for training, in dataset order.
      sample_rate: Hz.
      num_samples: stored audio length per row.
    """

    path: str
    dataset: object
    rows: np.ndarray
    sample_rate: int
    num_samples: int


def _ensure_builtin_set(data: str, cache_dir: str | None, log) -> str:
    """Root folder (train/valid/test inside) of the built-in set `data` (one of
    dataset_cache.BUILTIN_SETS), built first if the cache does not hold it yet."""
    if data == "builtin":
        from wavegan_dist.data.builtin import ensure_builtin_dataset

        return ensure_builtin_dataset(cache_dir, log=log)
    from wavegan_dist.data.instruments import ensure_instruments_dataset

    return ensure_instruments_dataset(cache_dir, log=log)


def resolve_path(data: str, split: str, cache_dir: str = "", log=print) -> str:
    """Turns a --data/--split pair into the path of one deeplake dataset.

    Args:
      data: "builtin", "builtin-instruments" or a deeplake path (local folder or URL),
        optionally with "{split}".
      split: train | valid | test.
      cache_dir: where the built-in sets are cached ("" = their default).
      log: one-line progress messages (building a built-in set).
    Returns:
      The path to open (gs:// is normalised to deeplake's gcs://, hub:// to al://).
    """
    if data in dataset_cache.BUILTIN_SETS:  # built on demand
        return os.path.join(_ensure_builtin_set(data, cache_dir or None, log), split)
    pattern, data = data, data.replace("{split}", split)
    if data.startswith(REMOTE_SCHEMES):
        for old, new in (("gs://", "gcs://"), ("hub://", "al://"), ("az://", "azure://")):
            if data.startswith(old):
                data = new + data[len(old) :]
        return data
    if "://" in data and not data.startswith("file://"):
        raise UserError(
            f"--data={data}: unknown scheme; use a local path, file://, s3://, "
            "gcs://, azure://, al:// or hub://"
        )
    local = _local(data)
    if "{split}" in pattern and not os.path.exists(local):
        found = [s for s in schema.SPLITS if os.path.exists(_local(pattern.replace("{split}", s)))]
        raise UserError(
            f"--data={pattern}: no {split} split ({local} does not exist; found: "
            f"{', '.join(found) or 'no split'})"
        )
    if not os.path.exists(local):
        raise UserError(
            f"--data={data}: no such file or folder; give a deeplake dataset "
            "path, --data=builtin or --data=builtin-instruments"
        )
    if os.path.isfile(local):
        raise _not_a_dataset(
            data, os.path.dirname(local) or ".", "an audio file" if _is_audio(local) else "a file"
        )
    if any(
        os.path.isfile(os.path.join(local, name)) for name in (prepared.MANIFEST, prepared.PLAN)
    ):
        raise UserError(
            f"--data={data} is prepared data, which only training reads; give the "
            "deeplake dataset it was prepared from"
        )
    if os.path.isdir(os.path.join(local, split)):
        return os.path.join(local, split)
    splits = [s for s in schema.SPLITS if os.path.isdir(os.path.join(local, s))]
    if splits:
        raise UserError(
            f"--data={data} has no {split} split ({os.path.join(local, split)} "
            f"does not exist; it has {', '.join(splits)})"
        )
    if (
        not _looks_like_v3(local)
        and not os.path.isdir(os.path.join(local, DEEPLAKE_LOG))
        and _has_audio_files(local)
    ):
        raise _not_a_dataset(data, local, "a folder of audio files")
    return local


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _is_audio(name: str) -> bool:
    from wavegan_dist.data.ingest.audio_decode import AUDIO_EXTENSIONS  # only on error paths

    return name.lower().endswith(AUDIO_EXTENSIONS)


def _has_audio_files(folder: str) -> bool:
    return any(_is_audio(name) for _, _, names in os.walk(folder) for name in names)


def _not_a_dataset(data: str, folder: str, what: str) -> UserError:
    """The error for --data naming audio rather than a dataset, with the ingest command."""
    folder = os.path.normpath(folder)
    name = os.path.basename(os.path.abspath(folder))
    dest = os.path.join(
        os.path.dirname(folder) if folder not in (".", "..") else "..", f"{name}-deeplake"
    )
    return UserError(
        f"--data={data} is {what}, not a deeplake dataset; convert the audio "
        f"first: python -m wavegan_dist.ingest --format=audio-folder "
        f"--source={folder} --dest={dest}, then pass --data={dest}"
    )


def _looks_like_v3(path: str) -> bool:
    return os.path.isfile(os.path.join(_local(path), "dataset_meta.json"))


def _open_failure(path: str, err: BaseException, seconds: float) -> UserError:
    reason = first_line(err, 160)
    name = type(err).__name__
    convert = (
        f"if it is a deeplake v3 dataset (like the old hub://activeloop/nsynth-*), "
        f"convert it: python -m wavegan_dist.ingest --format=deeplake-v3 "
        f"--source={path} --dest=DEST"
    )
    if path.startswith("al://"):
        if not os.environ.get("ACTIVELOOP_TOKEN"):
            return UserError(
                f"cannot open {path}: Activeloop-hosted datasets need a token; "
                "set ACTIVELOOP_TOKEN (and network access); " + convert
            )
        return UserError(
            f"cannot open {path} ({name}: {reason}); check the name, the token "
            "and the network; " + convert
        )
    if "Network" in name or "network" in reason:
        return UserError(
            f"cannot reach {path}: network error after {seconds:.0f} s ({reason}); "
            "check the network and the storage credentials"
        )
    if "credential" in reason.lower() or "Auth" in name or "Access" in name:
        return UserError(f"cannot open {path}: storage credentials rejected or missing ({reason})")
    return UserError(f"cannot open deeplake dataset {path}: {reason}")


def open_timeout_s() -> float:
    """The bound on a remote open in seconds: $WAVEGAN_DIST_OPEN_TIMEOUT, else OPEN_TIMEOUT_S."""
    value = os.environ.get(OPEN_TIMEOUT_ENV, "").strip()
    if not value:
        return OPEN_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise UserError(f"{OPEN_TIMEOUT_ENV}={value} is not a number of seconds > 0")
    return seconds


def remote_store_contacted() -> bool:
    """True once this process has tried to open a remote dataset.

    deeplake then may have native threads retrying that store, which its exit handlers
    wait for (minutes, or for ever when the store is unreachable): the command line
    ends such a process with os._exit after it has printed its error.
    """
    return bool(_remote_opens)


def open_dataset(path: str, timeout_s: float | None = None):
    """Opens the deeplake v4 dataset at `path` read-only and checks its schema.

    Args:
      path: a resolved path (resolve_path).
      timeout_s: seconds a remote open may take (default: open_timeout_s()); deeplake
        retries an unreachable object store for a minute or more.
    Returns:
      The dataset. Raises UserError if it is missing, unreachable, v3, or not NSynth-shaped.
    """
    if _looks_like_v3(path):
        raise UserError(
            f"{path} is a deeplake v3 dataset, which deeplake 4 cannot read; "
            f"convert it: python -m wavegan_dist.ingest --format=deeplake-v3 "
            f"--source={path} --dest=DEST"
        )
    remote = path.startswith(REMOTE_SCHEMES)
    timeout_s = open_timeout_s() if timeout_s is None else timeout_s
    outcome: dict = {}

    def attempt():
        try:
            outcome["ds"] = deeplake.open_read_only(path)
        except Exception as err:  # deeplake raises many unrelated types for "cannot open"
            outcome["error"] = err

    # deeplake's storage layer logs every failed retry as a warning; the outcome is
    # reported below in one line instead.
    deeplake_log = logging.getLogger("deeplake")
    level = deeplake_log.level
    if remote:
        _remote_opens.append(path)
        deeplake_log.setLevel(logging.ERROR)
    started = time.monotonic()
    # A daemon thread, so that the wait is bounded even if the store never answers.
    worker = threading.Thread(target=attempt, daemon=True, name="deeplake-open")
    worker.start()
    try:
        worker.join(timeout_s)
    finally:
        deeplake_log.setLevel(level)
    if worker.is_alive():
        raise UserError(
            f"cannot open {path}: no answer within {timeout_s:g} s (the bound "
            f"{OPEN_TIMEOUT_ENV} sets); check the network and credentials"
        )
    if "error" in outcome:
        raise _open_failure(path, outcome["error"], time.monotonic() - started) from outcome[
            "error"
        ]
    ds = outcome["ds"]
    schema.check_schema(ds, path)
    return ds


def load_source(
    data: str,
    split: str = "train",
    row_filter: RowFilter | None = None,
    cache_dir: str = "",
    log=print,
) -> DataSource:
    """Resolves, opens and selects rows (filters applied once, to a list of row indices).

    Args:
      data, split, cache_dir: see resolve_path.
      row_filter: which rows to use (default: all).
      log: one-line progress messages.
    Returns:
      A DataSource. Raises UserError for a missing/invalid dataset or no rows.
    """
    path = resolve_path(data, split, cache_dir, log)
    ds = open_dataset(path)
    rows = select_rows(ds, row_filter or RowFilter(), path)
    meta = ds.metadata
    sample_rate = (
        int(meta["sample_rate"]) if "sample_rate" in meta.keys() else schema.NSYNTH_SAMPLE_RATE
    )
    return DataSource(
        path=path,
        dataset=ds,
        rows=rows,
        sample_rate=sample_rate,
        num_samples=schema.audio_length(ds),
    )
