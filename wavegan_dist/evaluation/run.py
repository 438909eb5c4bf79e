"""Library entry points of evaluation: train a classifier on a dataset, evaluate a run.

The command line (wavegan_dist/evaluate.py), in-training evaluation and the learning
benchmark all call these with plain arguments.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from wavegan_dist.data.dataset_cache import BUILTIN_SETS
from wavegan_dist.data.extract import extract_audio
from wavegan_dist.data.filters import RowFilter
from wavegan_dist.data.labels import attach_labels
from wavegan_dist.data.source import load_source, resolve_path
from wavegan_dist.errors import UserError
from wavegan_dist.evaluation import classifier, pitch_judge, report


def check_heldout_split(data: str, heldout_split: str, cache_dir: str = "", log=print) -> None:
    """Refuses a held-out split that is the training data itself.

    A single dataset (no train/valid/test subfolders, no "{split}" in the path) is
    read whatever the split, so its "held-out" notes would be the training notes and
    every held-out score would describe the training set. Raises UserError then,
    unless heldout_split is "train" (scoring against the training notes on purpose).
    """
    if data in BUILTIN_SETS:  # split by construction; resolving it would log twice more
        return
    held = resolve_path(data, heldout_split, cache_dir, log)
    if heldout_split != "train" and held == resolve_path(data, "train", cache_dir, log):
        raise UserError(
            f"--data={data} is one dataset with no {heldout_split} split, so its held-out notes "
            "would be the training notes; ingest the audio with a held-out split (python -m "
            "wavegan_dist.ingest --format=audio-folder --valid_fraction=0.1 --source=AUDIO "
            "--dest=DATASET), or score against the training notes knowingly with "
            "--heldout_split=train (--eval_split=train in training)"
        )


def labelled_audio(
    data: str,
    split: str,
    target: str,
    slice_len: int,
    cache_dir: str = "",
    max_rows: int = 0,
    seed: int = 0,
    log=print,
    row_filter: RowFilter | None = None,
):
    """The first slices of a split's notes that carry a `target` label.

    Args:
      data, split, cache_dir: as training's --data, --split, --data_cache.
      target: "pitch" or "instrument_family".
      slice_len: samples per example.
      max_rows: keep a seeded random subset of at most this many rows (0 = all).
      row_filter: which rows of the split (default: all).
    Returns:
      (audio float32 [N, slice_len], labels int32 [N], sample_rate).
    """
    source = load_source(data, split, row_filter or RowFilter(), cache_dir, log=log)
    source, labels = attach_labels(source, target, log)
    rows = source.rows
    if max_rows and len(rows) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
        rows, labels = rows[keep], labels[keep]
    return extract_audio(source.dataset, rows, slice_len), labels, source.sample_rate


def train_classifier(
    data: str,
    out: str,
    target: str = "pitch",
    slice_len: int = 16384,
    heldout_split: str = "valid",
    epochs: int = 40,
    cache_dir: str = "",
    seed: int = 0,
    log=print,
) -> classifier.ClassifierInfo:
    """Trains the metric classifier on `data`'s train split and saves it to `out`.

    Returns:
      The saved ClassifierInfo, with the held-out split's accuracy. Raises UserError if
      the held-out split is the train split's dataset (check_heldout_split).
    """
    check_heldout_split(data, heldout_split, cache_dir, log)
    waves, labels, rate = labelled_audio(data, "train", target, slice_len, cache_dir, log=log)
    held, held_labels, held_rate = labelled_audio(
        data, heldout_split, target, slice_len, cache_dir, log=log
    )
    if held_rate != rate:
        raise UserError(
            f"the train and {heldout_split} splits of {data} have different sample "
            f"rates ({rate} and {held_rate} Hz)"
        )
    log(
        f"training a {target} classifier on {len(waves)} notes, holding out {len(held)} "
        f"({heldout_split}), {epochs} epochs"
    )
    model, accuracy = classifier.train(
        waves, labels, held, held_labels, target, rate, epochs=epochs, seed=seed, log=log
    )
    info = classifier.ClassifierInfo(
        target, model.output_shape[-1], slice_len, rate, accuracy, data
    )
    classifier.save(model, info, out)
    return info


@dataclasses.dataclass
class References:
    """Real audio a generated set is scored against, loaded once.

    Attributes:
      heldout: float32 [M, slice_len] held-out notes; heldout_labels: int [M] (classifier target).
      train: float32 [R, slice_len] training notes (a seeded subset).
      condition_labels: int [M] labels the generator is given (the held-out notes'
        labels of the run's condition), or None for an unconditional run.
      scored: whether the generated set's pitch accuracy can be measured (the run is
        conditioned on what the classifier predicts).
      heldout_split: the split name.
      condition: the run's condition ("none", "pitch", ...).
      heldout_pitch: int [M] MIDI pitches of the held-out notes when known (a pitch
        classifier or a pitch-conditional run), else None: the independent judge's.
      heldout_judge: the judge's figures of the held-out notes, kept by the first
        score() so that later evaluations (--eval_every) do not measure them again.
    """

    heldout: np.ndarray
    heldout_labels: np.ndarray
    train: np.ndarray
    condition_labels: np.ndarray | None
    scored: bool
    heldout_split: str
    condition: str = "none"
    heldout_pitch: np.ndarray | None = None
    heldout_judge: dict | None = None


def load_references(
    info: classifier.ClassifierInfo,
    data: str,
    condition: str,
    heldout_split: str = "valid",
    cache_dir: str = "",
    max_train: int = 2000,
    seed: int = 0,
    log=print,
    row_filter: RowFilter | None = None,
    train_split: str = "train",
) -> References:
    """Reads the held-out and training notes for scoring (see References).

    Args:
      row_filter: the rows the run trained on (its data filters); the training notes
        are those rows of `train_split`, the held-out notes the rows of `heldout_split`
        that pass the same filters (all but num_samples, a count of leading rows).
      train_split: the split the run trained on.

    Raises UserError if `data` is not at the classifier's sample rate (its scores would
    describe resampled-by-accident audio), or if the held-out split is the train split's
    dataset (check_heldout_split)."""
    check_heldout_split(data, heldout_split, cache_dir, log)
    train_filter = row_filter or RowFilter()
    held_filter = dataclasses.replace(train_filter, num_samples=0)
    held, held_labels, rate = labelled_audio(
        data, heldout_split, info.target, info.slice_len, cache_dir, log=log, row_filter=held_filter
    )
    train, _, train_rate = labelled_audio(
        data,
        train_split,
        info.target,
        info.slice_len,
        cache_dir,
        max_rows=max_train,
        seed=seed,
        log=log,
        row_filter=train_filter,
    )
    for split, got in ((heldout_split, rate), (train_split, train_rate)):
        if got != info.sample_rate:
            raise UserError(
                f"{data} ({split}) is {got} Hz audio but the classifier takes "
                f"{info.sample_rate} Hz; score with a classifier trained on {got} Hz "
                "data (python -m wavegan_dist.evaluate train-classifier)"
            )
    cond = None
    if condition == info.target:
        cond = held_labels
    elif condition != "none":
        cond = labelled_audio(
            data, heldout_split, condition, 1024, cache_dir, log=log, row_filter=held_filter
        )[1]
    pitch = held_labels if info.target == "pitch" else cond if condition == "pitch" else None
    return References(
        held, held_labels, train, cond, condition == info.target, heldout_split, condition, pitch
    )


def score(
    generate,
    latent_dim: int,
    model,
    info: classifier.ClassifierInfo,
    refs: References,
    n: int = 0,
    k: int = 50,
    seed: int = 0,
) -> dict:
    """Generates n examples and scores them next to the held-out notes.

    Args:
      generate: (z float32 [B, latent_dim], labels int32 [B] or None) -> float32 [B, T(, 1)].
      n: generated examples (0 = as many as held-out notes).
    Returns:
      The report dict of report.evaluate_sets, plus "heldout_split".
    """
    from wavegan_dist.inference.restore import latent_vectors

    n = n or len(refs.heldout)
    labels = (
        None
        if refs.condition_labels is None
        else np.resize(refs.condition_labels, n).astype(np.int32)
    )
    z = latent_vectors(n, latent_dim, seed)
    waves = np.concatenate(
        [
            np.asarray(generate(z[i : i + 64], None if labels is None else labels[i : i + 64]))
            for i in range(0, n, 64)
        ]
    )
    out = report.evaluate_sets(
        model,
        info,
        waves,
        labels if refs.scored else None,
        refs.heldout,
        refs.heldout_labels,
        refs.train,
        k=min(k, len(refs.train)),
        seed=seed,
        generated_pitch=labels if refs.condition == "pitch" else None,
        heldout_pitch=refs.heldout_pitch,
        heldout_judge=refs.heldout_judge,
    )
    if refs.heldout_judge is None:
        refs.heldout_judge = {key: out["real_heldout"][key] for key in pitch_judge.JUDGE_KEYS}
    out["heldout_split"] = refs.heldout_split
    return out


def evaluate_generator(
    generator,
    condition: str,
    model,
    info: classifier.ClassifierInfo,
    data: str,
    heldout_split: str = "valid",
    n: int = 0,
    k: int = 50,
    cache_dir: str = "",
    max_train: int = 2000,
    seed: int = 0,
    log=print,
    row_filter: RowFilter | None = None,
    train_split: str = "train",
) -> dict:
    """Loads the references and scores a restored generator (see score()).

    Args:
      generator: generator(z, labels, training=False) -> [B, T, 1].
      condition: the run's condition.
      row_filter, train_split: the run's data selection (see load_references).
    """
    refs = load_references(
        info,
        data,
        condition,
        heldout_split,
        cache_dir,
        max_train,
        seed,
        log,
        row_filter,
        train_split,
    )
    return score(
        lambda z, labels: generator(z, labels, training=False).numpy(),
        generator.latent_dim,
        model,
        info,
        refs,
        n,
        k,
        seed,
    )
