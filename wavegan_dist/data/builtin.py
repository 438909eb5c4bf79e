"""The built-in dataset (`--data=builtin`): procedurally synthesised notes in the
NSynth schema, written once to a cache folder and reused after (data/dataset_cache.py:
`<root>/{train,valid,test}`, each a deeplake dataset made with `create_nsynth_dataset`,
and a COMPLETE marker).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from wavegan_dist.data.dataset_cache import MARKER, build_once, default_cache_dir, write_marker
from wavegan_dist.data.schema import (
    FAMILIES,
    NSYNTH_NUM_SAMPLES,
    NSYNTH_SAMPLE_RATE,
    SOURCES,
    SPLITS,
    VELOCITIES,
    create_nsynth_dataset,
)
from wavegan_dist.data.synth import (
    family_pitches,
    instrument_params,
    note_qualities,
    synthesize_note,
)
from wavegan_dist.errors import UserError

__all__ = [
    "BUILTIN_VERSION",
    "DEFAULT_SEED",
    "DEFAULT_SIZES",
    "MARKER",
    "default_cache_dir",
    "builtin_root",
    "ensure_builtin_dataset",
    "synthesize_note",
]

BUILTIN_VERSION = 1  # bump when the generated content changes
DEFAULT_SEED = 1234
DEFAULT_SIZES = {"train": 320, "valid": 48, "test": 48}
INSTRUMENTS_PER_FAMILY = 3  # one per source: acoustic, electronic, synthetic
_CHUNK = 64  # rows per append: bounds memory at ~8 MB of audio


def builtin_root(cache_dir: str | None = None) -> str:
    """Folder that holds (or will hold) the default built-in dataset's split
    subfolders: `<cache_dir>/builtin-v{BUILTIN_VERSION}`."""
    return os.path.join(cache_dir or default_cache_dir(), f"builtin-v{BUILTIN_VERSION}")


def _root_for(cache_dir: str | None, seed: int, sizes: dict[str, int]) -> str:
    root = builtin_root(cache_dir)
    if seed != DEFAULT_SEED or sizes != DEFAULT_SIZES:
        # Non-default content gets its own folder so it never shadows the default.
        root += f"-s{seed}-" + "x".join(str(sizes[s]) for s in SPLITS)
    return root


def _check_sizes(sizes: dict[str, int] | None) -> dict[str, int]:
    sizes = dict(DEFAULT_SIZES, **(sizes or {}))
    if set(sizes) != set(SPLITS) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0
        for n in sizes.values()
    ):
        raise UserError(
            f"built-in dataset sizes must be positive integers for the splits "
            f"{', '.join(SPLITS)}; got {sizes}"
        )
    sizes = {split: int(sizes[split]) for split in SPLITS}
    # Each split deals its notes out to the instruments in equal shares and all
    # notes must differ, so the narrowest family's (pitch, velocity) pairs cap it.
    capacity = min(hi - lo + 1 for lo, hi in map(family_pitches, range(len(FAMILIES))))
    capacity *= len(VELOCITIES)
    num_instruments = len(FAMILIES) * INSTRUMENTS_PER_FAMILY
    if sum(-(-n // num_instruments) for n in sizes.values()) > capacity:
        raise UserError(
            f"built-in dataset sizes {sizes} ask for more distinct notes than "
            f"{num_instruments} instruments x {capacity} notes; use smaller sizes"
        )
    return sizes


def _instruments(seed: int) -> list[dict]:
    """The dataset's instruments: INSTRUMENTS_PER_FAMILY per family, one per source."""
    out = []
    for family in range(len(FAMILIES)):
        for source in range(INSTRUMENTS_PER_FAMILY):
            ident = len(out)
            inst_seed = int(np.random.SeedSequence([seed, ident]).generate_state(1)[0])
            out.append(
                dict(
                    instrument=ident,
                    family=family,
                    source=source,
                    seed=inst_seed,
                    name=f"{FAMILIES[family]}_{SOURCES[source]}_{ident:03d}",
                    params=instrument_params(family, inst_seed),
                )
            )
    return out


