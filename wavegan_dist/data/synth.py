"""Procedural notes for the built-in dataset: additive tones with a timbre and an
amplitude envelope per NSynth instrument family.

This is not meant to sound like real instruments, only to give a GAN the kind
of structure NSynth has: a pitch with harmonics, a family-dependent spectrum and
envelope, loudness that follows velocity, and notes held for 3 s then released.
"""

from __future__ import annotations

import numpy as np

from wavegan_dist.data.schema import FAMILIES, NSYNTH_NUM_SAMPLES, NSYNTH_SAMPLE_RATE, QUALITIES

NOTE_OFF_S = 3.0  # NSynth notes are held for 3 s and then released
MAX_PARTIALS = 32
PEAK = 0.5  # peak of a velocity-127 note; leaves headroom below clipping

# Per-family timbre and envelope; each instrument varies these a little.
#   rolloff: partial k has amplitude k**-rolloff (lower = brighter)
#   even:    gain of the even partials (reeds are mostly odd, like a clarinet)
#   inharm:  stiffness B in f_k = k f0 sqrt(1 + B k^2) (stretched partials of
#            struck strings and bars)
#   noise:   breath noise level; click: noise burst at the onset (a strike)
#   vibrato: depth as a fraction of f0; formant: Hz of a resonance (0 = none)
#   attack, decay, release: seconds; sustain: level the decay settles to. A
#   sustain of 0 makes the note percussive (it dies away, faster when higher).
#   pitches: MIDI range the family plays in the dataset.
# A table: one family per row reads better than the formatter's one value per line.
# fmt: off
_FAMILY = {
    "bass": dict(rolloff=1.6, even=1.0, inharm=3e-4, noise=0.0, click=0.3, vibrato=0.0,
        formant=0, attack=0.005, decay=1.5, sustain=0.0, release=0.08, pitches=(24, 60)),
    "brass": dict(rolloff=0.9, even=1.0, inharm=0.0, noise=0.01, click=0.0, vibrato=0.002,
        formant=1200, attack=0.04, decay=0.2, sustain=0.8, release=0.12, pitches=(36, 84)),
    "flute": dict(rolloff=2.6, even=0.6, inharm=0.0, noise=0.06, click=0.0, vibrato=0.004,
        formant=0, attack=0.08, decay=0.3, sustain=0.9, release=0.2, pitches=(60, 96)),
    "guitar": dict(rolloff=1.3, even=1.0, inharm=2e-4, noise=0.0, click=0.2, vibrato=0.0,
        formant=0, attack=0.003, decay=1.2, sustain=0.0, release=0.1, pitches=(40, 84)),
    "keyboard": dict(rolloff=1.5, even=1.0, inharm=6e-4, noise=0.0, click=0.15, vibrato=0.0,
        formant=0, attack=0.003, decay=1.6, sustain=0.0, release=0.15, pitches=(24, 96)),
    "mallet": dict(rolloff=2.2, even=1.0, inharm=0.03, noise=0.0, click=0.4, vibrato=0.0,
        formant=0, attack=0.001, decay=0.4, sustain=0.0, release=0.05, pitches=(48, 96)),
    "organ": dict(rolloff=1.1, even=0.8, inharm=0.0, noise=0.0, click=0.0, vibrato=0.0,
        formant=0, attack=0.01, decay=0.05, sustain=1.0, release=0.05, pitches=(24, 96)),
    "reed": dict(rolloff=1.1, even=0.25, inharm=0.0, noise=0.02, click=0.0, vibrato=0.001,
        formant=0, attack=0.03, decay=0.15, sustain=0.85, release=0.1, pitches=(40, 84)),
    "string": dict(rolloff=1.1, even=0.9, inharm=0.0, noise=0.01, click=0.0, vibrato=0.005,
        formant=0, attack=0.15, decay=0.3, sustain=0.9, release=0.4, pitches=(28, 96)),
    "synth_lead": dict(rolloff=0.9, even=1.0, inharm=0.0, noise=0.0, click=0.0, vibrato=0.003,
        formant=0, attack=0.01, decay=0.2, sustain=0.8, release=0.2, pitches=(36, 96)),
    "vocal": dict(rolloff=1.8, even=1.0, inharm=0.0, noise=0.02, click=0.0, vibrato=0.006,
        formant=800, attack=0.08, decay=0.2, sustain=0.9, release=0.25, pitches=(48, 84)),
}
# fmt: on
assert tuple(_FAMILY) == FAMILIES


def family_pitches(family: int) -> tuple[int, int]:
    """Inclusive MIDI pitch range (lo, hi) that family index `family` plays."""
    return _FAMILY[FAMILIES[family]]["pitches"]


def instrument_params(family: int, instrument_seed: int) -> dict:
    """Timbre/envelope parameters (see _FAMILY) of one instrument of a family.

    The same (family, instrument_seed) always gives the same instrument.
    """
    rng = np.random.default_rng(instrument_seed)
    p = dict(_FAMILY[FAMILIES[family]])
    # Multiplicative jitter keeps a family's zeros (no vibrato, no noise) at zero.
    for key in (
        "rolloff",
        "inharm",
        "noise",
        "click",
        "vibrato",
        "formant",
        "attack",
        "decay",
        "release",
    ):
        p[key] *= float(rng.uniform(0.8, 1.25))
    p["even"] = min(1.0, p["even"] * float(rng.uniform(0.8, 1.2)))
    if p["sustain"] > 0:
        p["sustain"] = float(np.clip(p["sustain"] + rng.uniform(-0.1, 0.1), 0.5, 1.0))
    p["vibrato_hz"] = float(rng.uniform(4.5, 6.5))
    return p


