"""Row selection: the metadata filters and named subsets, applied once to a list of rows.

Filters read only the small metadata columns (one columnar read each), never audio,
and produce the int64 row indices that the input pipeline then draws from. Each
filter is applied in turn so that an empty result can name the filter that
emptied it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from wavegan_dist.data import schema
from wavegan_dist.errors import UserError

# GANSynth's subset (Engel et al. 2019): acoustic instruments, MIDI pitch 24-84.
# Magenta's published loader filters instrument_source == 1 by mistake; the paper's
# subset is source 0 (acoustic).
SUBSETS = {
    "all": {},
    "gansynth": dict(instrument_source=(0,), pitch_min=24, pitch_max=84),
}


@dataclasses.dataclass(frozen=True)
class RowFilter:
    """Which rows to train on. Empty tuples and None mean "no constraint".

    Attributes:
      instrument_source: allowed source ids (0 acoustic, 1 electronic, 2 synthetic).
      instrument_family: allowed family ids (schema.FAMILIES order).
      pitch_min, pitch_max: inclusive MIDI pitch bounds.
      velocity: allowed velocities.
      num_samples: keep only the first N rows of the dataset (0 = all), applied
        first, like the original code's ds[:num_samples].
    """

    instrument_source: tuple = ()
    instrument_family: tuple = ()
    pitch_min: int | None = None
    pitch_max: int | None = None
    velocity: tuple = ()
    num_samples: int = 0

    @classmethod
    def from_options(cls, subset: str = "all", **options) -> "RowFilter":
        """Builds a filter from a named subset plus explicit options, which win.

        Args:
          subset: a key of SUBSETS.
          options: RowFilter fields; None or empty values are ignored.
        """
        if subset not in SUBSETS:
            raise UserError(f"--subset={subset} is not one of {', '.join(SUBSETS)}")
        given = {k: v for k, v in options.items() if v not in (None, (), [], "")}
        fields = {**SUBSETS[subset], **given}
        for key in ("instrument_source", "instrument_family", "velocity"):
            if key in fields:
                fields[key] = tuple(int(v) for v in fields[key])
        return cls(**fields)

    def is_empty(self) -> bool:
        """True when the filter keeps every row."""
        return self == RowFilter(num_samples=self.num_samples)


def select_rows(ds, row_filter: RowFilter, where: str = "dataset") -> np.ndarray:
    """Applies `row_filter` to an open dataset.

    Args:
      ds: a deeplake dataset with the NSynth columns.
      row_filter: the constraints.
      where: the dataset's name, for error messages.
    Returns:
      int64 [N] selected row indices in dataset order. Raises UserError naming
      the filter that leaves no rows.
    """
    total = len(ds)
    count = min(row_filter.num_samples, total) if row_filter.num_samples else total
    if count == 0:
        raise UserError(f"{where} has no rows to train on")
    keep = np.ones(count, bool)

    def column(name: str) -> np.ndarray:
        return np.asarray(ds[name][0:count]).reshape(count)

    checks = []
    if row_filter.instrument_source:
        checks.append(
            (
                f"--instrument_source={_ids(row_filter.instrument_source)}",
                lambda: np.isin(column("instrument_source"), row_filter.instrument_source),
            )
        )
    if row_filter.instrument_family:
        checks.append(
            (
                f"--instrument_family={_ids(row_filter.instrument_family)}",
                lambda: np.isin(column("instrument_family"), row_filter.instrument_family),
            )
        )
    if row_filter.pitch_min is not None or row_filter.pitch_max is not None:
        lo = -np.inf if row_filter.pitch_min is None else row_filter.pitch_min
        hi = np.inf if row_filter.pitch_max is None else row_filter.pitch_max
        checks.append(
            (
                f"pitch in [{row_filter.pitch_min}, {row_filter.pitch_max}]",
                lambda: _between(column("pitch"), lo, hi),
            )
        )
    if row_filter.velocity:
        checks.append(
            (
                f"--velocity={_ids(row_filter.velocity)}",
                lambda: np.isin(column("velocity"), row_filter.velocity),
            )
        )
    for name, mask in checks:
        keep &= mask()
        if not keep.any():
            scope = f"the first {count} rows of {where}" if count < total else where
            raise UserError(
                f"no rows of {scope} pass the filter {name} (with the filters "
                "before it); widen or drop that filter"
            )
    return np.flatnonzero(keep).astype(np.int64)


def _between(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    # UNKNOWN (-1) pitches never pass a pitch bound.
    return (values != schema.UNKNOWN) & (values >= lo) & (values <= hi)


def _ids(values) -> str:
    return ",".join(str(v) for v in values)
