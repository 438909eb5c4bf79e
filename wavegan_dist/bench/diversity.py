"""Batch diversity: distinct instruments per global batch, for the deeplake path's
batch plans, for the prepared path's real stream, and for a uniformly random
permutation (the expected value, exactly)."""

from __future__ import annotations

import math

import numpy as np

from wavegan_dist.data import pipeline
from wavegan_dist.data.prepared.writer import write_order


def expected_distinct(group_sizes: np.ndarray, batch: int) -> float:
    """Expected distinct groups in `batch` items drawn without replacement, uniformly
    (a batch of a uniformly random permutation).

    Args:
      group_sizes: int [G] items per group (e.g. notes per instrument).
      batch: items drawn.
    Returns:
      sum over groups of P(the group appears) = 1 - C(N - n_g, B) / C(N, B).
    """
    sizes = np.asarray(group_sizes, np.int64)
    total = int(sizes.sum())
    if batch > total:
        raise ValueError(f"batch {batch} is larger than the {total} items")
    log_all = math.lgamma(total + 1) - math.lgamma(total - batch + 1)
    absent = 0.0
    for n in sizes[sizes > 0]:
        rest = total - int(n)
        if rest >= batch:
            absent += math.exp(math.lgamma(rest + 1) - math.lgamma(rest - batch + 1) - log_all)
    return float(len(sizes[sizes > 0]) - absent)


def mean_distinct(groups_of_batches) -> float:
    """Mean number of distinct values per batch, over an iterable of int arrays."""
    counts = [len(np.unique(g)) for g in groups_of_batches]
    return float(np.mean(counts))


def deeplake_batches(
    instrument: np.ndarray,
    num_rows: int,
    global_batch: int,
    batches: int,
    shuffle: str,
    seed: int = 0,
):
    """The instruments of the deeplake path's first `batches` global batches.

    Args:
      instrument: int [num_rows] instrument of each selected row, in selection order.
      shuffle: the BatchPlan order ("rows", "blocks", "none").
    Yields:
      int [global_batch] per batch.
    """
    plan = pipeline.BatchPlan(num_rows, global_batch, seed, shuffle)
    for b in range(batches):
        yield instrument[plan.batch(b)]


def prepared_batches(
    source,
    instrument: np.ndarray,
    global_batch: int,
    batches: int,
    num_pipelines: int,
    seed: int = 0,
):
    """The instruments of the prepared path's first `batches` global batches, read from
    the real stream (with positions) of each of `num_pipelines` pipelines.

    Args:
      source: a reader.PreparedSource made from the rows `instrument` describes.
      instrument: int [examples] instrument of each selected row, in selection order.
    Yields:
      int [global_batch] per batch: the union of the pipelines' parts.
    """
    per = global_batch // num_pipelines
    order = write_order(source.examples, int(source.manifest["seed"]))
    streams = [
        iter(source.pipeline_dataset(num_pipelines, p, per, per, seed, with_positions=True))
        for p in range(num_pipelines)
    ]
    for _ in range(batches):
        positions = np.concatenate([next(s)[2].numpy() for s in streams])
        yield instrument[order[positions]]
