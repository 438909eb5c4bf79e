"""`python -m wavegan_dist.bench {data,train,learn,scale,make-nsynth-size} [flags]`: the
benchmarks, the scaling table, and the NSynth-sized dataset they measure at scale.

Each prints a readable report, or JSON with --json. `python -m wavegan_dist.bench
BENCHMARK --help` shows one benchmark's flags.
"""

from wavegan_dist import cli

import gc
import json
import sys
import textwrap

from absl import app, flags

from wavegan_dist.bench.train import DEVICES  # numpy only: no TensorFlow at import
from wavegan_dist.config import PRECISIONS, PRESETS, Config

# The tiny preset's own 40 steps are a smoke test; learning takes thousands.
TINY_LEARN_STEPS = 12000

flags.DEFINE_string(
    "data", "builtin", "Dataset to read ('builtin', 'builtin-instruments' or a deeplake path)."
)
flags.DEFINE_enum("split", "train", ["train", "valid", "test"], "Split.")
flags.DEFINE_integer(
    "num_samples",
    0,
    "data: use the first N rows of --data (0 = all), as "
    "training's --num_samples: for measuring at several sizes.",
)
flags.DEFINE_integer("slice_len", 16384, "Samples per example.")
flags.DEFINE_integer(
    "batch_size",
    None,
    "Global batch: of the pipeline measurement for "
    "`data` (default 64), of the timed updates for `train` (default 16).",
)
flags.DEFINE_integer("batches", 300, "Batches timed through the pipeline.")
flags.DEFINE_integer(
    "cpu_replicas",
    1,
    "Logical CPU replicas (MirroredStrategy if > 1); learn trains on 2 unless this is given.",
)
flags.DEFINE_integer(
    "train_batch",
    16,
    "Global batch of the timed training step (the paper's "
    "64 takes minutes per step on 2 cores; consumption per second is what "
    "is compared).",
)
flags.DEFINE_integer("dim", 64, "Model width of the timed training step / updates.")
flags.DEFINE_integer("n_critic", 5, "Critic updates per timed training step.")
flags.DEFINE_integer("train_steps", 1, "Timed training steps (after one untimed step); 0 skips.")
flags.DEFINE_integer(
    "repeats",
    None,
    "Timed rounds, each measurement once per round; "
    "medians are reported. train: after one untimed warm-up call "
    "(default 5); data: of the side-by-side deeplake / prepared "
    "measurements (default 3).",
)
flags.DEFINE_string(
    "prepared",
    "",
    "data: also measure the prepared path on the same data: "
    "a prepared folder of --data at --slice_len (written there first if it "
    "does not exist yet).",
)
flags.DEFINE_integer(
    "prepared_batches",
    1000,
    "data: global batches timed through the prepared path (--batches: through the deeplake path).",
)
flags.DEFINE_integer(
    "diversity_batches",
    1000,
    "data: global batches over which distinct "
    "instruments per batch are averaged (with --prepared).",
)
flags.DEFINE_string("dest", "", "make-nsynth-size: the new folder to write the dataset to.")
flags.DEFINE_integer(
    "rows",
    289205,
    "make-nsynth-size: notes (NSynth's training split: 289,205; about 290 per instrument).",
)
flags.DEFINE_string(
    "from_json",
    "",
    "scale: a `bench data --prepared --json` report whose "
    "measured per-host input rate the table uses (default: measure one "
    "quickly on the built-in data).",
)
flags.DEFINE_float(
    "utilization",
    0.10,
    "scale: assumed fraction of the accelerators' peak bf16 FLOP/s that training reaches.",
)
flags.DEFINE_float(
    "write_mb_per_sec", 200.0, "scale: assumed bandwidth of one checkpoint write to gs://, MB/s."
)
flags.DEFINE_bool("no_torch", False, "train: skip the PyTorch comparison.")
flags.DEFINE_enum(
    "device",
    "cpu",
    list(DEVICES),
    "train: run the TensorFlow updates on the "
    "CPU (1 replica, and 2 logical CPU replicas) or on GPUs (1 and 2 GPUs).",
)
flags.DEFINE_enum(
    "precision",
    "fp32",
    list(PRECISIONS),
    "train: as training's --precision "
    "('bf16': bfloat16 compute, float32 weights); the peak is measured in the "
    "same dtype.",
)
flags.DEFINE_bool(
    "jit_compile",
    False,
    "train: XLA-compile as training's --jit_compile "
    "does (the whole update on 1 replica, forward and backward passes on 2).",
)
flags.DEFINE_bool(
    "no_plain",
    False,
    "train: skip the plain formulation (--kernels=reference: "
    "Keras's layers and Adam) measured next to the fast kernels.",
)
flags.DEFINE_enum(
    "preset",
    "tiny",
    list(PRESETS),
    "learn: the preset trained (see the README's table of what the presets change).",
)
flags.DEFINE_integer(
    "learn_steps",
    None,
    "learn: generator steps to train (default: "
    f"{TINY_LEARN_STEPS:,} for the tiny preset, else the preset's "
    "--train_steps).",
)
flags.DEFINE_integer("generated", 1000, "learn: clips generated for each score.")
flags.DEFINE_enum(
    "condition",
    "none",
    ["none", "pitch"],
    "learn: train unconditional or pitch-conditional (then pitch accuracy is reported too).",
)
flags.DEFINE_string(
    "classifier", "", "learn: a pitch classifier folder (default: train one on --data first)."
)
flags.DEFINE_string(
    "workdir",
    "",
    "learn: where the run (and classifier) go (default: a new temporary folder, kept).",
)
flags.DEFINE_integer("seed", 0, "learn: seed of the run, the classifier and the scoring.")
flags.DEFINE_bool("json", False, "Print JSON instead of text.")
FLAGS = flags.FLAGS

