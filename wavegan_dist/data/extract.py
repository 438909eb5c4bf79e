"""Library access to a dataset's audio and metadata, read in batches of rows.

These are the original sketch's `extract_audio` / `extract_metadata` steps, for
notebooks and tools (evaluation, export); training reads through data/pipeline.py.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from wavegan_dist.data import schema

METADATA_COLUMNS = tuple(c for c in schema.COLUMNS if c != "audio")


def _row_list(ds, rows: Iterable[int] | None) -> np.ndarray:
    return np.arange(len(ds), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)


def extract_audio(ds, rows: Iterable[int] | None = None, slice_len: int | None = None,
                  offset: int = 0, batch_rows: int = 256) -> np.ndarray:
    """Reads audio as float32 in [-1, 1).

    Args:
      ds: an open deeplake dataset with the NSynth columns (e.g. `ds[:num_samples]`'s
        source; pass rows=range(num_samples) for the first N rows).
      rows: row indices to read, in the order wanted (default: all rows).
      slice_len: samples per example (default: the stored length); audio shorter
        than offset + slice_len is zero-padded.
      offset: first sample of the slice.
      batch_rows: rows per deeplake read.
    Returns:
      float32 [len(rows), slice_len].
    """
    ids = _row_list(ds, rows)
    slice_len = schema.audio_length(ds) - offset if slice_len is None else slice_len
    out = np.zeros([len(ids), slice_len], np.float32)
    for start in range(0, len(ids), batch_rows):
        part = ids[start:start + batch_rows]
        unique, inverse = np.unique(part, return_inverse=True)
        pcm = np.asarray(ds["audio"][unique.tolist()])[inverse, offset:offset + slice_len]
        out[start:start + len(part), :pcm.shape[1]] = pcm * schema.PCM_SCALE
    return out


def extract_metadata(ds, rows: Iterable[int] | None = None,
                     columns: Iterable[str] = METADATA_COLUMNS,
                     batch_rows: int = 4096) -> list[dict]:
    """Reads metadata records, one dict per row.

    Args:
      ds: an open deeplake dataset with the NSynth columns.
      rows: row indices (default: all rows).
      columns: which columns to include (default: every column but audio).
      batch_rows: rows per deeplake read.
    Returns:
      A list of {column: value} with Python ints/strings, and qualities as a list
      of 10 ints, in the order of `rows`.
    """
    ids = _row_list(ds, rows)
    columns = tuple(columns)
    records: list[dict] = []
    for start in range(0, len(ids), batch_rows):
        part = ids[start:start + batch_rows].tolist()
        values = {c: ds[c][part] for c in columns}
        for i in range(len(part)):
            record = {}
            for c in columns:
                v = values[c][i]
                record[c] = v.tolist() if isinstance(v, np.ndarray) else (
                    v.item() if isinstance(v, np.generic) else v)
            records.append(record)
    return records
