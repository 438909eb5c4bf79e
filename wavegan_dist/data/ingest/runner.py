"""`ingest()`: one source -> one deeplake NSynth dataset, resumable, with a report."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time

from wavegan_dist.data.ingest.progress import ProgressDisplay
from wavegan_dist.data.ingest.dest import open_dest
from wavegan_dist.data.ingest.records import safe_text
from wavegan_dist.data.ingest.writer import ChunkWriter
from wavegan_dist.errors import UserError, first_line

FORMATS = ("nsynth-jsonwav", "nsynth-tfrecord", "audio-folder", "deeplake-v3")
# What each format reads, for the error of an ingest that found no readable item.
FORMAT_READS = {
    "nsynth-jsonwav": "NSynth's json/wav folder (examples.json and audio/<note_str>.wav)",
    "nsynth-tfrecord": "TFRecord files of NSynth tf.train.Example records",
    "audio-folder": "a folder of wav / flac / ogg / mp3 files",
    "deeplake-v3": "a deeplake dataset with NSynth's v3 columns (audios, pitch, ...)",
}
_REASONS_SHOWN = 3


@dataclasses.dataclass
class IngestReport:
    """What an ingest run did.

    Attributes:
      dest, source, format: as given (source as recorded: absolute for local paths).
      rows_written: rows this run appended.
      rows_total: rows in the dataset now.
      items_total: items (files, records, rows) in the source.
      items_this_run: items this run consumed (0 if already complete).
      resumed_from: items an earlier, interrupted run had already done.
      skipped: (name, reason) of every skipped item, earlier runs included.
      seconds: wall time of this run.
      already_complete: the dataset was complete before this run; nothing was done.
    """

    dest: str
    source: str
    format: str
    rows_written: int
    rows_total: int
    items_total: int
    items_this_run: int
    resumed_from: int
    skipped: list
    seconds: float
    already_complete: bool = False

    @property
    def files_per_s(self) -> float:
        """Source items consumed per second in this run."""
        return self.items_this_run / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The end report as printable lines."""
        if self.already_complete:
            out = [
                f"{self.dest} is already complete: {self.rows_total} rows from "
                f"{self.format} {self.source}; nothing to do"
            ]
        else:
            out = [
                f"done: wrote {self.rows_written} rows in {self.seconds:.1f} s "
                f"({self.files_per_s:.1f} files/s); {self.dest} holds {self.rows_total} rows "
                f"from {self.items_total} source items"
                + (f" (resumed after {self.resumed_from})" if self.resumed_from else "")
            ]
        out.append(f"skipped {len(self.skipped)} item(s)" + (":" if self.skipped else ""))
        out.extend(f"  {name}: {reason}" for name, reason in self.skipped)
        return out


def check_args(source, fmt, dest, sample_rate, num_samples, chunk_rows, metadata) -> None:
    """UserError unless the arguments of ingest() are usable (before touching anything)."""
    if not source:
        raise UserError("--source is required: the folder, file or dataset to ingest")
    if fmt not in FORMATS:
        raise UserError(f"--format={fmt or '(none)'} is not one of {', '.join(FORMATS)}")
    if not dest:
        raise UserError("--dest is required: where to write the deeplake dataset")
    for name, value in (
        ("sample_rate", sample_rate),
        ("num_samples", num_samples),
        ("chunk_rows", chunk_rows),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"--{name} must be a positive integer; got {value!r}")
    if metadata and fmt != "audio-folder":
        raise UserError("--metadata applies to --format=audio-folder only")


def _convert_dir(dest: str) -> str:
    """Where a v3 source is migrated: beside a local dest, else in the temp folder."""
    local = dest[len("file://") :] if dest.startswith("file://") else dest
    if "://" not in local:
        return os.path.abspath(local).rstrip(os.sep) + ".v3-convert"
    digest = hashlib.sha1(dest.encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"wavegan_dist-v3-{digest}")


def make_reader(
    fmt: str,
    source: str,
    sample_rate: int,
    num_samples: int,
    metadata: str | None = None,
    dest: str = "",
    workers: int = 2,
):
    """The reader for `fmt` (checks the source exists and is of that kind; UserError if not).
    Readers have `source_id`, `count()` and `read(start)`; some have prepare()/cleanup()."""
    if fmt == "nsynth-jsonwav":
        from wavegan_dist.data.ingest.nsynth_jsonwav import NSynthJsonWavReader

        return NSynthJsonWavReader(source, sample_rate, num_samples, workers=workers)
    if fmt == "nsynth-tfrecord":
        from wavegan_dist.data.ingest.nsynth_tfrecord import NSynthTFRecordReader

        return NSynthTFRecordReader(source, sample_rate, num_samples)
    if fmt == "audio-folder":
        from wavegan_dist.data.ingest.audio_folder import AudioFolderReader

        return AudioFolderReader(source, sample_rate, num_samples, metadata, workers=workers)
    from wavegan_dist.data.ingest.deeplake_v3 import DeeplakeV3Reader

    return DeeplakeV3Reader(source, sample_rate, num_samples, _convert_dir(dest))


def source_digest(reader) -> str:
    """16 hex digits identifying a reader's item list (names in order); a resume with a
    different digest is refused, as its item positions would no longer line up."""
    names = "\n".join(safe_text(name) for name in reader.item_names())
    return hashlib.sha1(names.encode()).hexdigest()[:16]


