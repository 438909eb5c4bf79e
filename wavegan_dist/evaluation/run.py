"""Library entry points of evaluation: train a classifier on a dataset, evaluate a run.

The command line (wavegan_dist/evaluate.py), in-training evaluation and the learning
benchmark all call these with plain arguments.
"""

from __future__ import annotations

import numpy as np

from wavegan_dist.data.extract import extract_audio
from wavegan_dist.data.filters import RowFilter
from wavegan_dist.data.labels import attach_labels
from wavegan_dist.data.source import load_source
from wavegan_dist.errors import UserError
from wavegan_dist.evaluation import classifier, report


def labelled_audio(data: str, split: str, target: str, slice_len: int, cache_dir: str = "",
                   max_rows: int = 0, seed: int = 0, log=print):
    """The first slices of a split's notes that carry a `target` label.

    Args:
      data, split, cache_dir: as training's --data, --split, --data_cache.
      target: "pitch" or "instrument_family".
      slice_len: samples per example.
      max_rows: keep a seeded random subset of at most this many rows (0 = all).
    Returns:
      (audio float32 [N, slice_len], labels int32 [N], sample_rate).
    """
    source = load_source(data, split, RowFilter(), cache_dir, log=log)
    source, labels = attach_labels(source, target, log)
    rows = source.rows
    if max_rows and len(rows) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
        rows, labels = rows[keep], labels[keep]
    return extract_audio(source.dataset, rows, slice_len), labels, source.sample_rate


def train_classifier(data: str, out: str, target: str = "pitch", slice_len: int = 16384,
                     heldout_split: str = "valid", epochs: int = 40, cache_dir: str = "",
                     seed: int = 0, log=print) -> classifier.ClassifierInfo:
    """Trains the metric classifier on `data`'s train split and saves it to `out`.

    Returns:
      The saved ClassifierInfo, with the held-out split's accuracy.
    """
    waves, labels, rate = labelled_audio(data, "train", target, slice_len, cache_dir, log=log)
    held, held_labels, held_rate = labelled_audio(data, heldout_split, target, slice_len,
                                                  cache_dir, log=log)
    if held_rate != rate:
        raise UserError(f"the train and {heldout_split} splits of {data} have different sample "
                        f"rates ({rate} and {held_rate} Hz)")
    log(f"training a {target} classifier on {len(waves)} notes, holding out {len(held)} "
        f"({heldout_split}), {epochs} epochs")
    model, accuracy = classifier.train(waves, labels, held, held_labels, target, rate,
                                       epochs=epochs, seed=seed, log=log)
    info = classifier.ClassifierInfo(target, model.output_shape[-1], slice_len, rate,
                                     accuracy, data)
    classifier.save(model, info, out)
    return info


def evaluate_generator(generator, condition: str, model, info: classifier.ClassifierInfo,
                       data: str, heldout_split: str = "valid", n: int = 0, k: int = 50,
                       cache_dir: str = "", max_train: int = 2000, seed: int = 0,
                       log=print) -> dict:
    """Generates audio and scores it against real held-out audio (evaluation/report.py).

    Args:
      generator: generator(z, labels, training=False) -> [B, T, 1].
      condition: the run's condition; its labels for the generated set are the
        held-out notes' labels of that column (so the generated set has the real
        label distribution), cycled to n.
      model, info: the classifier.
      n: generated examples (0 = as many as held-out notes).
      max_train: training notes used as the reference set (a seeded subset).
    Returns:
      The report dict (report.evaluate_sets), plus "heldout_split".
    """
    from wavegan_dist.inference.restore import generate_waves, latent_vectors

    held, held_labels, _ = labelled_audio(data, heldout_split, info.target, info.slice_len,
                                          cache_dir, log=log)
    train, _, _ = labelled_audio(data, "train", info.target, info.slice_len, cache_dir,
                                 max_rows=max_train, seed=seed, log=log)
    n = n or len(held)
    labels = None
    if condition != "none":
        cond = (held_labels if condition == info.target else
                labelled_audio(data, heldout_split, condition, 1024, cache_dir, log=log)[1])
        labels = np.resize(cond, n).astype(np.int32)
    waves = generate_waves(generator, latent_vectors(n, generator.latent_dim, seed), labels)
    scored_labels = labels if condition == info.target else None
    out = report.evaluate_sets(model, info, waves, scored_labels, held, held_labels, train,
                               k=min(k, len(train)), seed=seed)
    out["heldout_split"] = heldout_split
    return out