# What each benchmark measures (its --help), with the targets on 2 CPU cores.
DESCRIPTIONS = {
    "data": "`data`: input pipeline throughput vs the training step. Targets (on 2 CPU "
    "cores): the pipeline delivers >= 5,000 examples/s of 16384-sample slices from a "
    "local dataset, and >= 10x what the default training step consumes. With "
    "--prepared: the deeplake and the prepared path side by side on the same data "
    "(1 and 2 input pipelines, --repeats rounds, medians) and distinct instruments "
    "per batch against a random permutation's; targets: the prepared path >= "
    "24,000 examples/s on one pipeline, and its diversity within 10% of random.",
    "train": "`train`: examples/s, analytic FLOPs and fraction of the measured peak of one "
    "critic update and one generator update, on 1 and 2 logical CPU replicas, and "
    "against the same updates in PyTorch when it is installed; --precision, "
    "--jit_compile and --device=gpu run the TensorFlow rows (and the peak) as "
    "training would. Targets: critic update >= 1.15x PyTorch's examples/s, >= 80% of "
    "peak, 2 replicas within 10% of 1.",
    "scale": "`scale`: the scaling table: for v4-8, v4-32, v5e-64, 1x8 and 8x8 A100, the "
    "per-core batch, the real examples/s the accelerators need at --utilization of "
    "their peak bf16 FLOP/s (the analytic FLOPs `bench train` prints), the measured "
    "per-host input rate (--from_json) and the headroom, and the checkpoint size "
    "and its write time to gs://.",
    "make-nsynth-size": "`make-nsynth-size`: writes an NSynth-sized local deeplake dataset "
    "(NSynth's schema and order: --rows notes of 64,000 int16 samples "
    "sorted by instrument, about 290 per instrument) to --dest, for "
    "measuring input speed at scale (the audio is cheap synthetic "
    "notes). Full size is about 37 GB.",
    "learn": "`learn`: a preset (--preset, default tiny) trained on --data for --learn_steps "
    "steps; the Frechet distances, of the classifier's embeddings and of plain log-mel "
    "frames (and, with --condition=pitch, the pitch accuracy, by the classifier and "
    "by an independent pYIN judge) and the power on the upsampling artifact lines of "
    "the untrained and the trained generator and of real notes. Targets: trained at "
    "most half the untrained Frechet distances, the judge's strict accuracy at least "
    "0.6x the real notes', within about 20 minutes on 2 cores.",
}

