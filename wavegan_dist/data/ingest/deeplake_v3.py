"""Deeplake v3 NSynth datasets (the old hosted `hub://activeloop/nsynth-*`), and local
v4 datasets that carry the same v3 column names.

deeplake 4 cannot read v3 data directly, so a v3 source is first migrated with
`deeplake.convert(src, tmp)` into a local v4 copy, then read like a v4 source.
Hosted sources (hub://, al://) are checked for a reachable Activeloop server
first, with a short timeout, so an offline machine fails in seconds with a
message instead of hanging in retries.

Column mapping (v3 name -> schema column):
  audios -> audio (float -> int16 by records.float_to_int16; [n, channels] mixed
  to mono; encoded bytes decoded), instrument, instrument_family,
  instrument_source, pitch, velocity, sample_rate (used to resample; the stored
  column is the dataset's rate) keep their names; qualities -> qualities (10
  0/1 flags, or class-label indices of the qualities present). Class-label
  columns with `class_names` metadata are mapped by name. v3 has no note_str or
  instrument_str (its `note` is a numeric id): they are stored as "" unless
  the source has such columns.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from typing import Iterator

import numpy as np

from wavegan_dist.data import schema
from wavegan_dist.data.ingest.audio_decode import DecodeError, decode_bytes, to_mono_pcm16
from wavegan_dist.data.ingest.records import Record, Skip, fit_length, nsynth_metadata
from wavegan_dist.errors import UserError, first_line

HOSTED_SCHEMES = ("hub://", "al://")
ACTIVELOOP_HOST = ("app.activeloop.ai", 443)
REACH_TIMEOUT_S = 10.0
_READ_ROWS = 64
_INT_COLUMNS = ("pitch", "velocity", "instrument", "instrument_family", "instrument_source")
_TEXT_COLUMNS = ("note_str", "instrument_str")


def reachable(host: str, port: int, timeout_s: float) -> str | None:
    """None if a TCP connection to host:port opens within timeout_s, else the reason.
    Runs in a daemon thread because a DNS lookup can block far past any socket timeout."""
    result = ["no answer within %.0f s" % timeout_s]

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            result[0] = None
        except OSError as e:
            result[0] = e.strerror or str(e) or type(e).__name__

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 1.0)
    return result[0]


def _local(path: str) -> str | None:
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


class DeeplakeV3Reader:
    """Reads a v3 NSynth dataset (via deeplake.convert) or a local v4 one with v3 names.

    Args:
      source: hub://org/name, al://org/name, a local v3 folder, a local v4 folder, or
        another deeplake URL (s3://, gcs://, ...).
      sample_rate, num_samples: the dataset's rate (Hz) and row length.
      convert_dir: where a v3 source is migrated to (a local folder, removed by cleanup()).
    """

    format = "deeplake-v3"

    def __init__(self, source: str, sample_rate: int, num_samples: int, convert_dir: str):
        local = _local(source)
        if local is not None:
            if not os.path.isdir(local):
                raise UserError(f"--source={source}: no such folder")
            self.needs_convert = os.path.isfile(os.path.join(local, "dataset_meta.json"))
            if not self.needs_convert and not os.path.isdir(os.path.join(local, "_deeplake_log")):
                raise UserError(
                    f"--source={source} is not a deeplake dataset (neither v3's "
                    "dataset_meta.json nor v4's _deeplake_log is in it)"
                )
            self.source_id = os.path.realpath(local)
        else:
            self.needs_convert = source.startswith(HOSTED_SCHEMES)
            self.source_id = source
            if self.needs_convert:
                reason = reachable(*ACTIVELOOP_HOST, REACH_TIMEOUT_S)
                if reason:
                    raise UserError(
                        f"cannot reach Activeloop ({ACTIVELOOP_HOST[0]}: {reason}) to read "
                        f"{source}; this machine looks offline. Run the command where the "
                        f"network is available, or there run deeplake.convert('{source}', "
                        "'LOCAL_COPY') and ingest the copy with --format=deeplake-v3 "
                        "--source=LOCAL_COPY"
                    )
        self.source = source
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.convert_dir = convert_dir
        self.ds = None

    def prepare(self, log=print) -> None:
        """Migrates a v3 source (if needed; reuses a finished migration) and opens the data."""
        import deeplake

        path = self.source
        if not self.needs_convert and _local(self.source) is None:
            # Another URL (s3://, gcs://, ...): v4 opens directly; otherwise try it as v3.
            try:
                self.ds = deeplake.open_read_only(path)
            except Exception:
                self.needs_convert = True
        if self.needs_convert:
            done_marker = self.convert_dir + ".done"
            if not os.path.isfile(done_marker):
                shutil.rmtree(self.convert_dir, ignore_errors=True)  # a half-done migration
                log(
                    f"converting v3 dataset {self.source} to v4 at {self.convert_dir} "
                    "(deeplake.convert; one pass over the whole source)"
                )
                try:
                    deeplake.convert(self.source, self.convert_dir)
                except Exception as e:  # deeplake raises RuntimeError and its own types
                    raise UserError(
                        f"deeplake.convert could not read {self.source}: {first_line(e)}"
                    ) from e
                with open(done_marker, "w") as f:
                    f.write(self.source + "\n")
            path = self.convert_dir
        try:
            self.ds = self.ds or deeplake.open_read_only(path)
        except Exception as e:
            raise UserError(f"cannot open deeplake dataset {self.source}: {first_line(e)}") from e
        names = {c.name for c in self.ds.schema.columns}
        if "audios" not in names:
            raise UserError(
                f"{self.source} has no 'audios' column (has "
                f"{', '.join(sorted(names))}); --format=deeplake-v3 expects the v3 "
                "NSynth columns"
            )
        self.columns = names
        self.class_names = {c: _class_names(self.ds, c) for c in names}

    def cleanup(self) -> None:
        """Removes the migrated copy (after a finished ingest)."""
        if self.needs_convert:
            shutil.rmtree(self.convert_dir, ignore_errors=True)
            if os.path.exists(self.convert_dir + ".done"):
                os.unlink(self.convert_dir + ".done")

    def count(self) -> int:
        """Number of items (rows of the source)."""
        return len(self.ds)

    def item_names(self) -> list[str]:
        """What identifies the item list (the row count), to notice a changed source."""
        return [f"rows={len(self.ds)}"]

    def read(self, start: int = 0) -> Iterator[Record | Skip]:
        """Yields one Record or Skip per source row, from row `start` on."""
        wanted = [
            c
            for c in ("audios", "sample_rate", "qualities") + _INT_COLUMNS + _TEXT_COLUMNS
            if c in self.columns
        ]
        for lo in range(start, len(self.ds), _READ_ROWS):
            hi = min(lo + _READ_ROWS, len(self.ds))
            try:
                batch = {c: self.ds[c][lo:hi] for c in wanted}
            except Exception as e:
                for i in range(lo, hi):
                    yield Skip(f"row {i}", f"read failed ({first_line(e)})")
                continue
            for j in range(hi - lo):
                try:
                    item = self._item(lo + j, {c: batch[c][j] for c in wanted})
                except UserError:
                    raise
                except Exception as e:  # one odd row must not end a long run: report it
                    item = Skip(f"row {lo + j}", f"{type(e).__name__}: {first_line(e)}")
                yield item

    def _item(self, index: int, row: dict) -> Record | Skip:
        name = f"row {index}"
        meta = {c: self._named(c, row[c]) for c in _INT_COLUMNS + _TEXT_COLUMNS if c in row}
        columns = nsynth_metadata(meta)
        if "qualities" in row:
            columns["qualities"] = self._qualities(row["qualities"])
        rate = _rate(row.get("sample_rate"))
        try:
            columns["audio"] = fit_length(self._audio(row["audios"], rate), self.num_samples)
        except (DecodeError, ValueError) as e:
            return Skip(name, str(e))
        columns["sample_rate"] = self.sample_rate
        return Record(name, columns)

    def _audio(self, value, rate: int) -> np.ndarray:
        if isinstance(value, (bytes, bytearray)):
            return decode_bytes(bytes(value), self.sample_rate, self.num_samples)
        x = np.asarray(value)
        if x.size == 0:
            raise ValueError("empty audio")
        if x.ndim == 2 and x.shape[0] < x.shape[1] and x.shape[0] <= 8:
            x = x.T  # [channels, samples] -> [samples, channels]
        if x.ndim > 2:
            raise ValueError(f"audio of shape {x.shape}, expected [samples] or [samples, channels]")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise ValueError("audio holds NaN or infinite values")
        return to_mono_pcm16(x, rate, self.sample_rate)

    def _named(self, column: str, value):
        """A class-label index -> the name it stands for, when the column has class_names."""
        names = self.class_names.get(column)
        arr = np.asarray(value).reshape(-1)
        if (
            names
            and arr.size == 1
            and np.issubdtype(arr.dtype, np.integer)
            and 0 <= int(arr[0]) < len(names)
        ):
            return names[int(arr[0])]
        return value

    def _qualities(self, value) -> np.ndarray:
        arr = np.asarray(value).reshape(-1)
        names = self.class_names.get("qualities")
        if names is None and arr.size == len(schema.QUALITIES) and np.isin(arr, (0, 1)).all():
            return arr.astype(np.int8)
        # Otherwise: indices of the qualities present (a v3 class label; empty = none).
        names = names or list(schema.QUALITIES)
        if not (np.issubdtype(arr.dtype, np.integer) and ((arr >= 0) & (arr < len(names))).all()):
            return np.full(len(schema.QUALITIES), schema.UNKNOWN, np.int8)
        present = [names[int(i)] for i in arr]
        if not all(p in schema.QUALITIES for p in present):
            return np.full(len(schema.QUALITIES), schema.UNKNOWN, np.int8)
        return np.array([q in present for q in schema.QUALITIES], np.int8)


def _rate(value) -> int:
    """A row's sample rate, NSynth's 16 kHz when the source does not give a valid one."""
    try:
        rate = int(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return schema.NSYNTH_SAMPLE_RATE
    return rate if rate > 0 else schema.NSYNTH_SAMPLE_RATE


def _class_names(ds, column: str) -> list[str] | None:
    try:
        meta = ds[column].metadata
        names = meta["class_names"] if "class_names" in meta.keys() else None
    except Exception:  # columns without metadata support
        return None
    return [str(n) for n in names] if names else None
