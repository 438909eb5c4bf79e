"""An NSynth-sized local dataset for measuring input speed at scale
(`python -m wavegan_dist.bench make-nsynth-size --dest=DIR [--rows=N]`).

NSynth's training split in NSynth's schema and order: 289,205 notes of 64,000
int16 samples (about 37 GB), sorted by instrument (about 290 notes each, every
pitch of a range at NSynth's five velocities, in note_str order), instruments
spread over the 11 families roughly as NSynth's notes are. The metadata is what
batch diversity is measured on (instrument ids, families, sources, pitches,
velocities); the audio only has to be the right size and not trivially
compressible: each family synthesizes a small bank of notes once
(data/synth.py), and every note is one of them, rolled by its pitch and scaled
by its velocity. Rows are appended and committed in large chunks.
"""

from __future__ import annotations

import math
import os

import numpy as np

from wavegan_dist.data import schema
from wavegan_dist.data.synth import family_pitches, synthesize_note
from wavegan_dist.errors import UserError

NSYNTH_TRAIN_ROWS = 289_205
NOTES_PER_INSTRUMENT = NSYNTH_TRAIN_ROWS / 1000  # about 1,000 instruments at full size
# Approximate share of NSynth's training notes per family (FAMILIES order).
FAMILY_SHARE = (0.226, 0.044, 0.030, 0.113, 0.179, 0.118, 0.119, 0.048, 0.067, 0.019, 0.035)
SOURCE_SHARE = (0.33, 0.24, 0.43)  # acoustic, electronic, synthetic (approximate)
MAX_NOTES = 88 * len(schema.VELOCITIES)  # a piano's range at every velocity
BANK = 8  # synthesized notes per family
CHUNK_ROWS = 2048  # rows per append + commit (256 MB of audio)


def plan_instruments(rows: int, seed: int = 0) -> list[dict]:
    """The instruments of a `rows`-note set, in instrument order, with their note counts.

    Returns:
      [{"instrument", "family", "source", "name", "notes", "low_pitch"}] in id order
      (which is name order), counts summing to `rows`, about NOTES_PER_INSTRUMENT each
      (at least 1).
    """
    # Enough instruments that none has more notes than MAX_NOTES (distinct pitch/velocity).
    count = max(
        1,
        min(rows, max(round(rows / NOTES_PER_INSTRUMENT), math.ceil(1.5 * rows / (MAX_NOTES - 5)))),
    )
    rng = np.random.default_rng([seed, 15])
    families = rng.choice(len(schema.FAMILIES), count, p=np.array(FAMILY_SHARE) / sum(FAMILY_SHARE))
    sources = rng.choice(len(schema.SOURCES), count, p=SOURCE_SHARE)
    # Note counts vary per instrument (NSynth's range from a few to about 400).
    weights = rng.uniform(0.5, 1.5, count)
    notes = np.maximum(1, np.floor(weights / weights.sum() * rows)).astype(np.int64)
    notes[: max(0, rows - notes.sum())] += 1  # floor left fewer than `count` short
    while notes.sum() > rows:  # rounding up to 1 overshot: take back from the largest
        notes[np.argmax(notes)] -= 1
    per_name: dict[tuple[int, int], int] = {}
    out = []
    for ident in range(count):
        fam, src = int(families[ident]), int(sources[ident])
        number = per_name.get((fam, src), 0)
        per_name[(fam, src)] = number + 1
        lo, hi = family_pitches(fam)
        span = math.ceil(notes[ident] / len(schema.VELOCITIES))
        top = 128 - span  # the highest low pitch that keeps every pitch <= 127
        low_min = min(lo, top)
        low = int(rng.integers(low_min, max(low_min, min(hi - span + 1, top)) + 1))
        out.append(
            dict(
                family=fam,
                source=src,
                notes=int(notes[ident]),
                name=f"{schema.FAMILIES[fam]}_{schema.SOURCES[src]}_{number:03d}",
                low_pitch=low,
            )
        )
    # Ids in name order, so rows sorted by instrument are also sorted by note_str.
    out.sort(key=lambda inst: inst["name"])
    for ident, inst in enumerate(out):
        inst["instrument"] = ident
    return out


