r"""`python -m wavegan_dist.ingest`: build a deeplake NSynth-schema dataset from another source.

Examples:
  python -m wavegan_dist.ingest --format=nsynth-jsonwav --source=nsynth-train \
      --dest=data/nsynth/train
  python -m wavegan_dist.ingest --format=nsynth-tfrecord --source=nsynth-valid.tfrecord \
      --dest=data/nsynth/valid
  python -m wavegan_dist.ingest --format=audio-folder --source=my_samples \
      --metadata=my_samples/notes.csv --dest=data/mine
  python -m wavegan_dist.ingest --format=audio-folder --source=my_samples \
      --valid_fraction=0.1 --dest=data/mine_split
  python -m wavegan_dist.ingest --format=deeplake-v3 --source=hub://activeloop/nsynth-train \
      --dest=data/nsynth/train

Re-running the same command after an interruption continues after the last
committed chunk; on a finished dataset it says so and exits 0. An unreadable
file or record is skipped and named in the end report; an ingest that writes
no row at all exits 2 with the reasons and keeps no dataset.

Audio is stored as mono int16 PCM at --sample_rate (other rates are resampled):
float samples x become clip(rint(x * 32768), -32768, 32767), which gives NSynth's
float audio back its original int16 values exactly; audio longer than --num_samples
is cut, shorter is zero-padded at the end.
"""

from wavegan_dist import cli  # (also sets TF log level before TensorFlow loads)

import textwrap

from absl import app, flags, logging

# A private flag set: the names (num_samples, ...) must not clash with the training
# flags when both modules are imported in one process.
FLAGS = flags.FlagValues()
flags.DEFINE_string("source", None, "Folder, file or dataset to read.", flag_values=FLAGS)
flags.DEFINE_string(
    "format",
    None,
    "nsynth-jsonwav | nsynth-tfrecord | audio-folder | deeplake-v3.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "dest",
    None,
    "deeplake path of the dataset to write (local folder, file://, s3://, ...).",
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "sample_rate", 16000, "Hz of the stored audio; other rates are resampled.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "num_samples",
    64000,
    "Samples per row: longer audio is cut, shorter zero-padded.",
    flag_values=FLAGS,
)
flags.DEFINE_integer("chunk_rows", 256, "Rows per committed chunk.", flag_values=FLAGS)
flags.DEFINE_string(
    "metadata",
    None,
    "audio-folder only: CSV or JSON sidecar with per-file "
    "metadata (keyed by file name or relative path).",
    flag_values=FLAGS,
)
flags.DEFINE_float(
    "valid_fraction",
    0.0,
    "audio-folder only: share of instruments (else "
    "files) held out into <dest>/valid; the rest goes to <dest>/train.",
    flag_values=FLAGS,
)
flags.DEFINE_float(
    "test_fraction", 0.0, "audio-folder only: share held out into <dest>/test.", flag_values=FLAGS
)


def _log(message: str) -> None:
    print(message, flush=True)


def parse_flags(argv: list[str]) -> list[str]:
    """Parses argv into FLAGS; --help prints the rules too; a bad flag is `error: ...`, exit 2."""
    rest = cli.parse_flags_or_exit(argv, FLAGS, describe=_describe)
    flags.FLAGS([argv[0]])  # absl.app wants its own flag set parsed
    return rest


def _describe(argv: list[str]) -> tuple[str, None]:
    """--help's text: this docstring, the metadata rules and NSynth's names and numbers."""
    from wavegan_dist.data import schema
    from wavegan_dist.data.ingest import filenames, sidecar, splits

    def numbered(label, names):
        return textwrap.fill(
            f"{label}: " + ", ".join(f"{i}={n}" for i, n in enumerate(names)),
            84,
            initial_indent="  ",
            subsequent_indent="    ",
        )

    names = "\n".join(
        [
            "NSynth's names and numbers (in file names, sidecars and the dataset):",
            numbered("instrument_family", schema.FAMILIES),
            numbered("instrument_source", schema.SOURCES),
            numbered("qualities, in order", schema.QUALITIES),
            f'An unknown number is stored as {schema.UNKNOWN}, an unknown text as "".',
        ]
    )
    sections = [__doc__, filenames.__doc__, sidecar.__doc__, splits.__doc__, names]
    return "\n\n".join(s.strip() for s in sections), None


def main(argv: list[str]) -> None:
    """absl entry point: run the ingest described by the flags and print the report."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) > 1:
            raise UserError(
                f"unexpected arguments {' '.join(argv[1:])}; flags look like --name=value"
            )
        # imports deeplake (and TF when needed)
        from wavegan_dist.data.ingest import ingest, ingest_splits

        args = dict(
            sample_rate=FLAGS.sample_rate,
            num_samples=FLAGS.num_samples,
            chunk_rows=FLAGS.chunk_rows,
            metadata=FLAGS.metadata,
            log=_log,
        )
        if FLAGS.valid_fraction or FLAGS.test_fraction:
            report = ingest_splits(
                FLAGS.source,
                FLAGS.format,
                FLAGS.dest,
                valid_fraction=FLAGS.valid_fraction,
                test_fraction=FLAGS.test_fraction,
                **args,
            )
        else:
            report = ingest(FLAGS.source, FLAGS.format, FLAGS.dest, **args)
        for line in report.lines():
            _log(line)

    logging.set_verbosity(logging.WARNING)
    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
