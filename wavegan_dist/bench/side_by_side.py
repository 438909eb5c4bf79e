"""`bench data --prepared`: the deeplake and the prepared input paths side by side on
the same data, in one process: examples/s of 1 and 2 input pipelines each, a numpy
ceiling for the same bytes, and distinct instruments per global batch against a
uniformly random permutation's expected count.

"N pipelines" means what N hosts with one replica each would build:
dataset_fn(InputContext(N, p, N)) for p < N (disjoint rows or shards, each giving
global_batch / N examples per step), here built in one process and consumed
concurrently, one Python thread each, on this machine's cores. Examples are
decoded float32 slices on the host (no device copy), counted over all pipelines.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

import numpy as np

from wavegan_dist.bench import diversity
from wavegan_dist.bench.data import measure_pipelines, pipeline_datasets
from wavegan_dist.config import Config
from wavegan_dist.data import pipeline
from wavegan_dist.data.prepared import manifest as mf
from wavegan_dist.data.prepared import reader
from wavegan_dist.data.prepared.writer import prepare
from wavegan_dist.errors import UserError

PREPARED_TARGET = 24000.0  # examples/s of one prepared pipeline at slice 16384
DIVERSITY_TOLERANCE = 0.10  # prepared batches' distinct instruments vs a random permutation's
CEILING_BYTES = 256 << 20  # source buffer of the numpy ceiling: larger than the caches
PATHS = ("deeplake", "prepared")
PIPELINES = (1, 2)


def check_batch(global_batch: int) -> None:
    """Raises UserError unless 2 pipelines can split the global batch."""
    if global_batch % 2:
        raise UserError(
            f"--batch_size={global_batch} must be even with --prepared: 2 input "
            "pipelines take half each"
        )


def open_or_prepare(
    data: str,
    split: str,
    num_samples: int,
    source,
    prepared: str,
    slice_len: int,
    global_batch: int,
    log,
):
    """The prepared form of `source` at `prepared`, written there first if absent.

    Returns:
      reader.PreparedSource. Raises UserError if the folder was prepared from other
      data or with another selection, or cannot feed 1 and 2 pipelines `global_batch`.
    """
    cfg = Config.from_flat(
        dict(data=data, split=split, num_samples=num_samples, slice_len=slice_len)
    )
    if mf.read_json(mf.join(prepared, mf.MANIFEST)) is None:  # new, or interrupted
        log(f"preparing {source.path} into {prepared} (slice {slice_len})")
        prepare(cfg, prepared, log=log)
    opened = reader.open_prepared(prepared, cfg, log=log)
    if opened.manifest["source"] != source.path or opened.examples != len(source.rows):
        raise UserError(
            f"--prepared={prepared} holds {opened.examples} examples of "
            f"{opened.manifest['source']}, not the {len(source.rows)} rows of "
            f"--data={data}; give a new folder to prepare --data into"
        )
    for p in PIPELINES:  # too few shards or examples: one line
        opened.batches_per_epoch(p, global_batch // p)
    return opened


def numpy_ceiling(record_bytes: int, slice_len: int, global_batch: int, batches: int) -> dict:
    """What one thread of plain numpy does with the same bytes, as examples/s.

    Returns:
      {"copy": examples/s of copying the records' bytes batch by batch out of a buffer
      larger than the caches, "int16_to_float32": examples/s of the decode's minimum work
      (int16 [batch, slice_len] -> scaled float32) on the same buffer}.
    """
    rows = max(global_batch, CEILING_BYTES // record_bytes // global_batch * global_batch)
    source = np.random.default_rng(0).integers(0, 255, (rows, record_bytes), np.uint8)
    pcm = source[:, : 2 * slice_len].view(np.int16)
    out_bytes = np.empty((global_batch, record_bytes), np.uint8)
    out_float = np.empty((global_batch, slice_len), np.float32)
    starts = [(b * global_batch) % rows for b in range(batches)]
    start = time.perf_counter()
    for s in starts:
        np.copyto(out_bytes, source[s : s + global_batch])
    copy = time.perf_counter() - start
    start = time.perf_counter()
    for s in starts:
        np.multiply(pcm[s : s + global_batch], np.float32(1 / 32768), out=out_float)
    cast = time.perf_counter() - start
    examples = batches * global_batch
    return {"copy": examples / copy, "int16_to_float32": examples / cast}


def _dataset_fn(path: str, source, opened, slice_len: int, global_batch: int):
    if path == "deeplake":
        return pipeline.make_dataset_fn(source, slice_len, global_batch, seed=0)
    return opened.make_dataset_fn(global_batch, seed=0)


def compare_paths(
    source,
    opened,
    slice_len: int,
    global_batch: int,
    batches: dict,
    repeats: int,
    diversity_batches: int,
    log=print,
) -> dict:
    """Both paths on the same data, `repeats` rounds in rotating order; medians.

    Args:
      source: the deeplake DataSource of --data / --split (all rows).
      opened: its prepared form (open_or_prepare).
      global_batch: examples per global batch (even: 2 pipelines split it).
      batches: {"deeplake": n, "prepared": n} global batches timed per measurement
        of each path (the deeplake path is far slower at scale).
      repeats: rounds.
      diversity_batches: global batches the distinct-instrument counts average over.
    Returns:
      A dict of JSON values; keys say what they hold.
    """
    runs = {(path, p): [] for path in PATHS for p in PIPELINES}
    ceilings = {"copy": [], "int16_to_float32": []}
    loads = []
    order = list(runs)
    for r in range(repeats):
        loads.append(round(os.getloadavg()[0], 2))
        for key in order[r % len(order) :] + order[: r % len(order)]:
            path, p = key
            datasets = pipeline_datasets(
                _dataset_fn(path, source, opened, slice_len, global_batch), p
            )
            rate = measure_pipelines(datasets, global_batch, batches[path])["examples_per_sec"]
            runs[key].append(rate)
            del datasets
            gc.collect()
            log(f"round {r + 1}/{repeats}: {path}, {p} pipeline(s): {rate:,.0f} examples/s")
        for name, rate in numpy_ceiling(
            opened.manifest["record_bytes"], slice_len, global_batch, batches["prepared"]
        ).items():
            ceilings[name].append(rate)
    loads.append(round(os.getloadavg()[0], 2))
    out = {
        "side_by_side_rounds": repeats,
        **{f"side_by_side_batches_{path}": n for path, n in batches.items()},
        "prepared_folder": opened.path,
        "prepared_shards": len(opened.manifest["shards"]),
        "prepared_record_bytes": opened.manifest["record_bytes"],
        "load_average_1min_per_round": loads,
    }
    for (path, p), rates in runs.items():
        name = f"{path}_examples_per_sec_{p}_pipeline{'s' if p > 1 else ''}"
        out[name] = statistics.median(rates)
        out[name + "_runs"] = rates
    for name, rates in ceilings.items():
        out[f"numpy_{name}_examples_per_sec_1_thread"] = statistics.median(rates)
    out["prepared_target_examples_per_sec"] = PREPARED_TARGET
    out["meets_prepared_target"] = out["prepared_examples_per_sec_1_pipeline"] >= PREPARED_TARGET
    out.update(batch_diversity(source, opened, global_batch, diversity_batches))
    return out


def batch_diversity(source, opened, global_batch: int, batches: int) -> dict:
    """Mean distinct instruments per global batch for each path, and a random
    permutation's expected value."""
    instrument = np.asarray(source.dataset["instrument"][:])[source.rows]
    _, sizes = np.unique(instrument, return_counts=True)
    random = diversity.expected_distinct(sizes, global_batch)
    out = {
        "diversity_batches": batches,
        "instruments": int(len(sizes)),
        "batch_distinct_instruments_random_permutation": random,
    }
    for shuffle in ("rows", "blocks"):
        out[f"batch_distinct_instruments_deeplake_{shuffle}_shuffle"] = diversity.mean_distinct(
            diversity.deeplake_batches(instrument, len(instrument), global_batch, batches, shuffle)
        )
    worst = float("inf")
    for p in PIPELINES:
        name = f"batch_distinct_instruments_prepared_{p}_pipeline{'s' if p > 1 else ''}"
        out[name] = diversity.mean_distinct(
            diversity.prepared_batches(opened, instrument, global_batch, batches, p)
        )
        worst = min(worst, out[name] / random)
    out["prepared_diversity_over_random_worst"] = worst
    out["meets_diversity_target"] = worst >= 1 - DIVERSITY_TOLERANCE
    return out
