r"""`python -m wavegan_dist.evaluate`: sample-quality metrics for a trained run.

Examples:
  python -m wavegan_dist.evaluate train-classifier --data=builtin --out=classifiers/pitch
  python -m wavegan_dist.evaluate --model_dir=runs/tiny --classifier=classifiers/pitch \
      --json=runs/tiny/eval.json
  python -m wavegan_dist.evaluate --model_dir=runs/pitch --classifier=classifiers/pitch \
      --compare_png=runs/pitch/compare.png

train-classifier trains the pitch (or --target=instrument_family) classifier on the
dataset's train split and reports its accuracy on --heldout_split. Without a
subcommand, N generated examples and the held-out notes are scored side by side:
Inception Score, Frechet distance of classifier embeddings, pitch accuracy and
entropy, NDB (k-means bins of log spectrograms) and the distance to the nearest
training example. The real notes come from the data the run recorded in its
config.json (its --data, --split and filters) unless --data names another dataset.
A held-out split that is the training data itself (a dataset without splits) is
refused. --compare_png also draws, for each pitch (label) of a conditional run found
in the held-out notes, a real note's spectrogram beside a generated one's. This
command defines its own flags (not the training flags).
"""

from wavegan_dist import cli  # noqa: F401  (sets TF log level before TensorFlow loads)

import dataclasses
import json
import os

from absl import app, flags, logging

from wavegan_dist.inference.restore import WEIGHTS, WEIGHTS_HELP

flags.DEFINE_string(
    "data",
    None,
    "Dataset (as training's --data): its train split is the "
    "reference set, --heldout_split the real held-out set. Default: the "
    "run's recorded --data (evaluate), builtin (train-classifier).",
)
flags.DEFINE_string("data_cache", "", "Cache folder of the built-in dataset (default: the run's).")
flags.DEFINE_string(
    "heldout_split",
    "valid",
    "Split held out from training: valid or test "
    "(train scores against the training notes themselves).",
)
flags.DEFINE_enum(
    "target",
    "pitch",
    ["pitch", "instrument_family"],
    "train-classifier: what the classifier predicts.",
)
flags.DEFINE_string("out", None, "train-classifier: folder to save the classifier in.")
flags.DEFINE_integer(
    "slice_len",
    16384,
    "train-classifier: samples per example (other lengths are cut or zero-padded when scoring).",
)
flags.DEFINE_integer("epochs", 40, "train-classifier: training epochs.")
flags.DEFINE_string("model_dir", None, "The training run to evaluate.")
flags.DEFINE_string("checkpoint", None, "Checkpoint to evaluate (default: the run's newest).")
flags.DEFINE_enum("weights", None, list(WEIGHTS), WEIGHTS_HELP)
flags.DEFINE_string("classifier", None, "Folder written by train-classifier.")
flags.DEFINE_integer("n", 0, "Generated examples (0 = as many as held-out notes).")
flags.DEFINE_integer("k", 50, "NDB bins.")
flags.DEFINE_integer("max_train", 2000, "Training notes in the reference set (seeded subset).")
flags.DEFINE_integer("seed", 0, "Seed of latent vectors, subsets and k-means.")
flags.DEFINE_string(
    "json", None, "Also write the report as JSON to this file (its folder is created if missing)."
)
flags.DEFINE_string(
    "compare_png",
    None,
    "Also write a PNG to this new file (its folder is "
    "created if missing): for each label of a conditional run (each pitch of "
    "--condition=pitch) in the held-out notes, a real held-out note's "
    "spectrogram beside a generated one's, the pitch marked.",
)

FLAGS = flags.FLAGS


def _say(message: str) -> None:
    print(message, flush=True)


def _check_output_folder(flag: str, folder: str) -> None:
    """Raises UserError before any work if `folder` cannot be created or written; it is
    created (with its parents) when the output is written."""
    from wavegan_dist.errors import UserError

    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{flag}: {existing} is a file, not a folder; pass another path")
    if not os.access(existing, os.W_OK):
        raise UserError(f"{flag}: the folder {existing} is not writable; pass another path")