def _plan_split(
    split: int, size: int, seed: int, instruments: list[dict], taken: set[str]
) -> list[tuple[dict, int, int]]:
    """`size` (instrument, pitch, velocity) notes for split index `split`.

    Instruments are dealt out in shuffled rounds, so every split covers as many
    instruments as its size allows; notes already in `taken` (earlier splits)
    are redrawn, so the splits are disjoint.
    """
    rng = np.random.default_rng([seed, 1000 + split])
    notes = []
    while len(notes) < size:
        for i in rng.permutation(len(instruments))[: size - len(notes)]:
            inst = instruments[i]
            lo, hi = family_pitches(inst["family"])
            while True:
                pitch = int(rng.integers(lo, hi + 1))
                velocity = int(rng.choice(VELOCITIES))
                note_str = f"{inst['name']}-{pitch:03d}-{velocity:03d}"
                if note_str not in taken:
                    break
            taken.add(note_str)
            notes.append((inst, pitch, velocity))
    return notes


def _synth_pcm(note: tuple[dict, int, int]) -> np.ndarray:
    inst, pitch, velocity = note
    audio = synthesize_note(pitch, velocity, inst["family"], inst["seed"])
    return np.round(audio * 32767).astype(np.int16)


def _write_split(
    path: str, notes: list[tuple[dict, int, int]], pool: ThreadPoolExecutor, seed: int
) -> None:
    ds = create_nsynth_dataset(path)
    ds.metadata["builtin_version"] = BUILTIN_VERSION
    ds.metadata["builtin_seed"] = seed
    for start in range(0, len(notes), _CHUNK):
        chunk = notes[start : start + _CHUNK]
        insts = [inst for inst, _, _ in chunk]
        ds.append(
            {
                "audio": np.stack(list(pool.map(_synth_pcm, chunk))),
                "note_str": [f"{i['name']}-{p:03d}-{v:03d}" for i, p, v in chunk],
                "pitch": np.array([p for _, p, _ in chunk], np.int32),
                "velocity": np.array([v for _, _, v in chunk], np.int32),
                "instrument": np.array([i["instrument"] for i in insts], np.int32),
                "instrument_str": [i["name"] for i in insts],
                "instrument_family": np.array([i["family"] for i in insts], np.int32),
                "instrument_source": np.array([i["source"] for i in insts], np.int32),
                "qualities": np.stack([note_qualities(i["params"], p, v) for i, p, v in chunk]),
                "sample_rate": np.full(len(chunk), NSYNTH_SAMPLE_RATE, np.int32),
            }
        )
    ds.commit(f"built-in dataset v{BUILTIN_VERSION}, seed {seed}, {len(notes)} notes")


def _build(tmp: str, seed: int, sizes: dict[str, int]) -> None:
    os.makedirs(tmp)
    instruments = _instruments(seed)
    taken: set[str] = set()
    # numpy releases the GIL in the heavy ufuncs, so threads use all cores.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for index, split in enumerate(SPLITS):
            notes = _plan_split(index, sizes[split], seed, instruments, taken)
            _write_split(os.path.join(tmp, split), notes, pool, seed)
    write_marker(
        tmp,
        {
            "version": BUILTIN_VERSION,
            "seed": seed,
            "sizes": sizes,
            "num_samples": NSYNTH_NUM_SAMPLES,
            "sample_rate": NSYNTH_SAMPLE_RATE,
        },
    )


def ensure_builtin_dataset(
    cache_dir: str | None = None,
    *,
    seed: int = DEFAULT_SEED,
    sizes: dict[str, int] | None = None,
    log=print,
) -> str:
    """Builds the built-in dataset under `cache_dir` unless it is already complete there.

    Args:
      cache_dir: parent folder; default `default_cache_dir()`.
      seed: the content is a deterministic function of (BUILTIN_VERSION, seed, sizes).
      sizes: notes per split, e.g. {"train": 24, "valid": 8, "test": 8}; missing
        splits take DEFAULT_SIZES. Non-default seed/sizes get their own folder.
      log: called with one-line progress messages.
    Returns:
      The root folder, holding deeplake datasets `train`, `valid` and `test`.
    Raises:
      UserError: the root folder exists but is not a complete build, the cache
        folder cannot be created, or `sizes` is invalid.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"built-in dataset seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    sizes = _check_sizes(sizes)
    root = _root_for(cache_dir, seed, sizes)
    return build_once(
        root,
        BUILTIN_VERSION,
        "built-in dataset",
        sum(sizes.values()),
        lambda tmp: _build(tmp, seed, sizes),
        log,
    )
