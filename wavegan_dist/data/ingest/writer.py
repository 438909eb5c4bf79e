"""Chunked, resumable writing of reader items into a deeplake v4 NSynth dataset.

Every `chunk_rows` rows are appended and committed together with the updated
progress record (state.py), one commit per chunk: per-commit cost in deeplake
4.7.4 grows with the number of commits, so fewer, larger commits are much
faster (keep chunk_rows in the hundreds for big sources).

On resume, committed rows beyond what the record counts (possible if a kill
ever lands between the two logs of one commit in the other order) are matched,
in order, against the items the reader yields again from the recorded position
and not written twice; a mismatch stops the run rather than guess.
"""

from __future__ import annotations

import numpy as np

from wavegan_dist.data.ingest.records import ColumnBuffer, Record, Skip, safe_text
from wavegan_dist.data.ingest.state import IngestState
from wavegan_dist.errors import UserError

# The columns compared when matching already-committed rows against re-read items.
_MATCH_COLUMNS = ("note_str", "pitch", "velocity", "instrument", "instrument_family")


class ChunkWriter:
    """Feeds reader items into the dataset, committing every `chunk_rows` rows.

    Args:
      ds: the writable dataset from dest.open_dest.
      state: its committed IngestState (updated in place as chunks commit).
      chunk_rows: rows per append + commit.
    """

    def __init__(self, ds, state: IngestState, chunk_rows: int):
        self.ds = ds
        self.state = state
        self.chunk_rows = chunk_rows
        self.buffer = ColumnBuffer()
        self.items_seen = state.items_done
        self.new_skips: list[list[str]] = []
        self.rows_written = 0
        self.unrecorded = self._unrecorded_rows()

    def _unrecorded_rows(self) -> list[dict]:
        """Committed rows the record does not count, as {column: value} for _MATCH_COLUMNS."""
        committed = len(self.ds)
        if committed <= self.state.rows:
            return []
        cols = {c: self.ds[c][self.state.rows : committed] for c in _MATCH_COLUMNS}
        return [
            {c: _plain(cols[c][i]) for c in _MATCH_COLUMNS}
            for i in range(committed - self.state.rows)
        ]

    @property
    def rows(self) -> int:
        """Rows in the dataset plus rows buffered for the next commit."""
        return len(self.ds) + len(self.buffer)

    @property
    def skipped_total(self) -> int:
        """Skips recorded so far, committed or not."""
        return len(self.state.skipped) + len(self.new_skips)

    def add(self, item: Record | Skip) -> None:
        """Takes the next item in source order; commits a chunk when one is full."""
        self.items_seen += 1
        if isinstance(item, Skip):
            # A reason may quote a path: both must be storable (see safe_text).
            self.new_skips.append([safe_text(item.name), safe_text(item.reason)])
            return
        if self.unrecorded:
            expected = self.unrecorded.pop(0)
            got = {c: _plain(item.columns[c]) for c in _MATCH_COLUMNS}
            if got != expected:
                raise UserError(
                    f"the dataset's last committed rows do not match the source at "
                    f"{item.name} (expected {expected}, source gives {got}); has the "
                    "source changed since the interrupted run? use a new --dest"
                )
            return
        self.buffer.add(item)
        if len(self.buffer) >= self.chunk_rows:
            self.commit()

    def commit(self, complete: bool = False, items_total: int | None = None) -> None:
        """Appends the buffered rows and commits them with the progress record.
        With complete=True the record marks the whole source as consumed."""
        if complete and self.unrecorded:
            raise UserError(
                f"the dataset holds {len(self.unrecorded)} committed row(s) that the "
                "source no longer yields; has the source changed? use a new --dest"
            )
        n = len(self.buffer)
        if n:
            self.ds.append(self.buffer.take())
            self.rows_written += n
        total = self.state.items_total if items_total is None else items_total
        self.state.advance(self.items_seen, len(self.ds), complete, total)
        self.state.store(self.ds, self.new_skips)
        self.new_skips = []
        self.ds.commit()  # no message: keeps the commit small (see state.py)


def _plain(value):
    """A column value as a plain Python int/str, for comparisons (deeplake reads an
    empty text value back as None)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    return int(np.asarray(value).reshape(-1)[0])