def _check_new_file(flag: str, path: str) -> None:
    """Raises UserError before any work unless `path` is a new file that can be written."""
    from wavegan_dist.errors import UserError

    if os.path.isdir(path):
        raise UserError(f"{flag}={path} is a folder; pass a file name")
    if os.path.exists(path):
        raise UserError(
            f"{flag}={path} already exists; nothing is overwritten: pass a new "
            "file name or move that file away"
        )
    _check_output_folder(f"{flag}={path}", os.path.dirname(path) or ".")


def _write_compare_png(
    generator, cfg, sample_rate: int, data: str, cache_dir: str, row_filter
) -> None:
    """Writes --compare_png: per label of the run's condition in the held-out notes
    (filtered as the run's training rows), a real note beside a generated one."""
    import tensorflow as tf

    from wavegan_dist.errors import UserError
    from wavegan_dist.evaluation.run import labelled_audio
    from wavegan_dist.inference.compare import compare_image
    from wavegan_dist.media.grid import write_png
    from wavegan_dist.inference.restore import generate_waves
    from wavegan_dist.run_folder.checkpoint_files import os_reason

    held_filter = dataclasses.replace(row_filter, num_samples=0)
    real, labels, _ = labelled_audio(
        data,
        FLAGS.heldout_split,
        cfg.condition,
        cfg.net.slice_len,
        cache_dir,
        log=_say,
        row_filter=held_filter,
    )
    image, shown = compare_image(
        real,
        labels,
        lambda z, y: generate_waves(generator, z, y),
        cfg.net.latent_dim,
        cfg.condition,
        sample_rate,
        FLAGS.seed,
    )
    try:
        os.makedirs(os.path.dirname(FLAGS.compare_png) or ".", exist_ok=True)
        write_png(FLAGS.compare_png, image)
    except (OSError, tf.errors.OpError) as err:  # e.g. the disk filled up
        if os.path.exists(FLAGS.compare_png):  # new before (checked), so a partial write
            os.remove(FLAGS.compare_png)
        raise UserError(
            f"cannot write --compare_png={FLAGS.compare_png} ({os_reason(err)}); "
            "the report is printed above"
        ) from err
    _say(
        f"wrote {FLAGS.compare_png}: {len(shown)} {cfg.condition} labels "
        f"({shown[0]}-{shown[-1]}), real {FLAGS.heldout_split} note beside generated, "
        f"{image.shape[1]} x {image.shape[0]} pixels"
    )


def _train_classifier() -> None:
    from wavegan_dist.errors import UserError
    from wavegan_dist.evaluation.run import train_classifier

    if not FLAGS.out:
        raise UserError("train-classifier needs --out=FOLDER for the classifier")
    if os.path.exists(os.path.join(FLAGS.out, "classifier.keras")):
        raise UserError(
            f"--out={FLAGS.out} already holds a classifier; nothing is overwritten: "
            "pass a new folder"
        )
    if FLAGS.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {FLAGS.epochs}")
    _check_output_folder(f"--out={FLAGS.out}", FLAGS.out)
    info = train_classifier(
        FLAGS.data or "builtin",
        FLAGS.out,
        FLAGS.target,
        FLAGS.slice_len,
        FLAGS.heldout_split,
        FLAGS.epochs,
        FLAGS.data_cache,
        FLAGS.seed,
        log=_say,
    )
    _say(
        f"held-out accuracy ({FLAGS.heldout_split}): {info.heldout_accuracy:.4f} over "
        f"{info.num_classes} {info.target} classes; saved to {FLAGS.out}"
    )


def _reference_data(cfg):
    """(data, cache_dir, row filter, train split) to score a run with: its recorded
    data selection, or --data (and --data_cache) if given; printed."""
    from wavegan_dist.data.filters import RowFilter

    data = FLAGS.data or cfg.data
    cache_dir = FLAGS.data_cache or cfg.data_cache
    row_filter = cfg.row_filter()
    default = RowFilter()
    kept = ", ".join(
        f"{k}={v}" for k, v in dataclasses.asdict(row_filter).items() if v != getattr(default, k)
    )
    origin = "--data" if FLAGS.data else f"the run's --data, from {FLAGS.model_dir}/config.json"
    _say(
        f"reference data: {data} ({origin}): training notes from its {cfg.split} split, "
        f"held-out notes from {FLAGS.heldout_split}"
        + (f", rows filtered as the run's ({kept})" if kept else "")
    )
    return data, cache_dir, row_filter, cfg.split