# The flags each benchmark reads (and --json, which all do). A flag of another benchmark
# is refused rather than silently ignored: `bench train --learn_steps=5` changes nothing.
COMMAND_FLAGS = {
    "data": {
        "data",
        "split",
        "slice_len",
        "batch_size",
        "batches",
        "cpu_replicas",
        "train_batch",
        "dim",
        "n_critic",
        "train_steps",
        "repeats",
        "prepared",
        "diversity_batches",
        "num_samples",
        "prepared_batches",
    },
    "train": {
        "slice_len",
        "dim",
        "batch_size",
        "repeats",
        "no_torch",
        "no_plain",
        "device",
        "precision",
        "jit_compile",
    },
    "scale": {"from_json", "utilization", "write_mb_per_sec"},
    "make-nsynth-size": {"dest", "rows"},
    "learn": {
        "data",
        "cpu_replicas",
        "preset",
        "learn_steps",
        "generated",
        "condition",
        "classifier",
        "workdir",
        "seed",
    },
}

PIPELINE_TARGET = 5000.0
LEARN_TARGET = 0.5  # trained / untrained Frechet distance (classifier's and log-mel)
JUDGE_TARGET = 0.6  # trained / real notes' strict pitch accuracy by the independent judge
RATIO_TARGET = 10.0
DATA_BATCH = 64
TRAIN_BATCH = 16
DATA_REPEATS = 3
TRAIN_REPEATS = 5


