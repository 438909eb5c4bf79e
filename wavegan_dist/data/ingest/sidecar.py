"""The audio-folder format's metadata sidecar (`--metadata`): a CSV or JSON file.

  * CSV: a header row; the key column is named `file` (or `path`, `filename`);
    other columns are named like the schema: note_str, pitch, velocity,
    instrument, instrument_str, instrument_family (index or name, or
    instrument_family_str), instrument_source (likewise), qualities (10 flags
    as `0,1,0,...`, `0 1 0 ...` or `0100000000`) or qualities_str (names
    separated by `,` `;` or `|`). Blank cells mean "not given".
  * JSON: an object mapping key -> {column: value} (NSynth's examples.json has
    this shape), or a list of such objects each with a `file` key.
A key is a path relative to --source (`/`-separated) or a bare file name, with
or without the extension; for each file the first of relpath, relpath without
extension, file name, file name without extension that is a key is used.
Values a sidecar gives override what the file name gives. A value that cannot be
understood (pitch "high", family "kazoo") is an error naming it, not a guess.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import re

from wavegan_dist.data import schema
from wavegan_dist.data.ingest.records import METADATA_COLUMNS, nsynth_metadata
from wavegan_dist.errors import UserError, first_line

_KEY_COLUMNS = ("file", "path", "filename")
# Which schema column each recognised sidecar field fills.
_FIELDS = {c: c for c in METADATA_COLUMNS if c != "sample_rate"}
_FIELDS.update(
    instrument_family_str="instrument_family",
    instrument_source_str="instrument_source",
    qualities_str="qualities",
)


def _normal_key(key: str) -> str:
    key = str(key).strip().replace("\\", "/")
    return key[2:] if key.startswith("./") else key


def _parse_qualities(value):
    """A CSV qualities cell -> a list of ints (or the value unchanged if not a string)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if re.fullmatch(r"[01]{%d}" % len(schema.QUALITIES), text):
        return [int(ch) for ch in text]
    return [int(t) for t in re.findall(r"-?\d+", text)] or text


def _columns(raw: dict, where: str) -> dict:
    """One sidecar entry -> {schema column: value} for the fields it gives."""
    given = {
        k: v
        for k, v in raw.items()
        if k in _FIELDS and v is not None and not (isinstance(v, str) and not v.strip())
    }
    if "qualities" in given:
        given["qualities"] = _parse_qualities(given["qualities"])
    parsed = nsynth_metadata(given)
    out = {}
    for key in given:
        col = _FIELDS[key]
        value = parsed[col]
        bad = (value == schema.UNKNOWN).any() if col == "qualities" else value == schema.UNKNOWN
        if bad:
            raise UserError(
                f"metadata sidecar {where}: cannot read {key}={given[key]!r}; "
                "`python -m wavegan_dist.ingest --help` lists the accepted values"
            )
        out[col] = value
    return out


def load_sidecar(path: str) -> dict[str, dict]:
    """Reads a sidecar file.

    Args:
      path: a .csv or .json file.
    Returns:
      {normalised key: {schema column: value}} with only the fields given.
      Raises UserError if the file is missing or malformed.
    """
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if path.lower().endswith(".json"):
                data = json.load(f)
                entries = _json_entries(data, path)
            else:
                entries = _csv_entries(csv.DictReader(f), path)
    except OSError as e:
        raise UserError(f"cannot read --metadata={path}: {e.strerror or e}") from e
    except (ValueError, csv.Error) as e:
        raise UserError(
            f"--metadata={path} is not valid "
            f"{'JSON' if path.lower().endswith('.json') else 'CSV'}: "
            f"{first_line(e)}"
        ) from e
    return {_normal_key(k): _columns(v, f"{path} [{k}]") for k, v in entries}


def _json_entries(data, path: str) -> list[tuple[str, dict]]:
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        return list(data.items())
    if isinstance(data, list) and all(isinstance(v, dict) and "file" in v for v in data):
        return [(v["file"], v) for v in data]
    raise UserError(
        f"--metadata={path}: expected a JSON object of file -> metadata objects, "
        'or a list of objects each with a "file" key'
    )


def _csv_entries(reader: csv.DictReader, path: str) -> list[tuple[str, dict]]:
    header = reader.fieldnames or []
    key = next((c for c in _KEY_COLUMNS if c in header), None)
    if key is None:
        raise UserError(
            f"--metadata={path}: the CSV needs a column named "
            f"{' or '.join(_KEY_COLUMNS)} holding the audio file names; "
            f"has {', '.join(header) or 'no header'}"
        )
    return [(row[key], row) for row in reader if (row.get(key) or "").strip()]


def lookup(sidecar: dict[str, dict], relpath: str) -> dict:
    """The sidecar columns for a file at `relpath` (relative to the source, `/`-separated),
    {} if no key matches."""
    name = posixpath.basename(relpath)
    for key in (relpath, os.path.splitext(relpath)[0], name, os.path.splitext(name)[0]):
        if key in sidecar:
            return sidecar[key]
    return {}
