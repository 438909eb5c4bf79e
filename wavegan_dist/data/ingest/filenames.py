"""What an audio file's name says about the note (the audio-folder format's fallback
when no sidecar gives a value).

Rules, applied to the file name without its extension (the "stem"):
  1. An NSynth-style stem `<family>_<source>_<NNN>-<PPP>-<VVV>` (family and source
     one of NSynth's instrument family and source names, three digits each), e.g.
     `guitar_acoustic_010-060-100`, gives note_str (the stem), instrument_str
     (`guitar_acoustic_010`), instrument_family, instrument_source, pitch (PPP)
     and velocity (VVV). NSynth's global instrument id is not in the name, so
     `instrument` stays unknown.
  2. Otherwise the stem is split into tokens at spaces and `_ - , + ( ) [ ]`, and
     at `.` except between two digits (so `0.1s` stays one token). A token is a
     pitch candidate if it is a note name (an upper-case letter A-G, an optional
     `#` or `b`, an octave 0-9; C4 = MIDI 60, A4 = 69) or a bare whole number
     12-120 without leading zeros (a MIDI note number, C0 to C9). Numbers with a
     unit or a prefix (`0.1s`, `44k`, `v2`, `120bpm`), decimals, and numbers
     outside 12-120 (`take_1`, `loop_300`) are not pitches. If the candidates all
     give the same pitch, that is the pitch; if they disagree, or there is none,
     the pitch is unknown. Nothing else is taken from such names.
Everything a name does not give stays unknown (-1, or "" for text).
"""

from __future__ import annotations

import re

from wavegan_dist.data import schema

_NSYNTH = re.compile(
    r"^(?P<family>"
    + "|".join(schema.FAMILIES)
    + r")_(?P<source>"
    + "|".join(schema.SOURCES)
    + r")_(?P<number>\d{3})-(?P<pitch>\d{3})-(?P<velocity>\d{3})$"
)
_NOTE = re.compile(r"^(?P<letter>[A-G])(?P<accidental>[#b]?)(?P<octave>[0-9])$")
_MIDI = re.compile(r"^[1-9][0-9]{1,2}$")
# A bare number names a note only in this range (C0..C9): smaller and larger numbers in
# file names are take numbers, durations, tempos and sizes far more often than notes.
MIDI_NAME_RANGE = (12, 120)
_SEPARATORS = re.compile(r"(?:[\s_\-,+()\[\]]|\.(?!\d)|(?<!\d)\.)+")
_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def note_name_to_midi(token: str) -> int | None:
    """'C4' -> 60, 'A#3' -> 58, 'Bb2' -> 46; None if not a note name in MIDI range."""
    m = _NOTE.match(token)
    if not m:
        return None
    pitch = (int(m["octave"]) + 1) * 12 + _SEMITONES[m["letter"]]
    pitch += {"#": 1, "b": -1, "": 0}[m["accidental"]]
    return pitch if 0 <= pitch <= 127 else None


def pitch_from_tokens(stem: str) -> int | None:
    """The pitch that rule 2 reads from a stem, or None."""
    found = set()
    for token in _SEPARATORS.split(stem):
        pitch = note_name_to_midi(token)
        if pitch is None and _MIDI.match(token):
            lo, hi = MIDI_NAME_RANGE
            pitch = int(token) if lo <= int(token) <= hi else None
        if pitch is not None:
            found.add(pitch)
    return found.pop() if len(found) == 1 else None


def metadata_from_name(stem: str) -> dict:
    """A file stem -> the metadata columns the name gives (only those; see the rules above)."""
    m = _NSYNTH.match(stem)
    if m:
        pitch, velocity = int(m["pitch"]), int(m["velocity"])
        out = {
            "note_str": stem,
            "instrument_str": f"{m['family']}_{m['source']}_{m['number']}",
            "instrument_family": schema.FAMILIES.index(m["family"]),
            "instrument_source": schema.SOURCES.index(m["source"]),
        }
        if pitch <= 127:
            out["pitch"] = pitch
        if velocity <= 127:
            out["velocity"] = velocity
        return out
    pitch = pitch_from_tokens(stem)
    return {} if pitch is None else {"pitch": pitch}