def _data_bench() -> dict:
    from wavegan_dist.errors import UserError

    batch_size = DATA_BATCH if FLAGS.batch_size is None else FLAGS.batch_size
    repeats = DATA_REPEATS if FLAGS.repeats is None else FLAGS.repeats
    # Checked before the dataset is read, so a bad value is one line and nothing else.
    for name, value, least in (
        ("batches", FLAGS.batches, 1),
        ("train_steps", FLAGS.train_steps, 0),
        ("repeats", repeats, 1),
        ("num_samples", FLAGS.num_samples, 0),
        ("diversity_batches", FLAGS.diversity_batches, 1),
        ("prepared_batches", FLAGS.prepared_batches, 1),
        ("n_critic", FLAGS.n_critic, 1),
        ("train_batch", FLAGS.train_batch, 1),
        ("batch_size", batch_size, 1),
        ("cpu_replicas", FLAGS.cpu_replicas, 1),
        ("slice_len", FLAGS.slice_len, 1),
        ("dim", FLAGS.dim, 1),
    ):
        if value < least:
            raise UserError(f"--{name}={value} must be at least {least}")
    if FLAGS.train_steps:  # the timed step's networks must exist for this slice length
        from wavegan_dist.models import ModelSpec, check_slice_len

        check_slice_len(ModelSpec(slice_len=FLAGS.slice_len, dim=FLAGS.dim))
    for name, value in (("batch_size", batch_size), ("train_batch", FLAGS.train_batch)):
        if value % FLAGS.cpu_replicas:
            raise UserError(
                f"--{name}={value} does not divide over --cpu_replicas="
                f"{FLAGS.cpu_replicas}; use a multiple of {FLAGS.cpu_replicas}"
            )
    from wavegan_dist import strategy as strategies
    from wavegan_dist.bench.data import measure_pipeline, measure_training
    from wavegan_dist.data.source import load_source

    strategy = strategies.make_strategy(
        "mirrored" if FLAGS.cpu_replicas > 1 else "cpu", cpu_replicas=FLAGS.cpu_replicas
    )
    from wavegan_dist.data.filters import RowFilter

    source = load_source(
        FLAGS.data,
        FLAGS.split,
        RowFilter(num_samples=FLAGS.num_samples),
        log=lambda m: print(m, file=sys.stderr),
    )
    log = lambda m: print(m, file=sys.stderr, flush=True)
    if FLAGS.prepared:  # checked (or written) before anything is measured
        from wavegan_dist.bench.side_by_side import check_batch, open_or_prepare

        check_batch(batch_size)
        opened = open_or_prepare(
            FLAGS.data,
            FLAGS.split,
            FLAGS.num_samples,
            source,
            FLAGS.prepared,
            FLAGS.slice_len,
            batch_size,
            log,
        )
    report = {
        "dataset": source.path,
        "dataset_rows": int(len(source.rows)),
        "slice_len": FLAGS.slice_len,
        "replicas": strategy.num_replicas_in_sync,
        "pipeline_batch_size": batch_size,
    }
    pipe = measure_pipeline(strategy, source, FLAGS.slice_len, batch_size, FLAGS.batches)
    report["pipeline_examples_per_sec"] = pipe["examples_per_sec"]
    report["pipeline_seconds"] = pipe["seconds"]
    gc.collect()
    blocks = measure_pipeline(
        strategy, source, FLAGS.slice_len, batch_size, FLAGS.batches, shuffle="blocks"
    )
    report["pipeline_blocks_shuffle_examples_per_sec"] = blocks["examples_per_sec"]
    gc.collect()
    if FLAGS.train_steps:
        train = measure_training(
            strategy,
            source,
            FLAGS.slice_len,
            FLAGS.dim,
            FLAGS.train_batch,
            FLAGS.n_critic,
            FLAGS.train_steps,
        )
        report.update(
            {
                "train_batch_size": FLAGS.train_batch,
                "train_dim": FLAGS.dim,
                "train_n_critic": FLAGS.n_critic,
                "train_consumed_examples_per_sec": train["consumed_examples_per_sec"],
                "train_step_seconds": train["step_seconds"],
                "train_first_step_seconds": train["first_step_seconds"],
                "pipeline_to_train_ratio": pipe["examples_per_sec"]
                / train["consumed_examples_per_sec"],
            }
        )
        gc.collect()
    report["meets_pipeline_target"] = report["pipeline_examples_per_sec"] >= PIPELINE_TARGET
    if "pipeline_to_train_ratio" in report:
        report["meets_ratio_target"] = report["pipeline_to_train_ratio"] >= RATIO_TARGET
    if FLAGS.prepared:
        from wavegan_dist.bench.side_by_side import compare_paths

        report.update(
            compare_paths(
                source,
                opened,
                FLAGS.slice_len,
                batch_size,
                {"deeplake": FLAGS.batches, "prepared": FLAGS.prepared_batches},
                repeats,
                FLAGS.diversity_batches,
                log,
            )
        )
    return report


def _print_text(r: dict) -> None:
    ok = lambda flag: "met" if flag else "NOT met"
    print(
        f"dataset {r['dataset']} ({r['dataset_rows']} rows), slice {r['slice_len']}, "
        f"{r['replicas']} replica(s)"
    )
    print(
        f"input pipeline (deeplake -> tf.data -> devices, --shuffle=rows, the default), "
        f"batch {r['pipeline_batch_size']}: "
        f"{r['pipeline_examples_per_sec']:,.0f} examples/s "
        f"[target >= {PIPELINE_TARGET:,.0f}: {ok(r['meets_pipeline_target'])}]"
    )
    blocks = r["pipeline_blocks_shuffle_examples_per_sec"]
    print(
        f"  same with --shuffle=blocks (contiguous reads): {blocks:,.0f} examples/s "
        f"(blocks / rows: {blocks / r['pipeline_examples_per_sec']:.2f}x)"
    )
    if "train_consumed_examples_per_sec" in r:
        print(
            f"training step (WaveGAN d={r['train_dim']}, batch {r['train_batch_size']}, "
            f"n_critic {r['train_n_critic']}): {r['train_step_seconds']:.1f} s/step, consumes "
            f"{r['train_consumed_examples_per_sec']:,.2f} examples/s "
            f"(first step with tracing {r['train_first_step_seconds']:.1f} s)"
        )
        print(
            f"pipeline / training consumption: {r['pipeline_to_train_ratio']:,.0f}x "
            f"[target >= {RATIO_TARGET:.0f}x: {ok(r['meets_ratio_target'])}]"
        )
    if "side_by_side_rounds" in r:
        _print_side_by_side(r)


