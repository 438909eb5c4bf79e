"""The labels clips are asked for: parsing a label list or range, and naming pitches.

`parse_labels` reads what a user types after --pitch or --instrument_family: one
value (60), a comma list (48,60,72) or an inclusive range start:stop[:step]
(36:84:6 is 36, 42, ..., 84), the stop included as a musician reads "36 to 84".
"""

from __future__ import annotations

from wavegan_dist.errors import UserError

LABEL_MEANING = {"pitch": "MIDI pitch", "instrument_family": "instrument family"}
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SYNTAX = "a number (60), a comma list (48,60,72) or a range start:stop:step (36:84:6)"


def _number(flag: str, text: str, token: str, meaning: str) -> int:
    """int(token), or a UserError naming the flag and the bad token."""
    try:
        return int(token.strip())
    except ValueError:
        shown = repr(token.strip()) if token.strip() else "an empty value"
        raise UserError(
            f"--{flag}={text}: {shown} is not a {meaning} number; pass {SYNTAX}"
        ) from None


def parse_labels(flag: str, text: str, low: int, high: int) -> list[int]:
    """The labels a label flag asks for, in the order given.

    Args:
      flag: the flag's name, for messages ("pitch" or "instrument_family").
      text: what the user passed: "60", "48,60,72" or "start:stop[:step]" (stop
        included; step defaults to 1 and may be negative for a falling range).
      low, high: the inclusive range of valid labels.
    Returns:
      The labels (ints in [low, high]), without repeats. Raises UserError for text
      that is not a number, list or range, a step of 0, an empty range, a label
      outside [low, high] or a label given twice.
    """
    meaning = LABEL_MEANING.get(flag, flag)
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) > 3:
            raise UserError(f"--{flag}={text} is not a range; pass {SYNTAX}")
        start, stop, *rest = (_number(flag, text, p, meaning) for p in parts)
        step = rest[0] if rest else 1
        if step == 0:
            raise UserError(
                f"--{flag}={text}: the step must not be 0; pass e.g. "
                f"{start}:{stop}:{1 if stop >= start else -1}"
            )
        labels = list(range(start, stop + (1 if step > 0 else -1), step))
        if not labels:
            raise UserError(
                f"--{flag}={text} is an empty range ({start} to {stop} in steps of "
                f"{step}); pass start:stop:step with stop {'>=' if step > 0 else '<='}"
                " start"
            )
    else:
        labels = [_number(flag, text, token, meaning) for token in text.split(",")]
    for label in labels:
        if not low <= label <= high:
            raise UserError(f"--{flag}={label} is out of range: {meaning} is {low}-{high}")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UserError(
            f"--{flag}={text} names {', '.join(map(str, repeated))} more than once; "
            "pass each value once"
        )
    return labels


def midi_hz(pitch: float) -> float:
    """Fundamental frequency in Hz of MIDI pitch `pitch` (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def note_name(pitch: int) -> str:
    """MIDI pitch -> scientific note name with C4 = 60: 60 -> 'C4', 61 -> 'C#4', 21 -> 'A0'."""
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def describe(condition: str, label: int) -> str:
    """A label for people: 'pitch 60 (C4, 261.6 Hz)' or 'instrument family 3'."""
    if condition == "pitch":
        return f"pitch {label} ({note_name(label)}, {midi_hz(label):.1f} Hz)"
    return f"{LABEL_MEANING.get(condition, condition)} {label}"
