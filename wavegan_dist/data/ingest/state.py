"""The progress record an ingest keeps inside its dataset, and how it survives a kill.

Each chunk is one commit holding both the chunk's rows and the updated record,
so in the normal case the record and the rows agree. deeplake 4.7.4 does
include `ds.metadata` writes in the commit, but it writes the metadata log
before the rows' log (seen with strace), so a kill between the two can leave a
committed record that counts one chunk whose rows never landed. The record
therefore also keeps the previous chunk's counters: when the dataset holds
exactly the previous count of rows, the record is rolled back by one chunk
(`IngestState.load`). The opposite case, rows committed beyond the record, is
handled by ChunkWriter (it matches those rows against the items re-read).

Stored keys (small per-commit writes: deeplake 4.7.4 slowed to seconds per
commit once a few hundred commits each wrote more than a few hundred bytes of
metadata and message):
  ingest_identity        JSON, written once: source, format, metadata sidecar,
                         sample_rate, num_samples, version
  ingest                 JSON list: items_done, rows, complete, items_total,
                         skip_parts, the previous items_done, rows, skip_parts,
                         and the source's item-list digest
  ingest_skipped_<k>     JSON list of [name, reason]: the skips one commit added
"""

from __future__ import annotations

import dataclasses
import json

from wavegan_dist.errors import UserError

STATE_KEY = "ingest"
IDENTITY_KEY = "ingest_identity"
STATE_VERSION = 1


@dataclasses.dataclass
class IngestState:
    """The progress record of one dest.

    Attributes:
      identity: what the dest is an ingest of; a re-run must give the same.
      items_done: source items consumed (rows written or skipped) in committed chunks.
      rows: rows in the dataset that those items made.
      skipped: [name, reason] of every skipped item among the first items_done.
      complete: the whole source was consumed.
      items_total: the source's item count when last seen.
      skip_parts: how many ingest_skipped_<k> keys hold `skipped`.
      prev: (items_done, rows, skip_parts) before the last commit.
      digest: a hash of the source's item list, so a resume notices a changed source.
    """

    identity: dict
    items_done: int = 0
    rows: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    complete: bool = False
    items_total: int = 0
    skip_parts: int = 0
    prev: tuple = (0, 0, 0)
    digest: str = ""

    def store(self, ds, new_skips: list, with_identity: bool = False) -> None:
        """Writes the record into ds.metadata (the caller commits): the counters, the
        skips `new_skips` (also appended to `skipped`) and, if with_identity, the identity."""
        if with_identity:
            ds.metadata[IDENTITY_KEY] = json.dumps(dict(self.identity, version=STATE_VERSION))
        if new_skips:
            ds.metadata[f"{STATE_KEY}_skipped_{self.skip_parts}"] = json.dumps(new_skips)
            self.skip_parts += 1
            self.skipped.extend(new_skips)
        ds.metadata[STATE_KEY] = json.dumps(
            [
                self.items_done,
                self.rows,
                int(self.complete),
                self.items_total,
                self.skip_parts,
                *self.prev,
                self.digest,
            ]
        )

    def advance(self, items_done: int, rows: int, complete: bool, items_total: int) -> None:
        """Moves the counters to a new chunk, remembering the current ones as `prev`."""
        self.prev = (self.items_done, self.rows, self.skip_parts)
        self.items_done, self.rows, self.complete = items_done, rows, complete
        self.items_total = items_total

    @classmethod
    def load(cls, ds, where: str) -> "IngestState | None":
        """The committed record of `ds` (rolled back one chunk if that chunk's rows are
        missing), or None if ds has no record. UserError if it is unreadable or does
        not fit the rows."""
        if IDENTITY_KEY not in set(ds.metadata.keys()):
            return None
        try:
            identity = json.loads(ds.metadata[IDENTITY_KEY])
            if identity.pop("version") != STATE_VERSION:
                raise ValueError("written by another version of ingest")
            done, rows, complete, total, parts, *prev, digest = json.loads(ds.metadata[STATE_KEY])
            committed = len(ds)
            if committed < rows and committed == prev[1]:
                # The last commit's record landed but its rows did not: undo that chunk.
                done, rows, parts, complete = prev[0], prev[1], prev[2], 0
            elif committed < rows:
                raise UserError(
                    f"--dest={where} has {committed} rows but its ingest record "
                    f"counts {rows}; it was changed outside ingest; use a new --dest"
                )
            state = cls(identity, done, rows, [], bool(complete), total, parts, tuple(prev), digest)
            for k in range(parts):
                state.skipped.extend(json.loads(ds.metadata[f"{STATE_KEY}_skipped_{k}"]))
        except (TypeError, ValueError, KeyError) as e:
            raise UserError(
                f"--dest={where}: its ingest progress record is unreadable ({e}); use a new --dest"
            ) from e
        return state