def _evaluate() -> None:
    from wavegan_dist.errors import UserError

    if not FLAGS.model_dir or not FLAGS.classifier:
        raise UserError(
            "pass --model_dir=RUN and --classifier=FOLDER (or the subcommand train-classifier)"
        )
    if FLAGS.n < 0 or FLAGS.k < 2:
        raise UserError("--n must be >= 0 and --k >= 2")
    if FLAGS.json:
        if os.path.isdir(FLAGS.json):
            raise UserError(f"--json={FLAGS.json} is a folder; pass a file name")
        _check_output_folder(f"--json={FLAGS.json}", os.path.dirname(FLAGS.json) or ".")
    if FLAGS.compare_png:
        _check_new_file("--compare_png", FLAGS.compare_png)
    from wavegan_dist.evaluation import classifier, report
    from wavegan_dist.evaluation.run import check_heldout_split, evaluate_generator
    from wavegan_dist.inference.restore import load_generator, read_run_config

    run_cfg = read_run_config(FLAGS.model_dir)[0]
    if FLAGS.compare_png and run_cfg.condition == "none":
        raise UserError(
            f"--compare_png pairs real and generated notes by label, but the run in "
            f"{FLAGS.model_dir} is unconditional (--condition=none); leave "
            "--compare_png out, or listen with python -m wavegan_dist.generate"
        )
    data, cache_dir, row_filter, train_split = _reference_data(run_cfg)
    try:
        check_heldout_split(data, FLAGS.heldout_split, cache_dir, _say)
    except UserError as err:
        if FLAGS.data:
            raise
        raise UserError(
            f"{err} (the run's recorded data; pass --data to score against another copy)"
        ) from err
    model, info = classifier.load(FLAGS.classifier)
    generator, cfg, sample_rate, step, weights = load_generator(
        FLAGS.model_dir, FLAGS.checkpoint, _say, weights=FLAGS.weights
    )
    if sample_rate != info.sample_rate:
        raise UserError(
            f"the run makes {sample_rate} Hz audio but the classifier takes {info.sample_rate} Hz"
        )
    _say(
        f"evaluating {FLAGS.model_dir} at step {step} ({weights} weights) with a "
        f"{info.target} classifier (held-out accuracy {info.heldout_accuracy:.3f})"
    )
    result = evaluate_generator(
        generator,
        cfg.condition,
        model,
        info,
        data,
        FLAGS.heldout_split,
        FLAGS.n,
        FLAGS.k,
        cache_dir,
        FLAGS.max_train,
        FLAGS.seed,
        log=_say,
        row_filter=row_filter,
        train_split=train_split,
    )
    result.update(step=step, model_dir=FLAGS.model_dir, weights=weights, data=data)
    _say(report.format_table(result))
    if FLAGS.json:
        try:
            os.makedirs(os.path.dirname(FLAGS.json) or ".", exist_ok=True)
            with open(FLAGS.json, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=2)
        except OSError as err:
            raise UserError(
                f"cannot write --json={FLAGS.json} ({err.strerror or err}); the "
                "report is printed above"
            ) from err
        _say(f"wrote {FLAGS.json}")
    if FLAGS.compare_png:
        _write_compare_png(generator, cfg, sample_rate, data, cache_dir, row_filter)


def main(argv: list[str]) -> None:
    """absl entry point: `train-classifier`, or evaluate a run."""
    from wavegan_dist.errors import UserError

    def run():
        if argv[1:] == ["train-classifier"]:
            _train_classifier()
        elif len(argv) > 1:
            raise UserError(
                f"unknown subcommand {' '.join(argv[1:])}; the only one is train-classifier"
            )
        else:
            _evaluate()

    logging.set_verbosity(logging.WARNING)
    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags_or_exit)