def ingest(
    source: str,
    fmt: str,
    dest: str,
    *,
    sample_rate: int = 16000,
    num_samples: int = 64000,
    chunk_rows: int = 256,
    metadata: str | None = None,
    log=print,
    progress_stream=None,
    workers: int = 2,
) -> IngestReport:
    """Builds (or resumes, or confirms) the NSynth-schema dataset `dest` from `source`.

    Args:
      source: folder, file or dataset path of the given format.
      fmt: one of FORMATS.
      dest: deeplake path of the dataset to write.
      sample_rate: Hz of the stored audio (sources at other rates are resampled).
      num_samples: stored length per row (longer audio cut, shorter zero-padded).
      chunk_rows: rows per committed chunk (the most a kill can cost).
      metadata: audio-folder only: a CSV/JSON sidecar with per-file metadata.
      log: called with one-line messages.
      progress_stream: where the progress display goes (default stderr).
      workers: decode threads for the file-based formats.
    Returns:
      An IngestReport. Raises UserError for bad arguments, a bad source, a dest
      that is unwritable or holds something else, or a source that gave no row.
    """
    check_args(source, fmt, dest, sample_rate, num_samples, chunk_rows, metadata)
    reader = make_reader(fmt, source, sample_rate, num_samples, metadata, dest, workers)
    return ingest_reader(
        reader,
        dest,
        identity_of(reader, metadata, sample_rate, num_samples),
        chunk_rows,
        log,
        progress_stream,
    )


def identity_of(reader, metadata: str | None, sample_rate: int, num_samples: int) -> dict:
    """What a dest written from `reader` is an ingest of (kept in the dataset; a re-run
    must give the same): {"source", "format", "metadata", "sample_rate", "num_samples"}."""
    return {
        "source": safe_text(reader.source_id),
        "format": reader.format,
        "metadata": safe_text(os.path.realpath(metadata)) if metadata else "",
        "sample_rate": sample_rate,
        "num_samples": num_samples,
    }


def ingest_reader(
    reader, dest: str, identity: dict, chunk_rows: int, log, progress_stream=None
) -> IngestReport:
    """Writes (or resumes, or confirms) `dest` from an already made reader.

    Args:
      reader: from make_reader (or a subset of one).
      dest: deeplake path of the dataset to write.
      identity: from identity_of (plus any keys that tell datasets of one source apart).
      chunk_rows, log, progress_stream: as for ingest().
    Returns:
      An IngestReport. Raises UserError as ingest() does, and when the source gave
      no row at all: the dataset is then deleted, so that nothing blocks a re-run
      with a corrected --source or --format.
    """
    t0 = time.monotonic()
    ds, state, lock = open_dest(dest, identity, log)
    try:
        start, done_before = state.items_done, state.complete
        rows_written = (
            0 if done_before else _write_items(reader, ds, state, chunk_rows, log, progress_stream)
        )
        if len(ds) == 0:
            del ds
            lock.release()
            _delete_empty(dest)
            raise UserError(_no_rows_message(identity["format"], state, dest))
        return IngestReport(
            dest=dest,
            source=identity["source"],
            format=identity["format"],
            rows_written=rows_written,
            rows_total=len(ds),
            items_total=state.items_total,
            items_this_run=state.items_done - start if not done_before else 0,
            resumed_from=start,
            skipped=[tuple(s) for s in state.skipped],
            seconds=time.monotonic() - t0,
            already_complete=done_before,
        )
    finally:
        lock.release()


def _delete_empty(dest: str) -> None:
    import deeplake

    try:
        deeplake.delete(dest)
    except Exception as e:
        raise UserError(
            f"no rows were written, and the empty dataset at --dest={dest} could not "
            f"be deleted ({first_line(e)}); delete it by hand"
        ) from e


def _no_rows_message(fmt: str, state, dest: str) -> str:
    """The one-line error of an ingest that wrote no row: counts, the first reasons, and
    what the format reads."""
    skipped = state.skipped
    if not skipped:
        what = "the source holds no items"
    else:
        shown = "; ".join(f"{name}: {reason}" for name, reason in skipped[:_REASONS_SHOWN])
        more = (
            f"; and {len(skipped) - _REASONS_SHOWN} more" if len(skipped) > _REASONS_SHOWN else ""
        )
        what = f"all {len(skipped)} source item(s) were skipped ({shown}{more})"
    return (
        f"no rows written: {what}; --format={fmt} reads {FORMAT_READS[fmt]}: check --format "
        f"and --source; the empty dataset was deleted, so --dest={dest} is free for the next "
        "run"
    )


def _write_items(reader, ds, state, chunk_rows: int, log, progress_stream) -> int:
    """Feeds the reader's items from state.items_done on into ds; returns rows written."""
    start = state.items_done
    if start:
        log(f"resuming: {start} source items ({state.rows} rows) were already committed")
    if hasattr(reader, "prepare"):
        reader.prepare(log)
    total = reader.count()
    digest = source_digest(reader)
    if state.digest and state.digest != digest:
        raise UserError(
            "the source's list of items has changed since the interrupted run "
            f"({state.items_done} of them were already ingested); restore it, or "
            "use a new --dest"
        )
    state.digest, state.items_total = digest, total
    unmatched = reader.unmatched_sidecar_keys() if hasattr(reader, "unmatched_sidecar_keys") else []
    if unmatched:
        log(f"note: {len(unmatched)} --metadata key(s) match no audio file, e.g. {unmatched[0]}")
    log(
        f"ingesting {total - start} of {total} items from {reader.format} "
        f"{state.identity['source']}"
    )
    writer = ChunkWriter(ds, state, chunk_rows)
    display = ProgressDisplay(total, start, progress_stream)
    for item in reader.read(start):
        writer.add(item)
        if display.due():
            display.show(writer.items_seen, writer.rows, writer.skipped_total)
    writer.commit(complete=True, items_total=total)
    display.show(writer.items_seen, writer.rows, writer.skipped_total)
    display.close()
    if hasattr(reader, "cleanup"):
        reader.cleanup()
    return writer.rows_written
