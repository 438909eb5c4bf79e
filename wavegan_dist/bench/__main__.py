"""`python -m wavegan_dist.bench data [flags]`: input pipeline throughput vs the training step.

Prints a readable report, or JSON with --json. Targets (issue 3, on 2 CPU cores):
the pipeline delivers >= 5,000 examples/s of 16384-sample slices from a local
dataset, and >= 10x what the default training step consumes.
"""

from wavegan_dist import cli

import gc
import json
import sys

from absl import app, flags

flags.DEFINE_string("data", "builtin", "Dataset to read ('builtin' or a deeplake path).")
flags.DEFINE_enum("split", "train", ["train", "valid", "test"], "Split.")
flags.DEFINE_integer("slice_len", 16384, "Samples per example.")
flags.DEFINE_integer("batch_size", 64, "Global batch of the pipeline measurement.")
flags.DEFINE_integer("batches", 300, "Batches timed through the pipeline.")
flags.DEFINE_integer("cpu_replicas", 1, "Logical CPU replicas (MirroredStrategy if > 1).")
flags.DEFINE_integer("train_batch", 16, "Global batch of the timed training step (the paper's "
                     "64 takes minutes per step on 2 cores; consumption per second is what "
                     "is compared).")
flags.DEFINE_integer("dim", 64, "Model width of the timed training step.")
flags.DEFINE_integer("n_critic", 5, "Critic updates per timed training step.")
flags.DEFINE_integer("train_steps", 1, "Timed training steps (after one untimed step); 0 skips.")
flags.DEFINE_bool("json", False, "Print JSON instead of text.")
FLAGS = flags.FLAGS

PIPELINE_TARGET = 5000.0
RATIO_TARGET = 10.0


def _data_bench() -> dict:
    from wavegan_dist import strategy as strategies
    from wavegan_dist.bench.data import measure_pipeline, measure_training
    from wavegan_dist.data.source import load_source

    strategy = strategies.make_strategy("mirrored" if FLAGS.cpu_replicas > 1 else "cpu",
                                        cpu_replicas=FLAGS.cpu_replicas)
    source = load_source(FLAGS.data, FLAGS.split, log=lambda m: print(m, file=sys.stderr))
    report = {
        "dataset": source.path, "dataset_rows": int(len(source.rows)),
        "slice_len": FLAGS.slice_len, "replicas": strategy.num_replicas_in_sync,
        "pipeline_batch_size": FLAGS.batch_size,
    }
    pipe = measure_pipeline(strategy, source, FLAGS.slice_len, FLAGS.batch_size, FLAGS.batches)
    report["pipeline_examples_per_sec"] = pipe["examples_per_sec"]
    report["pipeline_seconds"] = pipe["seconds"]
    gc.collect()
    blocks = measure_pipeline(strategy, source, FLAGS.slice_len, FLAGS.batch_size,
                              FLAGS.batches, shuffle="blocks")
    report["pipeline_blocks_shuffle_examples_per_sec"] = blocks["examples_per_sec"]
    gc.collect()
    if FLAGS.train_steps:
        train = measure_training(strategy, source, FLAGS.slice_len, FLAGS.dim, FLAGS.train_batch,
                                 FLAGS.n_critic, FLAGS.train_steps)
        report.update({
            "train_batch_size": FLAGS.train_batch, "train_dim": FLAGS.dim,
            "train_n_critic": FLAGS.n_critic,
            "train_consumed_examples_per_sec": train["consumed_examples_per_sec"],
            "train_step_seconds": train["step_seconds"],
            "train_first_step_seconds": train["first_step_seconds"],
            "pipeline_to_train_ratio":
                pipe["examples_per_sec"] / train["consumed_examples_per_sec"],
        })
        gc.collect()
    report["meets_pipeline_target"] = report["pipeline_examples_per_sec"] >= PIPELINE_TARGET
    if "pipeline_to_train_ratio" in report:
        report["meets_ratio_target"] = report["pipeline_to_train_ratio"] >= RATIO_TARGET
    return report


def _print_text(r: dict) -> None:
    ok = lambda flag: "met" if flag else "NOT met"
    print(f"dataset {r['dataset']} ({r['dataset_rows']} rows), slice {r['slice_len']}, "
          f"{r['replicas']} replica(s)")
    print(f"input pipeline (deeplake -> tf.data -> devices, --shuffle=rows, the default), "
          f"batch {r['pipeline_batch_size']}: "
          f"{r['pipeline_examples_per_sec']:,.0f} examples/s "
          f"[target >= {PIPELINE_TARGET:,.0f}: {ok(r['meets_pipeline_target'])}]")
    blocks = r["pipeline_blocks_shuffle_examples_per_sec"]
    print(f"  same with --shuffle=blocks (contiguous reads): {blocks:,.0f} examples/s "
          f"(blocks / rows: {blocks / r['pipeline_examples_per_sec']:.2f}x)")
    if "train_consumed_examples_per_sec" in r:
        print(f"training step (WaveGAN d={r['train_dim']}, batch {r['train_batch_size']}, "
              f"n_critic {r['train_n_critic']}): {r['train_step_seconds']:.1f} s/step, consumes "
              f"{r['train_consumed_examples_per_sec']:,.2f} examples/s "
              f"(first step with tracing {r['train_first_step_seconds']:.1f} s)")
        print(f"pipeline / training consumption: {r['pipeline_to_train_ratio']:,.0f}x "
              f"[target >= {RATIO_TARGET:.0f}x: {ok(r['meets_ratio_target'])}]")


def main(argv):
    """Dispatches the benchmark named by the first argument."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) != 2 or argv[1] not in ("data",):
            raise UserError("usage: python -m wavegan_dist.bench data [--flags]; "
                            "benchmarks available: data")
        report = _data_bench()
        print(json.dumps(report, indent=2, sort_keys=True)) if FLAGS.json else _print_text(report)

    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags_or_exit)