def _midi_hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def _rolloff(p: dict, velocity: int) -> float:
    # Soft notes are darker, as with most acoustic instruments.
    return p["rolloff"] + 0.5 * (1 - velocity / 127)


def _decay_s(p: dict, pitch: int) -> float:
    # Struck high notes ring shorter than low ones.
    return p["decay"] * (261.6 / _midi_hz(pitch)) ** 0.4 if p["sustain"] == 0 else p["decay"]


def note_qualities(p: dict, pitch: int, velocity: int) -> np.ndarray:
    """int8 [10] NSynth quality flags (QUALITIES order) that the synthesis implies."""
    q = dict.fromkeys(QUALITIES, 0)
    q["bright"] = int(_rolloff(p, velocity) < 1.1)
    q["dark"] = int(_rolloff(p, velocity) > 2.2)
    q["percussive"] = int(p["click"] > 0)
    # Percussive notes that are mostly gone (below ~5%) well before note-off.
    q["fast_decay"] = int(p["sustain"] == 0 and _decay_s(p, pitch) < 1.0)
    q["long_release"] = int(p["release"] > 0.3)
    return np.array([q[name] for name in QUALITIES], dtype=np.int8)


def synthesize_note(
    pitch: int,
    velocity: int,
    family: int,
    instrument_seed: int,
    *,
    sample_rate: int = NSYNTH_SAMPLE_RATE,
    num_samples: int = NSYNTH_NUM_SAMPLES,
) -> np.ndarray:
    """One note as float32 [num_samples] in [-1, 1].

    Args:
      pitch: MIDI pitch; partials above Nyquist are left out.
      velocity: 1-127; sets the loudness (peak PEAK * (velocity/127)**1.5).
      family: index into FAMILIES.
      instrument_seed: picks the instrument's variation of the family timbre;
        the same arguments always give the same samples.
    """
    p = instrument_params(family, instrument_seed)
    rng = np.random.default_rng([instrument_seed, pitch, velocity])
    f0 = _midi_hz(pitch)
    # float32 wherever precision allows: float64 exp/sin are ~10x slower here.
    t = np.arange(num_samples, dtype=np.float32) / np.float32(sample_rate)

    k = np.arange(1, MAX_PARTIALS + 1)
    ratios = k * np.sqrt(1 + p["inharm"] * k**2)
    ratios /= ratios[0]  # stretch the upper partials, keep the fundamental on pitch
    amps = k ** -_rolloff(p, velocity)
    amps[k % 2 == 0] *= p["even"]
    if p["formant"]:
        amps *= 1 + 3 * np.exp(-0.5 * ((ratios * f0 - p["formant"]) / (0.3 * p["formant"])) ** 2)
    # Drop partials above Nyquist (even at the top of the vibrato) and inaudible ones.
    keep = (ratios * f0 * (1 + p["vibrato"]) < 0.5 * sample_rate) & (amps > 1e-3 * amps[0])
    k, ratios, amps = k[keep], ratios[keep], amps[keep]
    phases = rng.uniform(0, 1, len(k))

    # Vibrato bends all partials together, fading in over the first half second.
    vib_phase = np.float32(2 * np.pi * p["vibrato_hz"]) * t
    vib = p["vibrato"] * np.minimum(t / 0.5, 1) * np.sin(vib_phase)
    cycles = f0 / sample_rate * np.cumsum(1 + vib, dtype=np.float64)  # fundamental's phase
    # Struck notes lose their upper partials first, so those get a faster envelope.
    low = np.zeros(num_samples, np.float32)
    high = np.zeros(num_samples, np.float32)
    x = np.empty(num_samples)
    x32 = np.empty(num_samples, np.float32)
    for kk, ratio, amp, phase in zip(k, ratios, amps, phases):
        # Partial by partial into preallocated buffers: ~3x faster than one
        # [partials, samples] array. Phases are wrapped in float64 so float32
        # sin stays accurate after thousands of cycles.
        np.multiply(cycles, ratio, out=x)
        x += phase
        x -= np.floor(x)
        x32[:] = x
        x32 *= np.float32(2 * np.pi)
        np.sin(x32, out=x32)
        x32 *= np.float32(amp)
        target = low if kk <= 3 else high
        target += x32

    decay = _decay_s(p, pitch)
    env = (
        np.minimum(t / p["attack"], 1)
        * (p["sustain"] + (1 - p["sustain"]) * np.exp(-t / decay))
        * np.exp(-np.maximum(t - NOTE_OFF_S, 0) / p["release"])
    )
    sig = low + high * (np.exp(-3 * t / decay) if p["sustain"] == 0 else 1)
    scale = float(amps.sum())
    if p["noise"]:
        # Breath noise, smoothed a little so it sits below the hiss of white noise.
        white = rng.standard_normal(num_samples, dtype=np.float32)
        sig += p["noise"] * scale * np.convolve(white, [0.25, 0.5, 0.25], "same")
    sig *= env
    if p["click"]:
        # A 4 ms noise burst for the strike; it is negligible after 50 ms.
        n = min(num_samples, sample_rate // 20)
        burst = rng.standard_normal(n, dtype=np.float32) * np.exp(-t[:n] / 0.004)
        sig[:n] += p["click"] * scale * burst
    sig *= PEAK * (velocity / 127) ** 1.5 / max(float(np.abs(sig).max()), 1e-9)
    return sig.astype(np.float32, copy=False)