def _print_side_by_side(r: dict) -> None:
    ok = lambda flag: "met" if flag else "NOT met"
    print(
        f"side by side, host only, medians of {r['side_by_side_rounds']} rounds of "
        f"{r['side_by_side_batches_deeplake']} (deeplake) / "
        f"{r['side_by_side_batches_prepared']} (prepared) batches (1-min load per round: "
        f"{', '.join(str(x) for x in r['load_average_1min_per_round'])}):"
    )
    for path in ("deeplake", "prepared"):
        one, two = (
            r[f"{path}_examples_per_sec_1_pipeline"],
            r[f"{path}_examples_per_sec_2_pipelines"],
        )
        extra = (
            f" [target >= {r['prepared_target_examples_per_sec']:,.0f} on 1: "
            f"{ok(r['meets_prepared_target'])}]"
            if path == "prepared"
            else ""
        )
        print(f"  {path:8s} 1 pipeline {one:,.0f} examples/s, 2 pipelines {two:,.0f}{extra}")
    print(
        f"  numpy, 1 thread, same bytes: copy {r['numpy_copy_examples_per_sec_1_thread']:,.0f} "
        f"examples/s, int16 -> float32 "
        f"{r['numpy_int16_to_float32_examples_per_sec_1_thread']:,.0f}"
    )
    print(
        f"distinct instruments per batch of {r['pipeline_batch_size']} "
        f"({r['instruments']} instruments, {r['diversity_batches']} batches): random "
        f"permutation {r['batch_distinct_instruments_random_permutation']:.2f}, deeplake "
        f"rows {r['batch_distinct_instruments_deeplake_rows_shuffle']:.2f}, blocks "
        f"{r['batch_distinct_instruments_deeplake_blocks_shuffle']:.2f}, prepared 1 "
        f"pipeline {r['batch_distinct_instruments_prepared_1_pipeline']:.2f}, 2 pipelines "
        f"{r['batch_distinct_instruments_prepared_2_pipelines']:.2f} [target: prepared "
        f">= 90% of random: {ok(r['meets_diversity_target'])}]"
    )


def _train_bench() -> dict:
    from absl import logging

    from wavegan_dist.bench import train

    logging.set_verbosity(logging.WARNING)  # no strategy INFO lines between the progress lines
    batch_size = TRAIN_BATCH if FLAGS.batch_size is None else FLAGS.batch_size
    # Checked before TensorFlow starts, so a bad size is one line and nothing else.
    repeats = TRAIN_REPEATS if FLAGS.repeats is None else FLAGS.repeats
    train.check_sizes(
        FLAGS.slice_len, FLAGS.dim, batch_size, repeats, FLAGS.device, FLAGS.precision
    )
    # The 2-replica measurement's devices, set up before the first TF op.
    train.configure_devices(FLAGS.device)
    return train.measure(
        FLAGS.slice_len,
        FLAGS.dim,
        batch_size,
        repeats,
        use_torch=not FLAGS.no_torch,
        compare_plain=not FLAGS.no_plain,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        device=FLAGS.device,
        precision=FLAGS.precision,
        jit_compile=FLAGS.jit_compile,
    )


