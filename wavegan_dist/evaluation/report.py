"""All metrics for one generated set, next to the same metrics for real held-out audio.

The training set is the reference distribution throughout: Frechet distance and NDB
compare a set with the training set, and memorisation is the distance to the
nearest training example. The real held-out row shows what unseen real audio
scores, the floor a generator can hope to reach. Next to the classifier's figures are
those of an independent judge (evaluation/pitch_judge.py: pYIN pitch accuracy, and the
power on the generator's upsampling artifact lines).
"""

from __future__ import annotations

import numpy as np

from wavegan_dist.evaluation import classifier, features, metrics, pitch_judge

ROWS = ("generated", "real_heldout")
METRIC_NAMES = (
    "inception_score",
    "frechet_distance",
    "log_mel_frechet_distance",
    "log_mel_mean_term",
    "log_mel_level_db",
    "pitch_accuracy",
    "pitch_entropy",
    "ndb",
    "ndb_over_k",
    "nearest_train_distance",
    "judge_pitch_accuracy",
    "judge_pitch_accuracy_octave",
    "artifact_power_sr_over_256",
    "artifact_power_sr_over_16",
    "artifact_vs_real_sr_over_256",
    "artifact_vs_real_sr_over_16",
)


def evaluate_sets(
    model,
    info: classifier.ClassifierInfo,
    generated: np.ndarray,
    generated_labels: np.ndarray | None,
    heldout: np.ndarray,
    heldout_labels: np.ndarray,
    train: np.ndarray,
    k: int = 50,
    seed: int = 0,
    generated_pitch: np.ndarray | None = None,
    heldout_pitch: np.ndarray | None = None,
    heldout_judge: dict | None = None,
) -> dict:
    """Computes every metric for a generated set and for a real held-out set.

    Args:
      model, info: the classifier (evaluation/classifier.py).
      generated: float32 [N, T(, 1)] generated audio; generated_labels: int [N], the
        labels a conditional generator was given (None if unconditional).
      heldout: float32 [M, T] real held-out audio; heldout_labels: int [M] true labels.
      train: float32 [R, T] real training audio (R >= k for NDB).
      k: NDB bins.
      generated_pitch: int [N] MIDI pitches the generator was asked for (a
        pitch-conditional run), else None; heldout_pitch: int [M] the held-out notes'
        pitches, else None. The judge's pitch accuracy of a set without pitches is None.
      heldout_judge: the judge's figures of the same held-out set from an earlier call
        (pitch_judge.judge_set), to skip measuring it again; None measures it.
    Returns:
      {"generated": {metric: value}, "real_heldout": {...}, "n_generated", "n_heldout",
       "n_train", "k"}; pitch accuracy of the generated set is None when unconditional;
      "artifact_vs_real_*" (generated row only) is the generated set's artifact power
      over the real held-out set's; "log_mel_mean_term" is the part of the log-mel
      Frechet distance that the mean log-mel frame makes, and "log_mel_level_db" the
      mean log-mel power above the training notes' (a noise floor shows in both).
    """
    sets = {
        "generated": classifier.fit_length(generated, info.slice_len),
        "real_heldout": classifier.fit_length(heldout, info.slice_len),
        "train": classifier.fit_length(train, info.slice_len),
    }
    predicted = {name: classifier.predict(model, info, waves) for name, waves in sets.items()}
    spectra = {
        name: features.flat(features.log_spectrogram(waves, info.sample_rate))
        for name, waves in sets.items()
    }
    mels = {name: features.log_mel_frames(waves, info.sample_rate) for name, waves in sets.items()}
    labels = {"generated": generated_labels, "real_heldout": heldout_labels}
    report = {
        "n_generated": len(generated),
        "n_heldout": len(heldout),
        "n_train": len(train),
        "k": k,
    }
    for name in ROWS:
        probs, embeddings = predicted[name]
        bins = metrics.ndb(spectra["train"], spectra[name], k=k, seed=seed)
        report[name] = {
            "inception_score": metrics.inception_score(probs),
            "frechet_distance": metrics.frechet_distance(embeddings, predicted["train"][1]),
            "log_mel_frechet_distance": metrics.frechet_distance(mels[name], mels["train"]),
            "log_mel_mean_term": metrics.frechet_mean_term(mels[name], mels["train"]),
            "log_mel_level_db": metrics.mean_level_db(mels[name], mels["train"]),
            "pitch_accuracy": (
                None if labels[name] is None else metrics.pitch_accuracy(probs, labels[name])
            ),
            "pitch_entropy": metrics.pitch_entropy(probs),
            "ndb": bins["ndb"],
            "ndb_over_k": bins["ndb_over_k"],
            "nearest_train_distance": metrics.nearest_neighbour_distance(
                spectra[name], spectra["train"]
            ),
        }
    pitches = {"generated": generated_pitch, "real_heldout": heldout_pitch}
    for name in ROWS:
        judged = (
            heldout_judge
            if name == "real_heldout" and heldout_judge
            else pitch_judge.judge_set(sets[name], info.sample_rate, pitches[name])
        )
        report[name].update(judged)
    for period in pitch_judge.ARTIFACT_PERIODS:
        real = report["real_heldout"][f"artifact_power_sr_over_{period}"]
        generated = report["generated"][f"artifact_power_sr_over_{period}"]
        report["generated"][f"artifact_vs_real_sr_over_{period}"] = (
            generated / real if real > 0 else None
        )
        report["real_heldout"][f"artifact_vs_real_sr_over_{period}"] = None
    return report


def format_table(report: dict) -> str:
    """The report as aligned text: one row per metric, generated next to real."""

    def cell(value):
        if value is None:
            return "-"
        return f"{value:d}" if isinstance(value, int) else f"{value:.4f}"

    rows = [("metric", "generated", "real held-out")]
    rows += [
        (name, cell(report["generated"].get(name)), cell(report["real_heldout"].get(name)))
        for name in METRIC_NAMES
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(
        f"({report['n_generated']} generated, {report['n_heldout']} held-out and "
        f"{report['n_train']} training examples; NDB with k={report['k']}; Frechet "
        "distances, NDB and distances against the training set (log_mel: of "
        "log-mel frames, no classifier; log_mel_mean_term: the part of it the mean frame "
        "makes; log_mel_level_db: mean mel power above the training notes'); judge_*: pYIN, "
        f"strict within {pitch_judge.STRICT_CENTS:g} cents or octave-tolerant; "
        "artifact_power_sr_over_P: fraction of spectral power on the lines at "
        "multiples of sample_rate/P)"
    )
    return "\n".join(lines)
