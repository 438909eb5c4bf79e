"""The NSynth column schema every wavegan_dist dataset uses, and a check for it.

A dataset is a deeplake v4 dataset with one row per note. Audio is stored as
fixed-length 16-bit PCM (`int16[num_samples]`), which deeplake reads back as a
numpy array in one columnar slice; the sample rate is both a column (NSynth has
it per note) and `ds.metadata["sample_rate"]` (one value for the whole set).
"""

from __future__ import annotations

import deeplake
import numpy as np

# Re-exported: the vocabularies live in names.py (no deeplake), schema users find them here.
from wavegan_dist.data.names import (
    FAMILIES as FAMILIES,
    LABEL_CLASSES as LABEL_CLASSES,
    QUALITIES as QUALITIES,
    SOURCES as SOURCES,
    SPLITS as SPLITS,
    UNKNOWN as UNKNOWN,
    VELOCITIES as VELOCITIES,
)
from wavegan_dist.errors import UserError

NSYNTH_SAMPLE_RATE = 16000
NSYNTH_NUM_SAMPLES = 64000  # 4 s at 16 kHz
PCM_SCALE = 1.0 / 32768.0  # stored int16 PCM -> float in [-1, 1)

# Column name -> numpy dtype of what a read returns ("text" for strings).
COLUMNS = {
    "audio": np.int16,  # [num_samples] PCM
    "note_str": "text",
    "pitch": np.int32,  # MIDI 0-127
    "velocity": np.int32,
    "instrument": np.int32,
    "instrument_str": "text",
    "instrument_family": np.int32,  # index into FAMILIES
    "instrument_source": np.int32,  # index into SOURCES
    "qualities": np.int8,  # [10] flags in QUALITIES order
    "sample_rate": np.int32,
}


def create_nsynth_dataset(
    path: str, num_samples: int = NSYNTH_NUM_SAMPLES, sample_rate: int = NSYNTH_SAMPLE_RATE
) -> deeplake.Dataset:
    """Creates an empty deeplake dataset at `path` with the NSynth columns.

    Args:
      path: a deeplake path (local folder, file://, s3://, ...). Must not exist.
      num_samples: fixed audio length per row, in samples.
      sample_rate: Hz, recorded in the dataset metadata.
    Returns:
      The open, writable dataset (uncommitted).
    """
    t = deeplake.types
    ds = deeplake.create(path)
    ds.add_column("audio", t.Array("int16", shape=[num_samples]))
    ds.add_column("note_str", t.Text())
    ds.add_column("pitch", t.Int32())
    ds.add_column("velocity", t.Int32())
    ds.add_column("instrument", t.Int32())
    ds.add_column("instrument_str", t.Text())
    ds.add_column("instrument_family", t.Int32())
    ds.add_column("instrument_source", t.Int32())
    ds.add_column("qualities", t.Array("int8", shape=[len(QUALITIES)]))
    ds.add_column("sample_rate", t.Int32())
    ds.metadata["sample_rate"] = int(sample_rate)
    ds.metadata["num_samples"] = int(num_samples)
    ds.metadata["schema"] = "nsynth/wavegan_dist-1"
    return ds


def audio_length(ds) -> int:
    """Stored samples per row of the dataset's fixed-length `audio` column."""
    return int(ds.schema["audio"].dtype.shape[0])


def check_schema(ds, where: str) -> None:
    """Raises UserError naming what is missing if `ds` lacks the NSynth columns.

    Args:
      ds: an open deeplake dataset.
      where: the path, for the message.
    """
    names = {c.name for c in ds.schema.columns}
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise UserError(
            f"dataset {where} is not in the NSynth schema: missing column(s) "
            f"{', '.join(missing)} (has {', '.join(sorted(names)) or 'none'}); "
            "build one with `python -m wavegan_dist.ingest` or use --data=builtin"
        )
    audio_dtype = str(ds.schema["audio"].dtype)
    if "int16" not in audio_dtype or "shape" not in audio_dtype:
        raise UserError(
            f"dataset {where}: column 'audio' is {audio_dtype}, expected fixed-length "
            "int16 PCM (array(dtype=int16, shape=(N)))"
        )
