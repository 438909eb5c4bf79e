"""Finding and opening the dataset a run trains on, and choosing its rows.

`--data` is "builtin" (the procedural dataset, built on first use) or a deeplake
path: a local folder, file://, s3://, gcs:// (or gs://), azure://, al:// or
hub:// (hub:// is Activeloop's old name for al://). How splits are laid out:
  * a path containing "{split}" has it replaced by --split
    (e.g. s3://bucket/nsynth/{split});
  * a local folder whose `train`, `valid` and `test` subfolders are datasets is
    read at <folder>/<split> (the built-in dataset and `ingest` use this layout);
  * any other path is one dataset, used whatever --split says.
"""

from __future__ import annotations

import dataclasses
import os
import threading

import deeplake
import numpy as np

from wavegan_dist.data import prepared, schema
from wavegan_dist.data.filters import RowFilter, select_rows
from wavegan_dist.errors import UserError, first_line

REMOTE_SCHEMES = ("s3://", "gcs://", "gs://", "azure://", "az://", "al://", "hub://")
OPEN_TIMEOUT_S = 120.0


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
      data: "builtin" or a deeplake path (local folder or URL), optionally with "{split}".
      split: train | valid | test.
      cache_dir: where the built-in dataset is cached ("" = its default).
      log: one-line progress messages (building the built-in set).
    Returns:
      The path to open (gs:// is normalised to deeplake's gcs://, hub:// to al://).
    """
    if data == "builtin":
        from wavegan_dist.data import builtin  # builds on demand; keep import light
        return os.path.join(builtin.ensure_builtin_dataset(cache_dir or None, log=log), split)
    data = data.replace("{split}", split)
    if data.startswith(REMOTE_SCHEMES):
        for old, new in (("gs://", "gcs://"), ("hub://", "al://"), ("az://", "azure://")):
            if data.startswith(old):
                data = new + data[len(old):]
        return data
    if "://" in data and not data.startswith("file://"):
        raise UserError(f"--data={data}: unknown scheme; use a local path, file://, s3://, "
                        "gcs://, azure://, al:// or hub://")
    local = data[len("file://"):] if data.startswith("file://") else data
    if not os.path.exists(local):
        raise UserError(f"--data={data}: no such file or folder; give a deeplake dataset "
                        "path or --data=builtin")
    if any(os.path.isfile(os.path.join(local, name))
           for name in (prepared.MANIFEST, prepared.PLAN)):
        raise UserError(f"--data={data} is prepared data, which only training reads; give the "
                        "deeplake dataset it was prepared from")
    if os.path.isdir(os.path.join(local, split)):
        return os.path.join(local, split)
    return local


def _looks_like_v3(path: str) -> bool:
    local = path[len("file://"):] if path.startswith("file://") else path
    return os.path.isfile(os.path.join(local, "dataset_meta.json"))


def _open_failure(path: str, err: BaseException) -> UserError:
    reason = first_line(err, 160)
    name = type(err).__name__
    convert = (f"if it is a deeplake v3 dataset (like the old hub://activeloop/nsynth-*), "
               f"convert it: python -m wavegan_dist.ingest --format=deeplake-v3 "
               f"--source={path} --dest=DEST")
    if path.startswith("al://"):
        if not os.environ.get("ACTIVELOOP_TOKEN"):
            return UserError(f"cannot open {path}: Activeloop-hosted datasets need a token; "
                             "set ACTIVELOOP_TOKEN (and network access); " + convert)
        return UserError(f"cannot open {path} ({name}: {reason}); check the name, the token "
                         "and the network; " + convert)
    if "Network" in name or "network" in reason:
        return UserError(f"cannot reach {path}: network error ({reason}); check the network "
                         "and the storage credentials")
    if "credential" in reason.lower() or "Auth" in name or "Access" in name:
        return UserError(f"cannot open {path}: storage credentials rejected or missing "
                         f"({reason})")
    return UserError(f"cannot open deeplake dataset {path}: {reason}")


def open_dataset(path: str, timeout_s: float = OPEN_TIMEOUT_S):
    """Opens the deeplake v4 dataset at `path` read-only and checks its schema.

    Remote opens are bounded by `timeout_s` (deeplake retries unreachable object
    stores for a minute or more).
    Returns:
      The dataset. Raises UserError if it is missing, unreachable, v3, or not NSynth-shaped.
    """
    if _looks_like_v3(path):
        raise UserError(f"{path} is a deeplake v3 dataset, which deeplake 4 cannot read; "
                        f"convert it: python -m wavegan_dist.ingest --format=deeplake-v3 "
                        f"--source={path} --dest=DEST")
    outcome: dict = {}

    def attempt():
        try:
            outcome["ds"] = deeplake.open_read_only(path)
        except Exception as err:  # deeplake raises many unrelated types for "cannot open"
            outcome["error"] = err

    # A daemon thread, so a store that never answers cannot keep the process alive.
    worker = threading.Thread(target=attempt, daemon=True, name="deeplake-open")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise UserError(f"cannot open {path}: no answer within {timeout_s:.0f} s; check the "
                        "network and credentials")
    if "error" in outcome:
        raise _open_failure(path, outcome["error"]) from outcome["error"]
    ds = outcome["ds"]
    schema.check_schema(ds, path)
    return ds


def load_source(data: str, split: str = "train", row_filter: RowFilter | None = None,
                cache_dir: str = "", log=print) -> DataSource:
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
    sample_rate = (int(meta["sample_rate"]) if "sample_rate" in meta.keys()
                   else schema.NSYNTH_SAMPLE_RATE)
    return DataSource(path=path, dataset=ds, rows=rows, sample_rate=sample_rate,
                      num_samples=schema.audio_length(ds))
