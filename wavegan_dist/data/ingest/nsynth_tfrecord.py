"""NSynth TFRecord files: one `tf.train.Example` per note, audio as 64,000 floats.

Items are the records of the files in sorted name order, one item per record
frame. The frames are found by walking the TFRecord framing (8-byte length,
its masked CRC-32C, data, data CRC) in Python, which only reads 12 bytes per
record, so counting and resuming do not read audio. Corruption is handled per
frame:
  * data CRC mismatch (header fine): that record is skipped, the file goes on;
  * broken length header or a truncated tail: one skip for the rest of the file;
  * a file that cannot be opened: one skip for the file.
Audio floats become int16 by `records.float_to_int16` (x * 32768, rounded).
"""

from __future__ import annotations

import glob
import os
import struct
from typing import Iterator

import numpy as np

from wavegan_dist.data.ingest.audio_decode import tf_error_reason, to_mono_pcm16
from wavegan_dist.data.ingest.records import Record, Skip, fit_length, nsynth_metadata
from wavegan_dist.data.schema import NSYNTH_SAMPLE_RATE
from wavegan_dist.errors import UserError

_INT_KEYS = (
    "note",
    "pitch",
    "velocity",
    "instrument",
    "instrument_family",
    "instrument_source",
    "sample_rate",
    "qualities",
)
_PARSE_BATCH = 64
_TEXT_KEYS = (
    "note_str",
    "instrument_str",
    "instrument_family_str",
    "instrument_source_str",
    "qualities_str",
)


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data` (pure Python: only used on 8-byte headers)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def walk_frames(path: str) -> tuple[list[int], str | None]:
    """The record frames of one TFRecord file, from its headers alone.

    Returns:
      (offsets of the frames whose header is valid and whose data fits in the
      file, a reason if the file ends in a broken or truncated frame else None).
      Raises OSError if the file cannot be read.
    """
    size = os.path.getsize(path)
    offsets, off = [], 0
    with open(path, "rb") as f:
        while off < size:
            f.seek(off)
            header = f.read(12)
            if len(header) < 12:
                return offsets, f"truncated record header at byte {off}"
            length, crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != crc:
                return offsets, f"corrupt record header at byte {off}"
            end = off + 12 + length + 4
            if end > size:
                return offsets, (
                    f"truncated record at byte {off} ({size - off} of {end - off} bytes)"
                )
            offsets.append(off)
            off = end
    return offsets, None


class NSynthTFRecordReader:
    """Reads NSynth TFRecord files (a file, or a folder of `*.tfrecord*`).

    Args:
      source: a TFRecord file or a folder of them (not recursive).
      sample_rate, num_samples: the dataset's rate (Hz) and row length.
    """

    format = "nsynth-tfrecord"

    def __init__(self, source: str, sample_rate: int, num_samples: int):
        if os.path.isfile(source):
            files = [source]
        elif os.path.isdir(source):
            files = sorted(
                p for p in glob.glob(os.path.join(source, "*.tfrecord*")) if os.path.isfile(p)
            )
            if not files:
                raise UserError(f"--source={source}: no *.tfrecord* files in that folder")
        else:
            raise UserError(f"--source={source}: no such file or folder")
        compressed = [p for p in files if p.endswith((".gz", ".zlib"))]
        if compressed:
            raise UserError(
                f"{compressed[0]} is compressed; decompress the TFRecords first "
                "(e.g. gunzip) and point --source at the plain files"
            )
        self.files = [os.path.abspath(p) for p in files]
        self.source_id = os.path.realpath(source)
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self._plan = None

    def _frames(self) -> list[tuple[str, int | None, str | None]]:
        """Every item as (file, frame offset or None, reason if the item is a skip)."""
        if self._plan is None:
            plan = []
            for path in self.files:
                try:
                    offsets, broken = walk_frames(path)
                except OSError as e:
                    plan.append((path, None, f"cannot read file ({e.strerror or e})"))
                    continue
                plan.extend((path, off, None) for off in offsets)
                if broken:
                    plan.append((path, None, broken + "; rest of file skipped"))
            self._plan = plan
        return self._plan

    def count(self) -> int:
        """Number of items (record frames, plus one per broken file or tail)."""
        return len(self._frames())

    def item_names(self) -> list[str]:
        """The items in order (file, byte offset), to notice a changed source on resume."""
        return [f"{os.path.basename(p)}:{off}:{reason or ''}" for p, off, reason in self._frames()]

    def read(self, start: int = 0) -> Iterator[Record | Skip]:
        """Yields one Record or Skip per item, from item index `start` on."""
        import tensorflow as tf

        from wavegan_dist.private_apis import tfrecord_reader  # reads on past a bad record

        readers, index, batch = {}, {}, []
        for i, (path, off, reason) in enumerate(self._frames()):
            index[path] = index.get(path, -1) + 1
            if i < start:
                continue
            name = f"{os.path.basename(path)}#{index[path]}"
            if off is None:
                batch.append(
                    Skip(name if "rest of file" in reason else os.path.basename(path), reason)
                )
            else:
                try:
                    if path not in readers:
                        readers.clear()  # one open file at a time
                        readers[path] = tfrecord_reader(path)
                    batch.append((name, readers[path](off)))
                except (tf.errors.OpError, OSError, IndexError) as e:
                    batch.append(Skip(name, f"unreadable record ({tf_error_reason(e)})"))
            if len(batch) >= _PARSE_BATCH:
                yield from self._parse_batch(batch, tf)
                batch = []
        yield from self._parse_batch(batch, tf)

    def _parse_batch(self, batch: list, tf) -> list[Record | Skip]:
        """Skips and (name, serialized Example) pairs -> Records/Skips in the same order.
        Parsing a batch at once costs about what one record costs alone."""
        raw = [b for b in batch if not isinstance(b, Skip)]
        if not raw:
            return batch
        try:
            parsed = tf.io.parse_example([data for _, data in raw], _spec(tf))
        except tf.errors.OpError as e:
            if len(raw) == 1:
                return [
                    Skip(raw[0][0], f"not an NSynth tf.train.Example ({tf_error_reason(e)})")
                    if b is raw[0]
                    else b
                    for b in batch
                ]
            # One bad record fails the batch: parse one by one to find it.
            return [r for b in batch for r in self._parse_batch([b], tf)]
        columns = {k: (v.values.numpy(), v.row_splits.numpy()) for k, v in parsed.items()}
        records = iter(
            [
                self._record(
                    name, {k: vals[sp[j] : sp[j + 1]] for k, (vals, sp) in columns.items()}
                )
                for j, (name, _) in enumerate(raw)
            ]
        )
        return [b if isinstance(b, Skip) else next(records) for b in batch]

    def _record(self, name: str, values: dict) -> Record | Skip:
        audio = values.pop("audio")
        if audio.size == 0:
            return Skip(name, "record has no audio")
        if not np.isfinite(audio).all():
            return Skip(name, "audio holds NaN or infinite values")
        meta = {k: v for k, v in values.items() if v.size}
        columns = nsynth_metadata(meta)
        given = meta.get("sample_rate")
        # A record without a rate is taken to be at NSynth's 16 kHz, as every NSynth record is.
        rate = int(given[0]) if given is not None and given[0] > 0 else NSYNTH_SAMPLE_RATE
        columns["sample_rate"] = self.sample_rate
        columns["audio"] = fit_length(
            to_mono_pcm16(audio, rate, self.sample_rate), self.num_samples
        )
        return Record(name, columns)


def _spec(tf) -> dict:
    """Every NSynth key as a ragged feature, so a missing key parses as empty."""
    spec = {k: tf.io.RaggedFeature(tf.int64) for k in _INT_KEYS}
    spec.update({k: tf.io.RaggedFeature(tf.string) for k in _TEXT_KEYS})
    spec["audio"] = tf.io.RaggedFeature(tf.float32)
    return spec
