"""The built-in instruments dataset (`--data=builtin-instruments`): real sampled
instrument notes, rendered the NSynth way from a General MIDI SoundFont.

The SoundFont is TimGM6mb.sf2, which the `pretty_midi` package ships; the renderer
is `midirenderer` (a wheel wrapping the rustysynth SoundFont synthesiser). Each
note is 4 s at 16 kHz mono int16, held for 3 s then released, as in NSynth, with
NSynth's family/source labels and note names (`keyboard_acoustic_000-060-100`).
Every instrument plays every pitch of its range at NSynth's five velocities; the
splits hold out velocities (train 25/75/127, valid 50, test 100), so held-out
notes are pitches the model has heard, played at loudnesses it has not.
The set is built once into the dataset cache (data/dataset_cache.py).
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import wave

import numpy as np

from wavegan_dist.data.dataset_cache import build_once, default_cache_dir, write_marker
from wavegan_dist.data.schema import (
    FAMILIES,
    NSYNTH_NUM_SAMPLES,
    NSYNTH_SAMPLE_RATE,
    QUALITIES,
    SOURCES,
    SPLITS,
    create_nsynth_dataset,
)
from wavegan_dist.errors import UserError

DATA_NAME = "builtin-instruments"
INSTRUMENTS_VERSION = 1  # bump when the rendered content changes
SOUNDFONT_PACKAGE, SOUNDFONT_FILE = "pretty_midi", "TimGM6mb.sf2"

# (NSynth family, General MIDI program (0-based), lowest and highest MIDI pitch):
# acoustic instruments, each within its real range and the 36-84 band.
INSTRUMENTS = (
    ("keyboard", 0, 36, 84),  # Acoustic Grand Piano
    ("guitar", 24, 40, 84),  # Acoustic Guitar (nylon)
    ("string", 42, 36, 72),  # Cello
    ("flute", 73, 60, 84),  # Flute
    ("brass", 56, 55, 82),  # Trumpet
    ("reed", 71, 50, 84),  # Clarinet
    ("mallet", 11, 53, 84),  # Vibraphone
)
SPLIT_VELOCITIES = {"train": (25, 75, 127), "valid": (50,), "test": (100,)}
assert sorted(v for vs in SPLIT_VELOCITIES.values() for v in vs) == [25, 50, 75, 100, 127]

RENDER_RATE = 48000  # what the renderer writes; 3x NSynth's rate, decimated by 3
HOLD_MS, NOTE_MS = 3000, 4000
# Onsets 5 s apart: every instrument here is silent 1 s after its note-off (checked:
# the last 20 ms of every 4 s note are below 31 of 32767), so no release reaches
# into the next note.
SPACING_MS = 5000
# One fixed gain for the whole set (never per note, so velocity stays audible):
# each instrument's loudest note (velocity 127) then peaks at 0.52-0.90 of full scale.
GAIN = 3.0
_SOURCE = SOURCES.index("acoustic")


def soundfont_path() -> str:
    """The SoundFont file inside the installed `pretty_midi` package.

    Raises UserError if that package (a dependency of wavegan_dist) is missing."""
    spec = importlib.util.find_spec(SOUNDFONT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = os.path.join(folder, SOUNDFONT_FILE)
        if os.path.isfile(path):
            return path
    raise UserError(
        f"--data={DATA_NAME} renders notes from {SOUNDFONT_FILE}, which the "
        f"{SOUNDFONT_PACKAGE} package ships, and it is not installed; reinstall "
        "wavegan_dist with its dependencies (pip install -c constraints.txt -e .)"
    )


def instruments_root(cache_dir: str | None = None) -> str:
    """Folder that holds (or will hold) the set: `<cache>/builtin-instruments-v{N}`."""
    return os.path.join(cache_dir or default_cache_dir(), f"{DATA_NAME}-v{INSTRUMENTS_VERSION}")


def instrument_name(index: int) -> str:
    """NSynth-style instrument_str of INSTRUMENTS[index], e.g. "keyboard_acoustic_000"."""
    return f"{INSTRUMENTS[index][0]}_{SOURCES[_SOURCE]}_{index:03d}"


def _varlen(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _midi_file(program: int, notes: list[tuple[int, int]]) -> bytes:
    """A one-track Standard MIDI File: `notes` (pitch, velocity) one after another,
    SPACING_MS apart, each held HOLD_MS, on channel 0 with `program`.

    1000 ticks per quarter note at 60 bpm make one tick one millisecond. Reverb and
    chorus sends are set to 0 (NSynth's notes are dry) and the channel volume to full.
    """
    events = b"\x00\xff\x51\x03" + (1_000_000).to_bytes(3, "big")  # tempo: 1 s per quarter
    events += b"\x00" + bytes([0xC0, program])
    for controller, value in ((91, 0), (93, 0), (7, 127)):  # reverb, chorus, volume
        events += b"\x00" + bytes([0xB0, controller, value])
    for i, (pitch, velocity) in enumerate(notes):
        events += _varlen(0 if i == 0 else SPACING_MS - HOLD_MS) + bytes([0x90, pitch, velocity])
        events += _varlen(HOLD_MS) + bytes([0x80, pitch, 0])
    events += _varlen(SPACING_MS - HOLD_MS) + b"\xff\x2f\x00"
    track = b"MTrk" + struct.pack(">I", len(events)) + events
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + track


def render_notes(soundfont: bytes, program: int, notes: list[tuple[int, int]]) -> np.ndarray:
    """Renders notes of one General MIDI program the NSynth way.

    Args:
      soundfont: the bytes of an .sf2 file.
      program: General MIDI program, 0-127.
      notes: (MIDI pitch, velocity) pairs.
    Returns:
      int16 [len(notes), NSYNTH_NUM_SAMPLES]: 4 s at 16 kHz, mono, held 3 s then released.
      The same arguments always give the same samples.
    """
    import midirenderer
    from scipy.signal import resample_poly

    data = midirenderer.render_wave_from(soundfont, _midi_file(program, notes))
    with wave.open(io.BytesIO(data)) as w:
        if w.getframerate() != RENDER_RATE or w.getsampwidth() != 2:
            raise RuntimeError(
                f"midirenderer wrote {w.getframerate()} Hz, "
                f"{8 * w.getsampwidth()}-bit audio; expected {RENDER_RATE} Hz "
                "16-bit"
            )
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        pcm = pcm.reshape(-1, w.getnchannels()).astype(np.float32).mean(axis=1)
    step, length = RENDER_RATE * SPACING_MS // 1000, RENDER_RATE * NOTE_MS // 1000
    pcm = np.pad(pcm, [(0, max(0, step * len(notes) - len(pcm)))])
    clips = np.stack([pcm[i * step : i * step + length] for i in range(len(notes))])
    # A polyphase low-pass (Kaiser window) before keeping every third sample.
    clips = resample_poly(clips, 1, RENDER_RATE // NSYNTH_SAMPLE_RATE, axis=1)
    return np.clip(np.round(clips * GAIN), -32768, 32767).astype(np.int16)


def split_notes(split: str) -> list[tuple[int, int, int]]:
    """(instrument index, pitch, velocity) of every note of `split`, in render order."""
    return [
        (i, pitch, velocity)
        for i, (_, _, lo, hi) in enumerate(INSTRUMENTS)
        for velocity in SPLIT_VELOCITIES[split]
        for pitch in range(lo, hi + 1)
    ]


def _write_split(path: str, split: str, soundfont: bytes) -> int:
    notes = split_notes(split)
    audio = np.zeros((len(notes), NSYNTH_NUM_SAMPLES), np.int16)
    for i in range(len(INSTRUMENTS)):
        for velocity in SPLIT_VELOCITIES[split]:
            rows = [r for r, (inst, _, v) in enumerate(notes) if inst == i and v == velocity]
            audio[rows] = render_notes(
                soundfont, INSTRUMENTS[i][1], [(notes[r][1], velocity) for r in rows]
            )
    # Rows in a fixed shuffled order, so leading rows (--num_samples) and blocks
    # (--shuffle=blocks) mix instruments, pitches and velocities.
    order = np.random.default_rng(SPLITS.index(split)).permutation(len(notes))
    notes = [notes[r] for r in order]
    ds = create_nsynth_dataset(path)
    ds.metadata["builtin_instruments_version"] = INSTRUMENTS_VERSION
    ds.metadata["soundfont"] = SOUNDFONT_FILE
    names = [instrument_name(i) for i, _, _ in notes]
    ds.append(
        {
            "audio": audio[order],
            "note_str": [f"{n}-{p:03d}-{v:03d}" for n, (_, p, v) in zip(names, notes)],
            "pitch": np.array([p for _, p, _ in notes], np.int32),
            "velocity": np.array([v for _, _, v in notes], np.int32),
            "instrument": np.array([i for i, _, _ in notes], np.int32),
            "instrument_str": names,
            "instrument_family": np.array(
                [FAMILIES.index(INSTRUMENTS[i][0]) for i, _, _ in notes], np.int32
            ),
            "instrument_source": np.full(len(notes), _SOURCE, np.int32),
            # NSynth's quality flags were judged by listeners; none are claimed here.
            "qualities": np.zeros((len(notes), len(QUALITIES)), np.int8),
            "sample_rate": np.full(len(notes), NSYNTH_SAMPLE_RATE, np.int32),
        }
    )
    ds.commit(f"{DATA_NAME} v{INSTRUMENTS_VERSION}: {len(notes)} notes")
    return len(notes)


def _build(tmp: str, soundfont_file: str) -> None:
    os.makedirs(tmp)
    with open(soundfont_file, "rb") as f:
        soundfont = f.read()
    sizes = {split: _write_split(os.path.join(tmp, split), split, soundfont) for split in SPLITS}
    write_marker(
        tmp,
        {
            "version": INSTRUMENTS_VERSION,
            "sizes": sizes,
            "soundfont": SOUNDFONT_FILE,
            "num_samples": NSYNTH_NUM_SAMPLES,
            "sample_rate": NSYNTH_SAMPLE_RATE,
        },
    )


def ensure_instruments_dataset(cache_dir: str | None = None, log=print) -> str:
    """Builds the instruments dataset under `cache_dir` unless it is already complete there.

    Args:
      cache_dir: parent folder; default `default_cache_dir()`.
      log: called with one-line progress messages.
    Returns:
      The root folder, holding deeplake datasets `train`, `valid` and `test`.
    Raises:
      UserError: the root folder exists but is not a complete build, the cache folder
        cannot be created, or the SoundFont's package is not installed.
    """
    root = instruments_root(cache_dir)
    total = sum(len(split_notes(split)) for split in SPLITS)
    soundfont = soundfont_path()
    return build_once(
        root,
        INSTRUMENTS_VERSION,
        "instruments dataset",
        total,
        lambda tmp: _build(tmp, soundfont),
        log,
    )
