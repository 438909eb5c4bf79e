"""What a reader yields, and the conversions every reader shares.

A reader turns its source into a deterministic sequence of *items*, one per
source file / note / record. Each item is either a `Record` (one dataset row)
or a `Skip` (the item could not be read, and why). The item sequence, not the
row count, is what resumable ingest counts, so a reader must yield exactly one
item per source entry, in the same order on every run.
A name that is not valid UTF-8 (a file name with a byte like 0xff) is stored
and reported with backslash escapes for its other bytes (`\\xff`).

Audio conversions (documented because tests and users compare against them):
  * float audio -> int16: `clip(rint(x * 32768), -32768, 32767)`. NSynth's
    floats are its int16 PCM divided by 32768, so this restores them exactly.
  * length: longer audio is cut to `num_samples`, shorter is zero-padded at the end.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from wavegan_dist.data import schema

NUM_QUALITIES = len(schema.QUALITIES)
METADATA_COLUMNS = tuple(c for c in schema.COLUMNS if c != "audio")
TEXT_COLUMNS = tuple(c for c, t in schema.COLUMNS.items() if t == "text")


@dataclasses.dataclass
class Record:
    """One row: `name` identifies the source item (for reports), `columns` maps every
    schema column to its value (audio int16 [num_samples], qualities int8 [10],
    text as str, other columns int)."""

    name: str
    columns: dict


@dataclasses.dataclass
class Skip:
    """An unreadable source item: `name` as in Record, `reason` one line."""

    name: str
    reason: str


def safe_text(text: str) -> str:
    r"""A name as storable, printable UTF-8: the bytes of a file name that are not UTF-8
    (Python keeps them as surrogate escapes) become backslash escapes, so the file
    b"\xffa.wav" is named by the 9 characters `\xffa.wav`; valid text is unchanged."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file name decoding makes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] (any shape) -> int16 of the same shape, by the rule above."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def fit_length(pcm: np.ndarray, num_samples: int) -> np.ndarray:
    """int16 [n] -> int16 [num_samples]: cut, or zero-padded at the end."""
    pcm = np.asarray(pcm, np.int16).reshape(-1)
    if len(pcm) >= num_samples:
        return pcm[:num_samples]
    return np.concatenate([pcm, np.zeros(num_samples - len(pcm), np.int16)])


def unknown_metadata() -> dict:
    """Every metadata column at its "not given" value: UNKNOWN for ints, "" for text,
    qualities all UNKNOWN."""
    out = {c: ("" if c in TEXT_COLUMNS else schema.UNKNOWN) for c in METADATA_COLUMNS}
    out["qualities"] = np.full(NUM_QUALITIES, schema.UNKNOWN, np.int8)
    return out


def _as_int(value, lo: int | None = None, hi: int | None = None) -> int | None:
    """An int from an int/float/str/1-element array, or None if not a whole number in range."""
    try:
        arr = np.asarray(value).reshape(-1)
        if arr.size != 1:
            return None
        v = arr[0]
        if isinstance(v, (bytes, np.bytes_)):
            v = v.decode()
        f = float(v)
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
    if not np.isfinite(f) or f != int(f):
        return None
    i = int(f)
    if (lo is not None and i < lo) or (hi is not None and i > hi):
        return None
    return i


def _as_text(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple, np.ndarray)):
        flat = list(np.asarray(value, dtype=object).reshape(-1))
        return _as_text(flat[0]) if len(flat) == 1 else ""
    return "" if value is None else str(value)


def _index_of(value, names: tuple) -> int | None:
    """An index into `names` from an index or a name (case-insensitive)."""
    i = _as_int(value, 0, len(names) - 1)
    if i is not None:
        return i
    text = _as_text(value).strip().lower().replace("-", "_")
    keyed = {n.replace("-", "_"): k for k, n in enumerate(names)}
    return keyed.get(text)


def qualities_from(flags=None, names=None) -> np.ndarray:
    """int8 [10] quality flags from 10 ints (0/1), else from a list of quality names;
    all UNKNOWN if neither gives a valid answer."""
    if flags is not None:
        arr = np.asarray(flags).reshape(-1)
        if arr.size == NUM_QUALITIES and ((arr == 0) | (arr == 1)).all():
            return arr.astype(np.int8)
    if names is not None:
        listed = not isinstance(names, str)
        if not listed:
            names = names.replace(";", ",").replace("|", ",").split(",")
        wanted = [_as_text(n).strip() for n in names]
        wanted = [n for n in wanted if n]
        # An explicit empty list (NSynth's qualities_str for a plain note) means "none".
        if (wanted or listed) and all(n in schema.QUALITIES for n in wanted):
            return np.array([q in wanted for q in schema.QUALITIES], np.int8)
    return np.full(NUM_QUALITIES, schema.UNKNOWN, np.int8)


def nsynth_metadata(meta: dict) -> dict:
    """Schema metadata columns from an NSynth-style dict (examples.json entry,
    parsed TFRecord, sidecar row). Missing or invalid fields become UNKNOWN / "";
    `*_str` names are used when the integer id is missing. Returns every
    metadata column (no audio); `sample_rate` is left for the caller."""
    out = unknown_metadata()
    get = meta.get
    out["note_str"] = _as_text(get("note_str")).strip()
    out["instrument_str"] = _as_text(get("instrument_str")).strip()
    for col, hi in (("pitch", 127), ("velocity", 127), ("instrument", None)):
        v = _as_int(get(col), 0, hi)
        out[col] = schema.UNKNOWN if v is None else v
    for col, names in (
        ("instrument_family", schema.FAMILIES),
        ("instrument_source", schema.SOURCES),
    ):
        v = _index_of(get(col), names) if get(col) is not None else None
        if v is None and get(col + "_str") is not None:
            v = _index_of(get(col + "_str"), names)
        out[col] = schema.UNKNOWN if v is None else v
    out["qualities"] = qualities_from(get("qualities"), get("qualities_str"))
    return out


class ColumnBuffer:
    """Accumulates Records column by column for one `ds.append` call."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, record: Record) -> None:
        """Queues one record's columns."""
        self.rows.append(record.columns)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self) -> dict:
        """Returns {column: batch} (audio int16 [n, num_samples], qualities int8 [n, 10],
        text lists, int32 [n] otherwise) and empties the buffer."""
        rows, self.rows = self.rows, []
        batch = {}
        for col, dtype in schema.COLUMNS.items():
            values = [r[col] for r in rows]
            if dtype == "text":
                batch[col] = [safe_text(v) for v in values]
            elif col in ("audio", "qualities"):
                batch[col] = np.stack(values).astype(dtype, copy=False)
            else:
                batch[col] = np.asarray(values, dtype)
        return batch


def ordered_map(fn, items, workers: int = 2, ahead: int = 16):
    """Yields fn(item) for each item, in order, computing up to `ahead` results in
    `workers` threads (decoding releases the GIL in numpy, file reads and TF ops).
    Unlike Executor.map it never queues more than `ahead` items, so memory stays
    bounded however long `items` is."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        queue = deque()
        for item in items:
            queue.append(pool.submit(fn, item))
            if len(queue) >= ahead:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()
