"""How fast the deeplake -> tf.data pipeline delivers examples, next to how fast the
training step consumes them, measured in one run on the same machine."""

from __future__ import annotations

import threading
import time

import tensorflow as tf

from wavegan_dist.config import Config
from wavegan_dist.data import pipeline
from wavegan_dist.data.source import DataSource
from wavegan_dist.training.loop import make_trainer


def _distributed(
    strategy, source: DataSource, slice_len: int, global_batch: int, shuffle: str = "rows"
):
    return strategy.distribute_datasets_from_function(
        pipeline.make_dataset_fn(source, slice_len, global_batch, seed=0, shuffle=shuffle)
    )


def measure_pipeline(
    strategy: tf.distribute.Strategy,
    source: DataSource,
    slice_len: int,
    global_batch: int,
    batches: int,
    warmup: int = 10,
    shuffle: str = "rows",
) -> dict:
    """Times `batches` global batches through the distributed input pipeline.

    Args:
      shuffle: the BatchPlan order ("blocks", "rows", "none"), which decides how
        contiguous the deeplake reads are.

    Returns:
      {"examples_per_sec", "seconds", "batches"}; examples are slice_len-sample
      float32 examples delivered to the replicas' devices.
    """
    dataset = _distributed(strategy, source, slice_len, global_batch, shuffle)
    iterator = iter(dataset)
    try:
        for _ in range(warmup):
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(iterator)
        # Make sure the last batch really arrived before stopping the clock.
        strategy.experimental_local_results(batch[0])[0].numpy()
        seconds = time.perf_counter() - start
    finally:
        del iterator, dataset
    return {
        "examples_per_sec": batches * global_batch / seconds,
        "seconds": seconds,
        "batches": batches,
    }


def measure_training(
    strategy: tf.distribute.Strategy,
    source: DataSource,
    slice_len: int,
    dim: int,
    global_batch: int,
    n_critic: int,
    steps: int,
) -> dict:
    """Times full WaveGAN training steps (n_critic critic updates + 1 generator update).

    Returns:
      {"consumed_examples_per_sec" (real examples the step takes per second),
       "step_seconds", "first_step_seconds" (tracing included), "steps"}.
    """
    # Training's own trainer and defaults (penalty weight, learning rate, generator EMA).
    trainer = make_trainer(
        Config.from_flat(
            dict(slice_len=slice_len, dim=dim, batch_size=global_batch, n_critic=n_critic)
        ),
        strategy,
    )
    dataset = _distributed(strategy, source, slice_len, global_batch)
    iterator = iter(dataset)
    try:
        start = time.perf_counter()
        float(trainer.train_step(iterator)["critic"])
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            out = trainer.train_step(iterator)
        float(out["critic"])
        seconds = (time.perf_counter() - start) / steps
    finally:
        del iterator, dataset
    return {
        "consumed_examples_per_sec": n_critic * global_batch / seconds,
        "step_seconds": seconds,
        "first_step_seconds": first,
        "steps": steps,
    }


def pipeline_datasets(make_dataset_fn, num_pipelines: int) -> list[tf.data.Dataset]:
    """The per-pipeline datasets that `num_pipelines` hosts (one replica each) would build
    from a dataset_fn: dataset_fn(InputContext(num_pipelines, p, num_pipelines))."""
    return [
        make_dataset_fn(tf.distribute.InputContext(num_pipelines, p, num_pipelines))
        for p in range(num_pipelines)
    ]


def measure_pipelines(
    datasets: list[tf.data.Dataset], global_batch: int, batches: int, warmup: int = 10
) -> dict:
    """Times input pipelines that together give one global batch per step, each consumed
    by its own Python thread, all at once in this process (on the host: no devices).

    Args:
      datasets: one per input pipeline, each yielding its part of every global batch.
      global_batch: examples per global batch over all the pipelines.
      batches: global batches timed, after `warmup` untimed ones (which also fill
        shuffle buffers).
    Returns:
      {"examples_per_sec", "seconds", "batches"}, examples counted over all pipelines.
    """
    iterators = [iter(d) for d in datasets]
    ready = threading.Barrier(len(iterators) + 1)
    errors = []

    def consume(iterator):
        try:
            for _ in range(warmup):
                next(iterator)
            ready.wait()
            for _ in range(batches):
                out = next(iterator)
            out[0].numpy()
        except BaseException as err:  # re-raised in the caller's thread
            errors.append(err)
            ready.abort()

    threads = [threading.Thread(target=consume, args=(it,), daemon=True) for it in iterators]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    del iterators
    if errors:
        raise errors[0]
    return {
        "examples_per_sec": batches * global_batch / seconds,
        "seconds": seconds,
        "batches": batches,
    }