def instrument_notes(inst: dict) -> list[tuple[int, int]]:
    """(pitch, velocity) of an instrument's notes in note_str order: pitches upwards from
    its low pitch, each at NSynth's velocities, as many as it has notes."""
    return [
        (
            inst["low_pitch"] + k // len(schema.VELOCITIES),
            schema.VELOCITIES[k % len(schema.VELOCITIES)],
        )
        for k in range(inst["notes"])
    ]


def _banks(seed: int) -> list[np.ndarray]:
    """BANK synthesized float32 notes [BANK, 64000] per family, at velocity 127."""
    banks = []
    for fam in range(len(schema.FAMILIES)):
        lo, hi = family_pitches(fam)
        pitches = np.linspace(lo, hi, BANK).round().astype(int)
        banks.append(
            np.stack(
                [
                    synthesize_note(int(p), 127, fam, seed * 1000 + fam * BANK + k)
                    for k, p in enumerate(pitches)
                ]
            ).astype(np.float32)
        )
    return banks


def _audio(banks, inst: dict, notes: list[tuple[int, int]]) -> np.ndarray:
    """int16 [len(notes), 64000]: a bank note per (instrument, pitch), rolled and scaled."""
    out = np.empty((len(notes), schema.NSYNTH_NUM_SAMPLES), np.int16)
    bank = banks[inst["family"]]
    for i, (pitch, velocity) in enumerate(notes):
        note = bank[(inst["instrument"] + pitch) % BANK]
        shift = (pitch * 131 + inst["instrument"] * 17) % 4000  # attack moved a little
        out[i] = np.roll(note, shift) * (32767.0 * velocity / 127)
    return out


def make_dataset(dest: str, rows: int = NSYNTH_TRAIN_ROWS, seed: int = 0, log=print) -> dict:
    """Writes the NSynth-sized dataset at `dest` (a new local folder).

    Args:
      dest: folder to create; must not exist or be empty.
      rows: notes to write (default NSynth's training split).
      seed: the instruments, counts and audio bank.
      log: one-line progress messages.
    Returns:
      {"path", "rows", "instruments", "bytes_of_audio"}.
    """
    if rows < 1:
        raise UserError(f"--rows={rows} must be at least 1")
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise UserError(f"--dest={dest} exists and is not an empty folder; give a new one")
    instruments = plan_instruments(rows, seed)
    banks = _banks(seed)
    ds = schema.create_nsynth_dataset(dest)
    ds.metadata["generated_by"] = "wavegan_dist.bench.nsynth_size"
    columns: dict[str, list] = {name: [] for name in schema.COLUMNS}
    written = 0

    def flush():
        nonlocal written
        if not columns["pitch"]:
            return
        batch = {
            name: (
                np.concatenate(v)
                if name in ("audio", "qualities")
                else v
                if schema.COLUMNS[name] == "text"
                else np.asarray(v, np.int32)
            )
            for name, v in columns.items()
        }
        ds.append(batch)
        ds.commit()
        written += len(columns["pitch"])
        for v in columns.values():
            v.clear()
        log(f"{written}/{rows} rows")

    for inst in instruments:
        notes = instrument_notes(inst)
        for start in range(0, len(notes), CHUNK_ROWS):
            part = notes[start : start + CHUNK_ROWS]
            columns["audio"].append(_audio(banks, inst, part))
            columns["qualities"].append(np.zeros((len(part), len(schema.QUALITIES)), np.int8))
            for pitch, velocity in part:
                columns["note_str"].append(f"{inst['name']}-{pitch:03d}-{velocity:03d}")
                columns["pitch"].append(pitch)
                columns["velocity"].append(velocity)
                columns["instrument"].append(inst["instrument"])
                columns["instrument_str"].append(inst["name"])
                columns["instrument_family"].append(inst["family"])
                columns["instrument_source"].append(inst["source"])
                columns["sample_rate"].append(schema.NSYNTH_SAMPLE_RATE)
            if len(columns["pitch"]) >= CHUNK_ROWS:
                flush()
    flush()
    return {
        "path": dest,
        "rows": written,
        "instruments": len(instruments),
        "bytes_of_audio": written * schema.NSYNTH_NUM_SAMPLES * 2,
    }
