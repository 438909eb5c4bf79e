"""How fast one WGAN-GP critic update and one generator update run, against the machine's
peak, on 1 and 2 logical CPU replicas, and against the same updates in PyTorch.

What is timed (all in one process, side by side):

- TensorFlow, the real training step's code: a `WganGpTrainer` from
  `training.steps.build_trainer` on the networks `models.build_models` builds, with
  n_critic = 1. One **critic update** is the trainer's `critic_update` (one
  `strategy.run` of the per-replica critic function: generator forward for the fakes,
  critic on [real; fake] and on the interpolates, gradient penalty with its double
  backward, Adam; then the cross-replica SUM of its three metrics) on one global batch
  taken from a distributed `tf.data` iterator, the call `train_step` makes n_critic
  times. One **generator update** is the trainer's `generator_update` (the per-replica
  generator function, the update of the generator's EMA at the default
  --generator_ema, the reduction of its loss) and the step increment: the generator
  part of `train_step`. Each is its own
  `tf.function`, fetched to the host (a scalar) to stop the clock. One **training step**
  is the trainer's `train_step` itself (n_critic = 1): ONE `strategy.run` of the whole
  replica step (the critic update, the generator update, the EMA update, the step
  counter and one all-reduce of the metrics), as training runs it; timed on 1 and 2
  replicas, its FLOPs are the two updates' together. Real batches are
  random audio held in memory, shaped like the input pipeline's elements
  (audio float32 [per_replica, slice_len, 1], label int32 [per_replica]) and
  delivered by `strategy.distribute_datasets_from_function`, so no deeplake read is
  timed.
- 1 replica: OneDeviceStrategy on /cpu:0 (what a CPU run without --cpu_replicas
  uses); 2 replicas: MirroredStrategy over the two logical CPU devices /cpu:0 and
  /cpu:1 that the host CPU is split into at start-up. Same global batch, same
  initial weights: the 2-vs-1 ratio is the cost of distributing over replicas.
  With device="gpu": /gpu:0, and MirroredStrategy (TensorFlow's default all-reduce)
  over the first two GPUs.
- precision ("fp32" or "bf16", as training's --precision) and jit_compile (XLA as
  training's --jit_compile: each whole update and step on 1 replica, each replica's
  forward and backward pass on 2)
  apply to every TensorFlow row,
  and the peak kernels run in the same dtype.
- The plain formulation: the same trainer, 1 replica, with kernels="reference"
  (Keras's own Conv1D / Conv1DTranspose, LeakyReLU and Adam) and the same initial
  weights, so the speed-up of kernels="fast" (models/fast_conv.py,
  models/activations.py, training/optimizers.py) is measured side by side.
- PyTorch (bench/torch_wavegan.py), when importable: the same networks with the
  same initial weights (copied from TensorFlow), the same real batches, the same
  updates, with torch.set_num_threads(cores). It is a float32 CPU twin, so it is
  measured only for fp32 on CPU (otherwise the ratio would not compare like with like).
- The peak (bench/peak.py): a 2048^3 matmul and a large Conv1D in TensorFlow.

Every measurement first runs WARMUP untimed times (tracing), then once per round
for `repeats` rounds; the order of the measurements rotates from round to round,
so that a burst of load from other processes spreads over all of them. Reported
figures are medians. FLOPs are analytic (bench/flops.py); GFLOP/s = FLOPs of one
update / median seconds of one update.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import statistics
import time

import numpy as np

from wavegan_dist.errors import UserError

WARMUP = 1
REAL_BATCHES = 4  # distinct in-memory real batches, cycled
TWO_REPLICAS = 2
# What the report holds for each timed update and each place it ran on.
# Report key of each timed thing (the whole step is what training calls per step).
KEYS = {"critic": "critic_update", "generator": "generator_update", "step": "train_step"}
FIGURES = (
    "examples_per_sec",
    "seconds",
    "gflops",
    "fraction_of_peak",
    "first_call_seconds",
    "samples_seconds",
    "best_seconds",
)

TARGET_TF_OVER_TORCH = 1.15  # critic update examples/s, TF / PyTorch
TARGET_FRACTION_OF_PEAK = 0.80  # critic update, 1 replica
TARGET_TWO_OVER_ONE = 0.90  # critic update examples/s, 2 replicas / 1 replica

TORCH_MISSING = "PyTorch not installed: pip install -c constraints.txt '.[bench]'"
TORCH_SKIPPED = "PyTorch comparison skipped (--no_torch)"
TORCH_NOT_LIKE_FOR_LIKE = (
    "PyTorch comparison not run: the PyTorch twin computes fp32 on the CPU, and this run is {what}"
)
DEVICES = ("cpu", "gpu")
PEAK_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}  # the peak in each --precision


def check_sizes(
    slice_len: int,
    dim: int,
    global_batch: int,
    repeats: int,
    device: str = "cpu",
    precision: str = "fp32",
) -> None:
    """Raises UserError for sizes or options the benchmark cannot run (before anything
    is built)."""
    if device not in DEVICES:
        raise UserError(f"--device={device} is not one of {', '.join(DEVICES)}")
    if precision not in PEAK_DTYPES:
        raise UserError(f"--precision={precision} is not one of {', '.join(PEAK_DTYPES)}")
    if global_batch < 1 or global_batch % TWO_REPLICAS:
        raise UserError(
            f"--batch_size={global_batch} does not divide over the "
            f"{TWO_REPLICAS} replicas of the 2-replica measurement; use a "
            f"positive multiple of {TWO_REPLICAS}"
        )
    if dim < 1:
        raise UserError(f"--dim={dim} must be at least 1")
    if repeats < 1:
        raise UserError(f"--repeats={repeats} must be at least 1")
    from wavegan_dist.models import ModelSpec, check_slice_len

    check_slice_len(ModelSpec(slice_len=slice_len, dim=dim))


def configure_devices(device: str) -> None:
    """Makes the two devices of the 2-replica measurement; call before TF's first op.

    cpu: splits the host CPU into two logical devices. gpu: checks that TensorFlow sees
    at least two GPUs (UserError otherwise; one GPU cannot be compared with two).
    """
    import tensorflow as tf

    from wavegan_dist import strategy as strategies

    if device == "cpu":
        strategies.configure_cpu_devices(TWO_REPLICAS)
        return
    found = len(tf.config.list_logical_devices("GPU"))  # the ones TF could start
    if found < TWO_REPLICAS:
        raise UserError(
            f"--device=gpu compares 1 and {TWO_REPLICAS} GPUs, but TensorFlow "
            f"sees {found}; run on a machine with {TWO_REPLICAS} or more GPUs, or "
            "use --device=cpu"
        )


def bench_strategies(device: str):
    """(1-replica strategy, 2-replica strategy) on `device` (configure_devices first)."""
    import tensorflow as tf

    from wavegan_dist import strategy as strategies

    if device == "cpu":
        return (
            tf.distribute.OneDeviceStrategy("/cpu:0"),
            strategies.mirrored_on_cpus(TWO_REPLICAS),
        )
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")[:TWO_REPLICAS]]
    return tf.distribute.OneDeviceStrategy(gpus[0]), strategies.mirrored(gpus)


def torch_module():
    """The torch module, or None if it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def real_batches(
    slice_len: int, global_batch: int, count: int = REAL_BATCHES, seed: int = 0
) -> np.ndarray:
    """Random audio in [-1, 1): float32 [count, global_batch, slice_len, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (count, global_batch, slice_len, 1)).astype(np.float32)


def _dataset_fn(real: np.ndarray, global_batch: int):
    """dataset_fn for distribute_datasets_from_function: the pipeline's element shapes,
    each replica taking its block of rows of every global batch in turn."""
    import tensorflow as tf

    count, _, slice_len, _ = real.shape

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local * per_replica
        chunks = real[:, first : first + local * per_replica].reshape(
            count * local, per_replica, slice_len, 1
        )
        labels = np.zeros([count * local, per_replica], np.int32)
        return tf.data.Dataset.from_tensor_slices((chunks, labels)).repeat().prefetch(2)

    return dataset_fn


class TfUpdates:
    """A WganGpTrainer (n_critic 1) and one tf.function per update (module docstring).

    Args:
      strategy: the tf.distribute strategy to run on.
      spec: the ModelSpec of the networks.
      global_batch: examples per update over all replicas.
      real: float32 [K, global_batch, slice_len, 1] real batches, cycled.
    """

    def __init__(
        self,
        strategy,
        spec,
        global_batch: int,
        real: np.ndarray,
        seed: int = 0,
        weights_from: "TfUpdates | None" = None,
        jit_compile: bool = False,
    ):
        import tensorflow as tf

        from wavegan_dist.config import Config
        from wavegan_dist.training.loop import make_trainer

        # Training's defaults (learning rate, penalty weight, generator EMA, ...) for the
        # networks `spec` describes; n_critic 1, so one critic update is one call.
        cfg = Config.from_flat(
            dict(
                slice_len=spec.slice_len,
                dim=spec.dim,
                precision=spec.precision,
                kernels=spec.kernels,
                batch_size=global_batch,
                n_critic=1,
                seed=seed,
                jit_compile=jit_compile,
            )
        )
        if cfg.model_spec() != spec:
            raise ValueError(f"TfUpdates times Config's networks; {spec} differs from them")
        self.strategy = strategy
        self.trainer = trainer = make_trainer(cfg, strategy)
        if weights_from is not None:  # same variables whatever kernels built them
            for mine, theirs in (
                (trainer.generator, weights_from.trainer.generator),
                (trainer.critic, weights_from.trainer.critic),
            ):
                mine.set_weights(theirs.get_weights())
        self._dataset = strategy.distribute_datasets_from_function(_dataset_fn(real, global_batch))
        self._iterator = iter(self._dataset)

        # The trainer's own updates, as train_step runs them.
        @tf.function
        def critic_update(iterator):
            return trainer.critic_update(next(iterator), trainer.step.read_value())["critic"]

        @tf.function
        def generator_update():
            loss = trainer.generator_update(trainer.step.read_value())
            trainer.step.assign_add(1)
            return loss

        self._critic_update, self._generator_update = critic_update, generator_update

    def critic(self) -> float:
        """Runs one critic update; returns its loss (waits for it)."""
        return float(self._critic_update(self._iterator))

    def generator(self) -> float:
        """Runs one generator update; returns its loss (waits for it)."""
        return float(self._generator_update())

    def step(self) -> float:
        """Runs one whole training step; returns its generator loss (waits for it)."""
        return float(self.trainer.train_step(self._iterator)["generator"])

    def close(self) -> None:
        del self._iterator, self._dataset


class TorchUpdates:
    """The PyTorch updates on the same real batches, with weights copied from `source`
    (a TfUpdates), so both start from the same networks."""

    def __init__(self, spec, global_batch: int, real: np.ndarray, source: TfUpdates):
        import torch

        from wavegan_dist.bench import torch_wavegan

        torch.set_num_threads(os.cpu_count() or 1)
        self.gan = torch_wavegan.TorchWaveGAN(spec, global_batch)
        torch_wavegan.load_keras_weights(
            self.gan.generator, self.gan.critic, source.trainer.generator, source.trainer.critic
        )
        self._real = [torch.from_numpy(np.ascontiguousarray(b.transpose(0, 2, 1))) for b in real]
        self._next = 0

    def critic(self) -> float:
        batch = self._real[self._next % len(self._real)]
        self._next += 1
        return self.gan.critic_update(batch)

    def generator(self) -> float:
        return self.gan.generator_update()


def _timed(fn) -> float:
    start = time.perf_counter()
    loss = fn()
    seconds = time.perf_counter() - start
    if not math.isfinite(loss):
        raise RuntimeError(f"a timed update returned a non-finite loss ({loss})")
    return seconds


def measure(
    slice_len: int = 16384,
    dim: int = 64,
    global_batch: int = 16,
    repeats: int = 5,
    use_torch: bool = True,
    compare_plain: bool = True,
    log=lambda message: None,
    peak_kwargs: dict | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    jit_compile: bool = False,
) -> dict:
    """Runs the whole benchmark (module docstring) and returns its report.

    configure_devices(device) must have run before TensorFlow ran its first op.

    Args:
      device: "cpu" or "gpu", where the TensorFlow updates and the peak run.
      precision: "fp32" or "bf16" (mixed: bfloat16 compute, float32 weights).
      jit_compile: XLA-compile as training's --jit_compile does.
      use_torch: measure PyTorch too if it is importable.
      compare_plain: measure the plain kernels="reference" networks too (1 replica).
      log: called with progress lines.
      peak_kwargs: PeakMeter arguments (smaller kernels for a quick check).

    Returns:
      A flat dict. Sizes and options: slice_len, dim, batch_size (global), repeats,
      warmup, device, precision, jit_compile, cpu_cores, tensorflow_version,
      torch_version, torch_threads, torch_status.
      FLOPs: critic_update_flops, generator_update_flops (global batch),
      critic_update_zero_gradient_path_flops (work autodiff may add, not counted),
      flops_match_built_models. Peak: peak_gflops, peak_source ("matmul" or "conv"),
      peak_matmul_gflops, peak_conv_gflops, peak_dtype. For U in critic, generator and R in
      1_replica, 2_replicas: U_update_{seconds, examples_per_sec, gflops,
      fraction_of_peak, first_call_seconds, samples_seconds, best_seconds}_R (best:
      the fastest sample, a hint of the uncontended speed), the same for the whole
      step as train_step_{...}_R (train_step_flops: both updates' FLOPs), and the same for
      PyTorch as torch_U_update_{...} and for the plain Keras formulation as
      plain_U_update_{...} (None when not measured). kernels: what the TF rows
      use. Ratios of examples/s: two_over_one_replica_U (2 replicas / 1; also _step),
      U_update_tf_over_torch (TF 1 replica / PyTorch, or None),
      U_update_fast_over_plain (TF 1 replica / plain Keras, or None). Targets: meets_tf_over_torch_target (or
      None), meets_fraction_of_peak_target, meets_two_over_one_replica_target.
    """
    check_sizes(slice_len, dim, global_batch, repeats, device, precision)
    import tensorflow as tf

    from wavegan_dist import strategy as strategies
    from wavegan_dist.bench import flops
    from wavegan_dist.bench.peak import PeakMeter
    from wavegan_dist.models import ModelSpec, registry

    spec = registry.complete(ModelSpec(slice_len=slice_len, dim=dim, precision=precision))
    like_for_like = device == "cpu" and precision == "fp32"
    torch = torch_module() if use_torch and like_for_like else None
    if torch:
        status = "measured"
    elif use_torch and not like_for_like:
        status = TORCH_NOT_LIKE_FOR_LIKE.format(what=f"{precision} on {device}")
    elif use_torch or importlib.util.find_spec("torch") is None:
        status = TORCH_MISSING
    else:
        status = TORCH_SKIPPED
    report = {
        "slice_len": slice_len,
        "dim": dim,
        "batch_size": global_batch,
        "kernels": spec.kernels,
        "device": device,
        "precision": precision,
        "jit_compile": jit_compile,
        "repeats": repeats,
        "warmup": WARMUP,
        "cpu_cores": os.cpu_count(),
        "tensorflow_version": tf.__version__,
        "torch_version": torch.__version__ if torch else None,
        "torch_status": status,
    }
    real = real_batches(slice_len, global_batch)
    one, two = bench_strategies(device)
    log(f"building: {strategies.describe(one)}")
    runs = {"1_replica": TfUpdates(one, spec, global_batch, real, jit_compile=jit_compile)}
    log(f"building: {strategies.describe(two)}")
    runs["2_replicas"] = TfUpdates(two, spec, global_batch, real, jit_compile=jit_compile)
    problems = flops.check_weights(
        spec, runs["1_replica"].trainer.generator, runs["1_replica"].trainer.critic
    )
    for problem in problems:
        log(f"warning: FLOP count does not describe the built networks: {problem}")
    report["flops_match_built_models"] = not problems
    if compare_plain:
        log("building: the plain formulation (kernels=reference), 1 replica")
        runs["plain"] = TfUpdates(
            one,
            dataclasses.replace(spec, kernels="reference"),
            global_batch,
            real,
            weights_from=runs["1_replica"],
            jit_compile=jit_compile,
        )
    if torch:
        log(f"building: PyTorch {torch.__version__} ({os.cpu_count()} threads)")
        runs["torch"] = TorchUpdates(spec, global_batch, real, runs["1_replica"])
        report["torch_threads"] = torch.get_num_threads()
    peak = PeakMeter(
        one.extended.worker_devices[0], dtype=PEAK_DTYPES[precision], **(peak_kwargs or {})
    )

    jobs = {}
    for run_name, run in runs.items():
        jobs[("critic", run_name)] = run.critic
        jobs[("generator", run_name)] = run.generator
        if run_name in ("1_replica", "2_replicas"):
            jobs[("step", run_name)] = run.step
    seconds = {key: [] for key in jobs}
    first = {}
    for key, fn in jobs.items():
        log(f"warm-up (first call; TF traces): {KEYS[key[0]]}, {key[1]}")
        first[key] = _timed(fn)
        for _ in range(WARMUP - 1):
            _timed(fn)
    order = list(jobs) + ["peak"]
    for r in range(repeats):
        log(f"timed round {r + 1}/{repeats}")
        for key in order[r % len(order) :] + order[: r % len(order)]:
            if key == "peak":
                peak.sample()
            else:
                seconds[key].append(_timed(jobs[key]))

    peak_result = peak.result()
    report.update(
        {
            "peak_gflops": peak_result["peak_gflops"],
            "peak_source": peak_result["peak_source"],
            "peak_matmul_gflops": peak_result["matmul_gflops"],
            "peak_conv_gflops": peak_result["conv_gflops"],
            "peak_dtype": peak.dtype,
            "critic_update_flops": flops.critic_update_flops(spec, global_batch),
            "generator_update_flops": flops.generator_update_flops(spec, global_batch),
            "critic_update_zero_gradient_path_flops": flops.zero_gradient_path_flops(
                spec, global_batch
            ),
        }
    )
    report["train_step_flops"] = report["critic_update_flops"] + report["generator_update_flops"]
    for (update, run_name), samples in seconds.items():
        median = statistics.median(samples)
        prefixed = run_name in ("torch", "plain")
        key = f"{run_name}_{KEYS[update]}" if prefixed else KEYS[update]
        suffix = "" if prefixed else f"_{run_name}"
        gflops = report[f"{KEYS[update]}_flops"] / median / 1e9
        values = {
            "seconds": median,
            "samples_seconds": samples,
            "best_seconds": min(samples),
            "first_call_seconds": first[(update, run_name)],
            "examples_per_sec": global_batch / median,
            "gflops": gflops,
            "fraction_of_peak": gflops / report["peak_gflops"],
        }
        for name in FIGURES:
            report[f"{key}_{name}{suffix}"] = values[name]
    for update in ("critic", "generator"):
        one_rate = report[f"{update}_update_examples_per_sec_1_replica"]
        report[f"two_over_one_replica_{update}"] = (
            report[f"{update}_update_examples_per_sec_2_replicas"] / one_rate
        )
        torch_rate = report.get(f"torch_{update}_update_examples_per_sec")
        report[f"{update}_update_tf_over_torch"] = one_rate / torch_rate if torch_rate else None
        plain_rate = report.get(f"plain_{update}_update_examples_per_sec")
        report[f"{update}_update_fast_over_plain"] = one_rate / plain_rate if plain_rate else None
        for name in FIGURES:
            for other in ("torch", "plain"):
                report.setdefault(f"{other}_{update}_update_{name}", None)
    report["two_over_one_replica_step"] = (
        report["train_step_examples_per_sec_2_replicas"]
        / report["train_step_examples_per_sec_1_replica"]
    )
    report.setdefault("torch_threads", None)

    ratio = report["critic_update_tf_over_torch"]
    report["meets_tf_over_torch_target"] = None if ratio is None else ratio >= TARGET_TF_OVER_TORCH
    report["meets_fraction_of_peak_target"] = (
        report["critic_update_fraction_of_peak_1_replica"] >= TARGET_FRACTION_OF_PEAK
    )
    report["meets_two_over_one_replica_target"] = (
        report["two_over_one_replica_critic"] >= TARGET_TWO_OVER_ONE
    )
    for run in runs.values():
        if isinstance(run, TfUpdates):
            run.close()
    return report


def format_text(r: dict) -> str:
    """The report as a readable table with the targets marked met or NOT met."""
    ok = lambda flag: "met" if flag else "NOT met"
    torch_label = (
        f"PyTorch {r['torch_version']} ({r['torch_threads']} threads)"
        if r["torch_version"] and r["torch_status"] == "measured"
        else None
    )
    lines = [
        f"WaveGAN updates: slice {r['slice_len']}, d={r['dim']}, global batch "
        f"{r['batch_size']}, {r['precision']} on {r['device']}"
        + (" with XLA (--jit_compile)" if r["jit_compile"] else "")
        + f"; median of {r['repeats']} timed round(s) after {r['warmup']} "
        f"warm-up"
        + (f", on {r['cpu_cores']} CPU cores" if r["device"] == "cpu" else "")
        + f"; TensorFlow {r['tensorflow_version']}"
        + (f", {torch_label}" if torch_label else ""),
        f"FLOPs per update (analytic, bench/flops.py): critic "
        f"{r['critic_update_flops'] / 1e9:,.2f} GFLOP, generator "
        f"{r['generator_update_flops'] / 1e9:,.2f} GFLOP (a training step with n_critic 1: "
        "both, in one strategy.run)"
        + (
            ""
            if r["flops_match_built_models"]
            else "  (WARNING: does not match the built networks)"
        ),
        f"  (not counted: {r['critic_update_zero_gradient_path_flops'] / 1e9:,.2f} GFLOP per "
        "critic update that autodiff may spend pushing zero gradients through the "
        "interpolates' forward pass)",
        f"machine peak, measured in this run: {r['peak_gflops']:,.1f} GFLOP/s "
        f"({r['peak_source']}; matmul 2048^3 {r['peak_matmul_gflops']:,.1f}, "
        f"conv {r['peak_conv_gflops']:,.1f}; {r['peak_dtype']})",
        "",
        f"{'update':<10} {'runs on':<24} {'s/update':>9} {'examples/s':>11} "
        f"{'GFLOP/s':>9} {'of peak':>8} {'1st call s':>11}",
    ]
    for update in ("critic", "generator", "step"):
        rows = [
            (f"TF {r['kernels']}, 1 replica", KEYS[update], "_1_replica"),
            (f"TF {r['kernels']}, 2 replicas", KEYS[update], "_2_replicas"),
        ]
        if r.get("plain_critic_update_seconds") is not None and update != "step":
            rows.append(("TF reference, 1 replica", f"plain_{update}_update", ""))
        if torch_label and update != "step":
            rows.append(("PyTorch", f"torch_{update}_update", ""))
        for label, key, suffix in rows:
            lines.append(
                f"{update:<10} {label:<24} {r[f'{key}_seconds{suffix}']:>9.3f} "
                f"{r[f'{key}_examples_per_sec{suffix}']:>11.2f} "
                f"{r[f'{key}_gflops{suffix}']:>9.1f} "
                f"{100 * r[f'{key}_fraction_of_peak{suffix}']:>7.1f}% "
                f"{r[f'{key}_first_call_seconds{suffix}']:>11.2f}"
            )
    lines += [
        "",
        f"2 replicas / 1 replica (examples/s): critic {r['two_over_one_replica_critic']:.2f}x, "
        f"generator {r['two_over_one_replica_generator']:.2f}x, "
        f"whole step {r['two_over_one_replica_step']:.2f}x",
    ]
    if r.get("critic_update_fast_over_plain") is not None:
        lines.append(
            f"TF {r['kernels']} / TF reference, 1 replica (examples/s): critic "
            f"{r['critic_update_fast_over_plain']:.2f}x, generator "
            f"{r['generator_update_fast_over_plain']:.2f}x"
        )
    if torch_label:
        lines.append(
            f"TF (1 replica) / PyTorch (examples/s): critic "
            f"{r['critic_update_tf_over_torch']:.2f}x, generator "
            f"{r['generator_update_tf_over_torch']:.2f}x"
        )
    else:
        lines.append(r["torch_status"])
    # examples/s ratio 2 / 1 = seconds 1 / 2
    two_over_one = lambda u: (
        r[f"{u}_update_best_seconds_1_replica"] / r[f"{u}_update_best_seconds_2_replicas"]
    )
    parts = [
        f"2/1 replicas critic {two_over_one('critic'):.2f}x, "
        f"generator {two_over_one('generator'):.2f}x"
    ]
    if torch_label:
        parts.append(
            "TF/PyTorch critic {:.2f}x, generator {:.2f}x".format(
                *(
                    r[f"torch_{u}_update_best_seconds"] / r[f"{u}_update_best_seconds_1_replica"]
                    for u in ("critic", "generator")
                )
            )
        )
    lines.append(
        "same ratios from each one's fastest sample (less sensitive to other "
        "processes): " + "; ".join(parts)
    )
    lines += ["", "targets:"]
    if torch_label:
        lines.append(
            f"  critic update TF >= {TARGET_TF_OVER_TORCH:.2f}x PyTorch's examples/s: "
            f"{r['critic_update_tf_over_torch']:.2f}x "
            f"[{ok(r['meets_tf_over_torch_target'])}]"
        )
    else:
        lines.append(
            f"  critic update TF >= {TARGET_TF_OVER_TORCH:.2f}x PyTorch's examples/s: not measured"
        )
    lines.append(
        f"  critic update >= {TARGET_FRACTION_OF_PEAK:.0%} of peak (1 replica): "
        f"{r['critic_update_fraction_of_peak_1_replica']:.1%} "
        f"[{ok(r['meets_fraction_of_peak_target'])}]"
    )
    lines.append(
        f"  2 replicas within {1 - TARGET_TWO_OVER_ONE:.0%} of 1 (critic update "
        f"examples/s): {r['two_over_one_replica_critic']:.2f}x "
        f"[{ok(r['meets_two_over_one_replica_target'])}]"
    )
    return "\n".join(lines)
