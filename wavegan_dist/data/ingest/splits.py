"""Held-out splits of an audio folder (`--valid_fraction`, `--test_fraction`).

With either fraction above 0, --dest becomes a folder of datasets `train`,
`valid` (and `test`), the layout `--data=<dest>` reads at <dest>/<split>.
Files are held out by instrument where the metadata names one (the sidecar's
or the file name's instrument_str, else its instrument id), as NSynth holds out
instruments, so no instrument has notes on both sides; files with no known
instrument are held out one by one. The groups (instruments or files) are
ordered by a SHA-1 hash of their name; the first round(fraction x groups) of
them (at least 1) go to valid, the next ones to test, the rest to train. The
choice depends only on the file list and metadata, so a re-run puts every file
in the same split; each split is its own resumable ingest.
"""

from __future__ import annotations

import dataclasses
import hashlib

from wavegan_dist.data import schema
from wavegan_dist.data.ingest.runner import check_args, identity_of, ingest_reader, make_reader
from wavegan_dist.errors import UserError, first_line

SPLITS = ("train", "valid", "test")


def group_key(columns: dict, name: str) -> str:
    """The unit a file is held out with: "instrument:<instrument_str or id>" when the
    metadata `columns` name an instrument, else "file:<name>"."""
    if columns.get("instrument_str"):
        return f"instrument:{columns['instrument_str']}"
    if columns.get("instrument", schema.UNKNOWN) != schema.UNKNOWN:
        return f"instrument:{int(columns['instrument'])}"
    return f"file:{name}"


def assign_groups(keys: list[str], valid_fraction: float, test_fraction: float) -> dict:
    """{group key: split name} by the rule above.

    Args:
      keys: group keys (repeats allowed).
      valid_fraction, test_fraction: shares of the groups to hold out, in [0, 1).
    Returns:
      The split of every key. UserError if there are too few groups to leave
      each requested split and train at least one.
    """
    groups = sorted(set(keys), key=lambda k: (hashlib.sha1(k.encode()).hexdigest(), k))
    counts = [
        max(1, round(f * len(groups))) if f > 0 else 0 for f in (valid_fraction, test_fraction)
    ]
    if sum(counts) >= len(groups):
        raise UserError(
            f"--valid_fraction={valid_fraction:g} and --test_fraction="
            f"{test_fraction:g} need at least {sum(counts) + 1} instruments or files "
            f"to hold out from; the source has {len(groups)}"
        )
    out = {k: "valid" for k in groups[: counts[0]]}
    out.update({k: "test" for k in groups[counts[0] : sum(counts)]})
    out.update({k: "train" for k in groups[sum(counts) :]})
    return out


def split_dest(dest: str, split: str) -> str:
    """The dataset path of one split under --dest (a local folder or a URL)."""
    return dest.rstrip("/") + "/" + split


@dataclasses.dataclass
class SplitReport:
    """What a split ingest did.

    Attributes:
      dest: the folder of split datasets.
      by: how files were held out ("instrument", "file" or "instrument where known, else file").
      groups: {split: number of instruments/files}.
      reports: {split: IngestReport} in train, valid, test order.
    """

    dest: str
    by: str
    groups: dict
    reports: dict

    def lines(self) -> list[str]:
        """The end report as printable lines: each split's report, then one summary line."""
        out = [f"{split}: {line}" for split, r in self.reports.items() for line in r.lines()]
        unit = {"instrument": " instruments", "file": ""}.get(self.by, " groups")
        counts = ", ".join(
            f"{split} {r.rows_total} rows from {r.items_total} files"
            + (f" of {self.groups[split]}{unit}" if unit else "")
            for split, r in self.reports.items()
        )
        out.append(f"held out by {self.by}: {counts}; train with --data={self.dest}")
        return out


def ingest_splits(
    source: str,
    fmt: str,
    dest: str,
    *,
    valid_fraction: float = 0.0,
    test_fraction: float = 0.0,
    sample_rate: int = 16000,
    num_samples: int = 64000,
    chunk_rows: int = 256,
    metadata: str | None = None,
    log=print,
    progress_stream=None,
    workers: int = 2,
) -> SplitReport:
    """Ingests an audio folder into <dest>/train, <dest>/valid (and <dest>/test).

    Args:
      source, fmt, dest, sample_rate, num_samples, chunk_rows, metadata, log,
        progress_stream, workers: as for ingest(); fmt must be "audio-folder" and
        dest a folder or URL to hold the split datasets (not itself a dataset).
      valid_fraction, test_fraction: shares of the instruments/files held out,
        each in [0, 1), together below 1, at least one above 0.
    Returns:
      A SplitReport. Raises UserError as ingest() does, for each split
      separately (splits already complete stay complete).
    """
    check_args(source, fmt, dest, sample_rate, num_samples, chunk_rows, metadata)
    _check_fractions(fmt, valid_fraction, test_fraction)
    reader = make_reader(fmt, source, sample_rate, num_samples, metadata, dest, workers)
    _refuse_a_dataset(dest)
    keys = {
        rel: group_key(reader.metadata_for(rel), name)
        for rel, name in zip(reader.files, reader.item_names())
    }
    split_of = assign_groups(list(keys.values()), valid_fraction, test_fraction)
    kinds = {k.split(":", 1)[0] for k in keys.values()}
    by = (
        "instrument"
        if kinds == {"instrument"}
        else "file"
        if kinds == {"file"}
        else "instrument where known, else file"
    )
    wanted = [s for s, f in zip(SPLITS, (1.0, valid_fraction, test_fraction)) if f > 0]
    identity = dict(
        identity_of(reader, metadata, sample_rate, num_samples),
        fractions=[valid_fraction, test_fraction],
    )
    reports, groups = {}, {}
    for split in wanted:
        part = reader.only([rel for rel in reader.files if split_of[keys[rel]] == split])
        groups[split] = sum(1 for s in split_of.values() if s == split)
        reports[split] = ingest_reader(
            part,
            split_dest(dest, split),
            dict(identity, split=split),
            chunk_rows,
            lambda message, split=split: log(f"{split}: {message}"),
            progress_stream,
        )
    return SplitReport(dest, by, groups, reports)


def _check_fractions(fmt: str, valid_fraction: float, test_fraction: float) -> None:
    if fmt != "audio-folder":
        raise UserError(
            "--valid_fraction and --test_fraction apply to --format=audio-folder "
            "only (NSynth's releases come split: ingest each split to <dest>/<split>)"
        )
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise UserError(f"--{name} must be at least 0 and below 1; got {value:g}")
    if valid_fraction + test_fraction >= 1:
        raise UserError(
            f"--valid_fraction + --test_fraction must be below 1 (the rest is "
            f"train); got {valid_fraction + test_fraction:g}"
        )
    if valid_fraction == test_fraction == 0:
        raise UserError("give --valid_fraction or --test_fraction above 0 to split")


def _refuse_a_dataset(dest: str) -> None:
    import deeplake

    try:
        exists = deeplake.exists(dest)
    except Exception as e:
        raise UserError(f"cannot reach --dest={dest}: {first_line(e)}") from e
    if exists:
        raise UserError(
            f"--dest={dest} is a dataset; with --valid_fraction or --test_fraction "
            "it must be a folder to hold the train, valid and test datasets: choose "
            "another --dest"
        )
