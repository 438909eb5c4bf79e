"""Library access to a dataset's audio and metadata, read in batches of rows.

`extract_audio` / `extract_metadata` are for notebooks and tools (evaluation,
export); training reads through data/pipeline.py.
Both take a deeplake dataset or any view of one: `extract_audio(ds[:10])`,
`extract_audio(ds[[1, 5]])`, `extract_audio(ds.query(...))`, `extract_audio(ds[3])`
and `extract_audio(ds, range(10))` all work.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from wavegan_dist.data import schema

METADATA_COLUMNS = tuple(c for c in schema.COLUMNS if c != "audio")


def _reader(ds) -> tuple[int, Callable[[str, list], object]]:
    """(row count, read(column, row ids) -> that column's values at those rows) of a
    dataset or view; the values are a numpy array or a list, in the order of the ids."""
    if hasattr(ds, "schema"):  # a dataset or a query result: columns index by row lists
        return len(ds), lambda column, ids: ds[column][ids]
    if hasattr(ds, "row_id"):  # one row, ds[i]: its columns are single values

        def read_row(column, ids):
            if any(i != 0 for i in ids):
                raise IndexError(f"rows {ids} of a one-row view (only row 0 exists)")
            return [ds[column] for _ in ids]

        return 1, read_row
    # ds[a:b] or ds[[...]]: a view whose columns are read whole (it cannot be sliced)
    columns: dict = {}

    def read(column, ids):
        if column not in columns:
            columns[column] = ds[column]
        values = columns[column]
        return values[ids] if isinstance(values, np.ndarray) else [values[i] for i in ids]

    return len(ds), read


def _row_list(count: int, rows: Iterable[int] | None) -> np.ndarray:
    return np.arange(count, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)


def extract_audio(
    ds,
    rows: Iterable[int] | None = None,
    slice_len: int | None = None,
    offset: int = 0,
    batch_rows: int = 256,
) -> np.ndarray:
    """Reads audio as float32 in [-1, 1).

    Args:
      ds: an open deeplake dataset with the NSynth columns, or a view of one
        (ds[:N], ds[[i, j]], ds[i], a query result).
      rows: row indices into `ds` (into the view for a view), in the order wanted
        (default: all rows).
      slice_len: samples per example (default: the stored length); audio shorter
        than offset + slice_len is zero-padded.
      offset: first sample of the slice.
      batch_rows: rows per deeplake read.
    Returns:
      float32 [len(rows), slice_len].
    """
    count, read = _reader(ds)
    ids = _row_list(count, rows)
    out = None
    for start in range(0, len(ids), batch_rows):
        unique, inverse = np.unique(ids[start : start + batch_rows], return_inverse=True)
        pcm = np.asarray(read("audio", unique.tolist())).reshape(len(unique), -1)
        if out is None:  # a view has no schema: its stored length is what a read gives
            slice_len = pcm.shape[1] - offset if slice_len is None else slice_len
            out = np.zeros([len(ids), slice_len], np.float32)
        pcm = pcm[inverse, offset : offset + slice_len]
        out[start : start + len(pcm), : pcm.shape[1]] = pcm * schema.PCM_SCALE
    if out is None:
        if slice_len is None:
            slice_len = schema.audio_length(ds) - offset if hasattr(ds, "schema") else 0
        out = np.zeros([0, slice_len], np.float32)
    return out


def extract_metadata(
    ds,
    rows: Iterable[int] | None = None,
    columns: Iterable[str] = METADATA_COLUMNS,
    batch_rows: int = 4096,
) -> list[dict]:
    """Reads metadata records, one dict per row.

    Args:
      ds: an open deeplake dataset with the NSynth columns, or a view of one
        (ds[:N], ds[[i, j]], ds[i], a query result).
      rows: row indices into `ds` (into the view for a view) (default: all rows).
      columns: which columns to include (default: every column but audio).
      batch_rows: rows per deeplake read.
    Returns:
      A list of {column: value} with Python ints/strings, and qualities as a list
      of 10 ints, in the order of `rows`.
    """
    count, read = _reader(ds)
    ids = _row_list(count, rows)
    columns = tuple(columns)
    records: list[dict] = []
    for start in range(0, len(ids), batch_rows):
        part = ids[start : start + batch_rows].tolist()
        values = {c: read(c, part) for c in columns}
        for i in range(len(part)):
            record = {}
            for c in columns:
                v = values[c][i]
                record[c] = (
                    v.tolist()
                    if isinstance(v, np.ndarray)
                    else (v.item() if isinstance(v, np.generic) else v)
                )
            records.append(record)
    return records
