r"""`python -m wavegan_dist.prepare`: write a dataset's training examples in the prepared
form (sharded TFRecord files + manifest) that training reads with TensorFlow ops only.

Examples:
  python -m wavegan_dist.prepare --data=data/nsynth --dest=data/nsynth-prepared
  python -m wavegan_dist.prepare --data=data/nsynth --subset=gansynth --condition=pitch \
      --dest=gs://bucket/nsynth-gansynth-pitch --shards=256
  python -m wavegan_dist.train --data=data/nsynth-prepared --model_dir=runs/big

It takes the training run's selection flags (--split, --num_samples, filters,
--subset, --condition, --slice_len, --slice_offset, --normalize; --preset for its
slice length) and writes exactly the examples such a run would read, in one order
shuffled with --seed. Training with --data=DEST must ask for the same selection.
Re-running the same command after an interruption writes only the missing shards.
"""

from wavegan_dist import cli  # (also sets TF log level before TensorFlow loads)

from absl import app, flags, logging

from wavegan_dist.data.prepared import SELECTION
from wavegan_dist.flags import FLAGS, config_from_flags

flags.DEFINE_string("dest", None, "Folder or gs:// URL for the prepared data.")
flags.DEFINE_integer(
    "shards",
    0,
    "Shard files (0 = about 128 MiB each, a multiple of 16); "
    "at least the number of input pipelines (hosts) that will read it.",
)

# The training flags that choose the examples, plus how to read them and where to write.
PREPARE_FLAGS = (
    "preset",
    "data",
    "split",
    "data_cache",
    *(name for name in SELECTION if name != "split"),
    "seed",
    "read_rows",
    "dest",
    "shards",
)


def _log(message: str) -> None:
    print(message, flush=True)


def _describe(argv: list[str]) -> tuple[str, tuple]:
    return __doc__, PREPARE_FLAGS


def main(argv: list[str]) -> None:
    """absl entry point: check the flags and write the prepared data."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) > 1:
            raise UserError(
                f"unexpected arguments {' '.join(argv[1:])}; flags look like --name=value"
            )
        others = [
            name
            for name in FLAGS
            if FLAGS[name].present
            and name not in PREPARE_FLAGS
            and not FLAGS.find_module_defining_flag(name, "").startswith("absl")
        ]
        if others:
            raise UserError(
                f"--{others[0]} is not a prepare flag (prepare takes the selection "
                "flags; see --help); give it to training instead"
            )
        if not FLAGS.dest:
            raise UserError("--dest is required: the folder or gs:// URL to write to")
        cfg = config_from_flags(FLAGS)
        from wavegan_dist.data.prepared.writer import prepare  # imports TF and deeplake

        prepare(cfg, FLAGS.dest, FLAGS.shards, log=_log)

    logging.set_verbosity(logging.WARNING)
    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=lambda argv: cli.parse_flags_or_exit(argv, describe=_describe))
