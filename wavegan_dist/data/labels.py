"""Conditioning labels of the selected rows (pitch or instrument family)."""

from __future__ import annotations

import dataclasses

import numpy as np

from wavegan_dist.data import schema
from wavegan_dist.data.source import DataSource
from wavegan_dist.errors import UserError


def attach_labels(
    source: DataSource, condition: str, log=print
) -> tuple[DataSource, np.ndarray | None]:
    """Reads the label of every selected row and drops rows that have none.

    Args:
      source: the opened dataset and its selected rows.
      condition: "none", or a key of schema.LABEL_CLASSES ("pitch", "instrument_family").
      log: told how many rows were dropped, if any.
    Returns:
      (source, labels): for "none", the source unchanged and None; otherwise a source
      whose rows all carry a usable label and int32 [len(rows)] labels in
      [0, LABEL_CLASSES[condition]). Raises UserError if no row has one.
    """
    if condition == "none":
        return source, None
    classes = schema.LABEL_CLASSES[condition]
    # One range read of the small metadata column beats a scattered row list.
    stored = np.asarray(source.dataset[condition][0 : int(source.rows.max()) + 1]).reshape(-1)
    values = stored[source.rows]
    usable = (values >= 0) & (values < classes)
    if not usable.any():
        raise UserError(
            f"--condition={condition}: none of the {len(values)} selected rows of "
            f"{source.path} has a {condition} in [0, {classes}); train without "
            "--condition or on a dataset with that metadata"
        )
    if not usable.all():
        log(
            f"--condition={condition}: left out {int((~usable).sum())} row(s) without a "
            f"known {condition}"
        )
    return (dataclasses.replace(source, rows=source.rows[usable]), values[usable].astype(np.int32))


def label_counts(labels: np.ndarray, condition: str) -> np.ndarray:
    """How often each class occurs: int64 [LABEL_CLASSES[condition]]."""
    return np.bincount(labels, minlength=schema.LABEL_CLASSES[condition]).astype(np.int64)
