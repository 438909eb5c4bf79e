"""All metrics for one generated set, next to the same metrics for real held-out audio.

The training set is the reference distribution throughout: Frechet distance and NDB
compare a set with the training set, and memorisation is the distance to the
nearest training example. The real held-out row shows what unseen real audio
scores, the floor a generator can hope to reach.
"""

from __future__ import annotations

import numpy as np

from wavegan_dist.evaluation import classifier, features, metrics

ROWS = ("generated", "real_heldout")
METRIC_NAMES = ("inception_score", "frechet_distance", "pitch_accuracy", "pitch_entropy",
                "ndb", "ndb_over_k", "nearest_train_distance")


def evaluate_sets(model, info: classifier.ClassifierInfo, generated: np.ndarray,
                  generated_labels: np.ndarray | None, heldout: np.ndarray,
                  heldout_labels: np.ndarray, train: np.ndarray, k: int = 50,
                  seed: int = 0) -> dict:
    """Computes every metric for a generated set and for a real held-out set.

    Args:
      model, info: the classifier (evaluation/classifier.py).
      generated: float32 [N, T(, 1)] generated audio; generated_labels: int [N], the
        labels a conditional generator was given (None if unconditional).
      heldout: float32 [M, T] real held-out audio; heldout_labels: int [M] true labels.
      train: float32 [R, T] real training audio (R >= k for NDB).
      k: NDB bins.
    Returns:
      {"generated": {metric: value}, "real_heldout": {...}, "n_generated", "n_heldout",
       "n_train", "k"}; pitch accuracy of the generated set is None when unconditional.
    """
    sets = {"generated": classifier.fit_length(generated, info.slice_len),
            "real_heldout": classifier.fit_length(heldout, info.slice_len),
            "train": classifier.fit_length(train, info.slice_len)}
    predicted = {name: classifier.predict(model, info, waves) for name, waves in sets.items()}
    spectra = {name: features.flat(features.log_spectrogram(waves, info.sample_rate))
               for name, waves in sets.items()}
    labels = {"generated": generated_labels, "real_heldout": heldout_labels}
    report = {"n_generated": len(generated), "n_heldout": len(heldout), "n_train": len(train),
              "k": k}
    for name in ROWS:
        probs, embeddings = predicted[name]
        bins = metrics.ndb(spectra["train"], spectra[name], k=k, seed=seed)
        report[name] = {
            "inception_score": metrics.inception_score(probs),
            "frechet_distance": metrics.frechet_distance(embeddings, predicted["train"][1]),
            "pitch_accuracy": (None if labels[name] is None
                               else metrics.pitch_accuracy(probs, labels[name])),
            "pitch_entropy": metrics.pitch_entropy(probs),
            "ndb": bins["ndb"],
            "ndb_over_k": bins["ndb_over_k"],
            "nearest_train_distance": metrics.nearest_neighbour_distance(spectra[name],
                                                                         spectra["train"]),
        }
    return report


def format_table(report: dict) -> str:
    """The report as aligned text: one row per metric, generated next to real."""
    def cell(value):
        if value is None:
            return "-"
        return f"{value:d}" if isinstance(value, int) else f"{value:.4f}"

    rows = [("metric", "generated", "real held-out")]
    rows += [(name, cell(report["generated"][name]), cell(report["real_heldout"][name]))
             for name in METRIC_NAMES]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"({report['n_generated']} generated, {report['n_heldout']} held-out and "
                 f"{report['n_train']} training examples; NDB with k={report['k']}; Frechet "
                 "distance, NDB and distances against the training set)")
    return "\n".join(lines)
