"""Finding and opening the dataset a run trains on, and choosing its rows.

A `--data` value is either "builtin" (the procedural dataset, built on first
use) or a deeplake dataset path. A path may name one dataset, or a folder whose
`train`, `valid` and `test` subfolders are the splits; `--split` picks one.
"""

from __future__ import annotations

import dataclasses
import os

import deeplake
import numpy as np

from wavegan_dist.data import schema
from wavegan_dist.errors import UserError


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


def resolve_path(data: str, split: str, cache_dir: str = "", log=print) -> str:
    """Turns a --data/--split pair into the path of one deeplake dataset.

    Args:
      data: "builtin" or a deeplake path (local folder or URL).
      split: train | valid | test; used when `data` is builtin or a folder of splits.
      cache_dir: where the built-in dataset is cached ("" = its default).
      log: one-line progress messages (building the built-in set).
    Returns:
      The path to open.
    """
    if data == "builtin":
        from wavegan_dist.data import builtin  # builds on demand; keep import light
        return os.path.join(builtin.ensure_builtin_dataset(cache_dir or None, log=log), split)
    local = data[len("file://"):] if data.startswith("file://") else data
    if "://" not in local:
        if not os.path.exists(local):
            raise UserError(f"--data={data}: no such file or folder; give a deeplake dataset "
                            "path or --data=builtin")
        if os.path.isdir(os.path.join(local, split)):
            return os.path.join(local, split)
        return local
    return data


def open_dataset(path: str):
    """Opens the deeplake v4 dataset at `path` read-only and checks its schema.

    Returns:
      The dataset. Raises UserError if it is missing, unreadable or not NSynth-shaped.
    """
    try:
        ds = deeplake.open_read_only(path)
    except Exception as err:  # deeplake raises many unrelated types for "cannot open"
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"cannot open deeplake dataset {path}: {reason}") from err
    schema.check_schema(ds, path)
    return ds


def load_source(data: str, split: str = "train", num_samples: int = 0,
                cache_dir: str = "", log=print) -> DataSource:
    """Resolves, opens and selects rows: the first `num_samples` rows (0 = all), like ds[:n].

    Returns:
      A DataSource. Raises UserError for a missing/invalid dataset or no rows.
    """
    path = resolve_path(data, split, cache_dir, log)
    ds = open_dataset(path)
    total = len(ds)
    count = min(num_samples, total) if num_samples else total
    if count == 0:
        raise UserError(f"dataset {path} has no rows to train on")
    meta = ds.metadata
    sample_rate = int(meta["sample_rate"]) if "sample_rate" in meta.keys() else schema.NSYNTH_SAMPLE_RATE
    num_stored = int(str(ds.schema["audio"].dtype).split("shape=(")[1].split(")")[0].rstrip(","))
    return DataSource(path=path, dataset=ds, rows=np.arange(count, dtype=np.int64),
                      sample_rate=sample_rate, num_samples=num_stored)