def _learn_bench() -> dict:
    from wavegan_dist.errors import UserError

    replicas = FLAGS.cpu_replicas if FLAGS["cpu_replicas"].present else 2
    steps = FLAGS.learn_steps
    if steps is None:
        steps = (
            TINY_LEARN_STEPS
            if FLAGS.preset == "tiny"
            else PRESETS[FLAGS.preset].get("train_steps", Config().train_steps)
        )
    if steps < 1:
        raise UserError(f"--learn_steps={steps} must be at least 1")
    if FLAGS.generated < 2:
        raise UserError(f"--generated={FLAGS.generated} must be at least 2")
    if replicas < 1:
        raise UserError(f"--cpu_replicas={replicas} must be at least 1")
    from wavegan_dist.bench.learn import check_workdir

    check_workdir(FLAGS.workdir)
    from wavegan_dist import strategy as strategies
    from wavegan_dist.bench.learn import measure_learning  # TensorFlow from here on

    strategies.configure_cpu_devices(replicas)
    report = measure_learning(
        steps,
        condition=FLAGS.condition,
        data=FLAGS.data,
        classifier_dir=FLAGS.classifier,
        workdir=FLAGS.workdir,
        cpu_replicas=replicas,
        generated=FLAGS.generated,
        seed=FLAGS.seed,
        preset=FLAGS.preset,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    report["target_trained_over_untrained"] = LEARN_TARGET
    report["meets_target"] = report["trained_over_untrained"] <= LEARN_TARGET
    report["meets_log_mel_target"] = report["log_mel_trained_over_untrained"] <= LEARN_TARGET
    if report["pitch_accuracy_trained"] is not None:
        report["meets_pitch_accuracy_target"] = (
            report["pitch_accuracy_trained"] > report["pitch_accuracy_untrained"]
        )
    if report["judge_pitch_accuracy_trained"] is not None:
        report["target_judge_over_real"] = JUDGE_TARGET
        report["meets_judge_target"] = (
            report["judge_pitch_accuracy_trained"]
            >= JUDGE_TARGET * report["judge_pitch_accuracy_real"]
        )
    return report


def _print_learn(r: dict) -> None:
    ok = lambda flag: "met" if flag else "NOT met"
    print(
        f"learning check: {r['preset']} preset, {r['condition']}, {r['steps']} generator "
        f"steps on "
        f"--data={FLAGS.data} in {r['train_seconds']:.0f} s of training "
        f"({r['generated_clips']} generated clips; Frechet distance against "
        f"{r['reference_train_notes']} training notes; classifier held-out accuracy "
        f"{r['classifier_heldout_accuracy']:.3f})"
    )
    print(
        f"  Frechet distance: untrained {r['frechet_distance_untrained']:.2f}, trained "
        f"{r['frechet_distance_trained']:.2f} (trained / untrained "
        f"{r['trained_over_untrained']:.3f}) [target <= {LEARN_TARGET}: "
        f"{ok(r['meets_target'])}]"
    )
    print(
        f"  log-mel Frechet distance: untrained {r['log_mel_frechet_distance_untrained']:.2f}, "
        f"trained {r['log_mel_frechet_distance_trained']:.2f}, real held-out "
        f"{r['log_mel_frechet_distance_real']:.2f} (trained / untrained "
        f"{r['log_mel_trained_over_untrained']:.3f}) [target <= {LEARN_TARGET}: "
        f"{ok(r['meets_log_mel_target'])}]"
    )
    print(
        "    of which the mean frame makes: "
        + ", ".join(
            f"{name} {r[f'log_mel_mean_term_{name}']:.2f} (level "
            f"{r[f'log_mel_level_db_{name}']:+.1f} dB)"
            for name in ("untrained", "trained", "real")
        )
        + "; level: mean mel power above the training notes'"
    )
    print(
        f"  Inception Score: untrained {r['inception_score_untrained']:.2f}, trained "
        f"{r['inception_score_trained']:.2f}"
    )
    if r["pitch_accuracy_trained"] is not None:
        print(
            f"  pitch accuracy: untrained {r['pitch_accuracy_untrained']:.3f}, trained "
            f"{r['pitch_accuracy_trained']:.3f} [target: higher: "
            f"{ok(r['meets_pitch_accuracy_target'])}]"
        )
    if r["judge_pitch_accuracy_trained"] is not None:
        print(
            "  independent pitch judge (pYIN, strict / octave-tolerant): "
            + ", ".join(
                f"{name} {r[f'judge_pitch_accuracy_{name}']:.3f} / "
                f"{r[f'judge_pitch_accuracy_octave_{name}']:.3f}"
                for name in ("untrained", "trained", "real")
            )
            + f" [target: trained strict >= {JUDGE_TARGET} x real: "
            f"{ok(r['meets_judge_target'])}]"
        )
    for period in (256, 16):
        print(
            f"  power on the sample_rate/{period} artifact lines: "
            + ", ".join(
                f"{name} {r[f'artifact_power_sr_over_{period}_{name}']:.4f}"
                for name in ("untrained", "trained", "real")
            )
        )
    print(f"  run and classifier kept in {r['workdir']}")


def _scale_report() -> dict:
    from wavegan_dist.errors import UserError

    if not 0 < FLAGS.utilization <= 1:
        raise UserError(f"--utilization={FLAGS.utilization} must be in (0, 1]")
    if FLAGS.write_mb_per_sec <= 0:
        raise UserError(f"--write_mb_per_sec={FLAGS.write_mb_per_sec} must be positive")
    rate, where = _host_rate()
    from wavegan_dist.bench import scale

    params = scale.parameter_counts()
    example_flops = scale.flops_per_real_example()
    return {
        "utilization": FLAGS.utilization,
        "write_mb_per_sec": FLAGS.write_mb_per_sec,
        "flops_per_real_example": example_flops,
        "generator_parameters": params["generator"],
        "critic_parameters": params["critic"],
        "measured_examples_per_sec_per_host": rate,
        "measured_from": where,
        "rows": scale.table(rate, example_flops, params, FLAGS.utilization, FLAGS.write_mb_per_sec),
    }


def _host_rate() -> tuple[float, str]:
    """One host's prepared input rate: from --from_json, else measured now on the
    built-in set; and where it comes from."""
    from wavegan_dist.errors import UserError

    key = "prepared_examples_per_sec_1_pipeline"
    if FLAGS.from_json:
        try:
            with open(FLAGS.from_json) as f:
                measured = json.load(f)
        except (OSError, ValueError) as err:
            raise UserError(f"--from_json={FLAGS.from_json}: {err}") from err
        if not isinstance(measured, dict) or key not in measured:
            raise UserError(
                f"--from_json={FLAGS.from_json} has no {key}; write one with "
                "`python -m wavegan_dist.bench data --prepared=DIR --json`"
            )
        loads = measured.get("load_average_1min_per_round", [])
        return float(measured[key]), (
            f"{FLAGS.from_json}: bench data --prepared on {measured.get('dataset_rows')} rows, "
            f"slice {measured.get('slice_len')}, median of "
            f"{measured.get('side_by_side_rounds')} rounds, load {loads}"
        )
    import tempfile

    import tensorflow as tf

    from wavegan_dist.bench.data import measure_pipelines
    from wavegan_dist.bench.side_by_side import open_or_prepare
    from wavegan_dist.data.source import load_source

    quiet = lambda _: None
    source = load_source("builtin", "train", log=quiet)
    with tempfile.TemporaryDirectory() as folder:
        opened = open_or_prepare(
            "builtin", "train", 0, source, f"{folder}/p", 16384, DATA_BATCH, quiet
        )
        dataset = opened.make_dataset_fn(DATA_BATCH, seed=0)(tf.distribute.InputContext())
        rate = measure_pipelines([dataset], DATA_BATCH, 200)["examples_per_sec"]
    return rate, (
        "measured now on the built-in set (320 rows, slice 16384, 1 pipeline): a "
        "small-set figure; pass --from_json for one at NSynth size"
    )


def _print_scale(report: dict) -> None:
    from wavegan_dist.bench.scale import format_table

    print(format_table(report))


def _make_nsynth_size() -> dict:
    from wavegan_dist.errors import UserError

    if not FLAGS.dest:
        raise UserError("--dest is required: the new folder to write the dataset to")
    from wavegan_dist.bench.nsynth_size import make_dataset

    return make_dataset(FLAGS.dest, FLAGS.rows, log=lambda m: print(m, file=sys.stderr, flush=True))


def check_flags(command: str) -> None:
    """Raises UserError if a flag of another benchmark than `command` was given."""
    from wavegan_dist.errors import UserError

    listed = set().union(*COMMAND_FLAGS.values())
    defined = {f.name for f in FLAGS.get_flags_for_module(__name__)} - {"json"}
    if listed != defined:  # a flag added here without saying which benchmark reads it
        raise RuntimeError(
            f"COMMAND_FLAGS and this module's flags differ: {sorted(listed ^ defined)}"
        )
    for name in sorted(listed - COMMAND_FLAGS[command]):
        if FLAGS[name].present:
            owners = " and ".join(
                f"bench {c}" for c, names in COMMAND_FLAGS.items() if name in names
            )
            raise UserError(f"--{name} is a flag of {owners}, not of bench {command}; drop it")


def describe(argv: list[str]) -> tuple[str, set | None]:
    """--help's text: one benchmark's description and flags if argv names one, else all."""
    command = next((a for a in argv[1:] if a in COMMAND_FLAGS), None)
    if command is None:
        paragraphs = [textwrap.fill(text, 88) for text in DESCRIPTIONS.values()]
        return "\n\n".join([__doc__.strip(), *paragraphs]), None
    usage = f"`python -m wavegan_dist.bench {command} [flags]`"
    return usage + "\n\n" + textwrap.fill(DESCRIPTIONS[command], 88), COMMAND_FLAGS[command] | {
        "json"
    }


def main(argv):
    """Dispatches the benchmark named by the first argument."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) != 2 or argv[1] not in COMMAND_FLAGS:
            raise UserError(
                f"usage: python -m wavegan_dist.bench {{{','.join(COMMAND_FLAGS)}}} "
                f"[--flags]; benchmarks available: {', '.join(COMMAND_FLAGS)}"
            )
        check_flags(argv[1])
        if argv[1] == "learn":
            report = _learn_bench()
            print(json.dumps(report, indent=2, sort_keys=True)) if FLAGS.json else _print_learn(
                report
            )
            return
        if argv[1] == "train":
            from wavegan_dist.bench.train import format_text

            report = _train_bench()
            print(
                json.dumps(report, indent=2, sort_keys=True) if FLAGS.json else format_text(report)
            )
            return
        if argv[1] == "scale":
            report = _scale_report()
            print(json.dumps(report, indent=2, sort_keys=True)) if FLAGS.json else _print_scale(
                report
            )
            return
        if argv[1] == "make-nsynth-size":
            made = _make_nsynth_size()
            print(
                json.dumps(made, indent=2, sort_keys=True)
                if FLAGS.json
                else f"wrote {made['rows']:,} notes of {made['instruments']:,} instruments "
                f"({made['bytes_of_audio'] / 1e9:.1f} GB of audio) to {made['path']}"
            )
            return
        report = _data_bench()
        print(json.dumps(report, indent=2, sort_keys=True)) if FLAGS.json else _print_text(report)

    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=lambda argv: cli.parse_flags_or_exit(argv, describe=describe))
