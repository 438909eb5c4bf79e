"""`python -m wavegan_dist.generate`: audio from a trained run, and/or its generator as a SavedModel.

Examples:
  python -m wavegan_dist.generate --model_dir=runs/tiny --n=16 --out=samples
  python -m wavegan_dist.generate --model_dir=runs/pitch --n=8 --pitch=60 --seed=3 --out=c4
  python -m wavegan_dist.generate --model_dir=runs/tiny --export=exported/tiny

--out gets n mono 16-bit WAV files (generated_*.wav) at the run's sample rate and
spectrograms.png, a grid of their spectrograms. --export gets a TF SavedModel whose
`serving_default` signature maps z (float32 [batch, latent_dim]) and, for a conditional
run, label (int32 [batch]) to audio (float32 [batch, slice_len]); it loads without
wavegan_dist. Nothing that already exists is overwritten.
"""

# This command defines its own flags and must not import wavegan_dist.flags (the
# training flags): absl flags are process-global and both define --model_dir.

from wavegan_dist import cli  # noqa: F401  (sets TF log level before TensorFlow loads)

import fnmatch
import os

from absl import app, flags, logging

from wavegan_dist.inference.restore import WEIGHTS, WEIGHTS_HELP

flags.DEFINE_string("model_dir", None, "Folder of the training run (its --model_dir).")
flags.DEFINE_string("checkpoint", None, "Checkpoint path prefix to restore, e.g. "
                    "DIR/checkpoints/ckpt-4 (default: the run's newest).")
flags.DEFINE_enum("weights", None, list(WEIGHTS), WEIGHTS_HELP)
flags.DEFINE_integer("n", 16, "Number of clips to generate.")
flags.DEFINE_integer("pitch", None, "MIDI pitch 0-127 of every clip (runs trained with "
                     "--condition=pitch).")
flags.DEFINE_integer("instrument_family", None, "Instrument family 0-10 (0 bass ... 10 vocal) "
                     "of every clip (runs trained with --condition=instrument_family).")
flags.DEFINE_string("out", None, "Folder for the WAV files and spectrograms.png (new or "
                    "without earlier outputs).")
flags.DEFINE_integer("seed", 0, "Seed of the latent vectors: the same seed gives the same clips.")
flags.DEFINE_string("export", None, "Write the generator as a TF SavedModel to this new or "
                    "empty folder.")

FLAGS = flags.FLAGS

WAV_PREFIX = "generated"  # summaries.write_wavs names files <prefix>_<index>.wav
SPECTROGRAM_FILE = "spectrograms.png"
LABEL_FLAGS = ("pitch", "instrument_family")
LABEL_MEANING = {"pitch": "MIDI pitch", "instrument_family": "instrument family"}


def check_label_range(name: str, value: int) -> None:
    """Raises UserError unless `value` is a label of the condition `name` (a LABEL_FLAGS entry)."""
    from wavegan_dist.data.schema import LABEL_CLASSES
    from wavegan_dist.errors import UserError

    top = LABEL_CLASSES[name] - 1
    if not 0 <= value <= top:
        raise UserError(f"--{name}={value} is out of range: {LABEL_MEANING[name]} is 0-{top}")


def choose_label(condition: str, given: dict, model_dir: str, writes_audio: bool):
    """Picks the label of the generated clips from the label flags the user gave.

    Args:
      condition: the run's condition ("none", "pitch", "instrument_family").
      given: {flag name: value} of the label flags given (values already range-checked).
      model_dir: the run's folder, for messages.
      writes_audio: False when only exporting (an export takes labels as input).
    Returns:
      The label (int) for every clip, or None for an unconditional run or an export
      only. Raises UserError if the flags do not fit the run.
    """
    from wavegan_dist.data.schema import LABEL_CLASSES
    from wavegan_dist.errors import UserError

    if len(given) > 1:
        raise UserError("pass one label flag, not both --pitch and --instrument_family")
    name = next(iter(given), None)
    if name and condition == "none":
        raise UserError(f"--{name} is for conditional runs, but the run in {model_dir} is "
                        "unconditional (trained with --condition=none)")
    if name and not writes_audio:
        raise UserError(f"--{name} sets the label of the clips written to --out; an --export "
                        f"takes the label as an input, so leave --{name} out or add --out")
    if condition == "none" or not writes_audio:
        return None
    wanted = f"--{condition}=N ({LABEL_MEANING[condition]} 0-{LABEL_CLASSES[condition] - 1})"
    if name is None:
        raise UserError(f"the run in {model_dir} is conditioned on {condition}: pass {wanted}")
    if name != condition:
        raise UserError(f"the run in {model_dir} is conditioned on {condition}, not {name}: "
                        f"pass {wanted} instead of --{name}")
    return given[name]


def check_out_dir(out: str) -> None:
    """Raises UserError if `out` is a file, cannot be written or created, or already
    holds files this command writes."""
    from wavegan_dist import inference
    from wavegan_dist.errors import UserError
    from wavegan_dist.paths import check_output_folder

    if inference.path_exists(out) and not inference.is_folder(out):
        raise UserError(f"--out={out} is a file; pass a new or empty folder")
    check_output_folder("--out", out)
    if not inference.path_exists(out):
        return
    # Any earlier set of clips is refused, not only the names this n would write:
    # mixing two sets in one folder would pass one off as the other.
    ours = [name for name in inference.list_folder(out) if _is_output(name)]
    if ours:
        shown = ", ".join(ours[:3]) + (f" and {len(ours) - 3} more" if len(ours) > 3 else "")
        raise UserError(f"--out={out} already holds {shown}; nothing is overwritten: pass a new "
                        "or empty folder, or move those files away")


def _is_output(name: str) -> bool:
    """True for the names of the files this command writes into --out."""
    return fnmatch.fnmatch(name, f"{WAV_PREFIX}_*.wav") or name == SPECTROGRAM_FILE


def _remove_outputs(out: str) -> None:
    """Removes this command's files from `out` after a failed write (check_out_dir made
    sure none were there before, so they are all this run's)."""
    import tensorflow as tf

    from wavegan_dist import inference

    for name in inference.list_folder(out) if inference.is_folder(out) else []:
        if _is_output(name):
            tf.io.gfile.remove(os.path.join(out, name))


def main(argv: list[str]) -> None:
    """absl entry point: check the flags, restore the run's generator, write what was asked."""
    from wavegan_dist.errors import UserError

    def run():
        if len(argv) > 1:
            raise UserError(f"unexpected arguments {' '.join(argv[1:])}; flags look like --name=value")
        model_dir, out, export = FLAGS.model_dir, FLAGS.out, FLAGS.export
        # Everything that needs no TensorFlow is checked first, so bad input fails at once.
        if not model_dir:
            raise UserError("--model_dir is required: the folder of a training run")
        if not out and not export:
            raise UserError("nothing to do: pass --out=FOLDER for WAV files, --export=FOLDER "
                            "for a SavedModel, or both")
        if FLAGS.n < 1:
            raise UserError(f"--n must be >= 1, got {FLAGS.n}")
        if FLAGS.seed < 0:
            raise UserError(f"--seed must be >= 0, got {FLAGS.seed}")
        given = {name: getattr(FLAGS, name) for name in LABEL_FLAGS
                 if getattr(FLAGS, name) is not None}
        for name, value in given.items():
            check_label_range(name, value)
        if out and export and os.path.abspath(out) == os.path.abspath(export):
            raise UserError("--out and --export must be different folders")
        if out:
            check_out_dir(out)
        if export:
            from wavegan_dist.inference.export import check_export_dir
            from wavegan_dist.paths import check_output_folder
            check_export_dir(export)
            check_output_folder("--export", export)
        from wavegan_dist.inference.restore import read_run_config
        cfg, _, _ = read_run_config(model_dir)
        label = choose_label(cfg.condition, given, model_dir, writes_audio=bool(out))

        import tensorflow as tf

        from wavegan_dist.inference import restore
        generator, cfg, sample_rate, step, weights = restore.load_generator(
            model_dir, FLAGS.checkpoint, log=_print, weights=FLAGS.weights)
        _print(f"run {model_dir}: {cfg.model} generator, {cfg.slice_len} samples at "
               f"{sample_rate} Hz, z of {cfg.latent_dim}, condition {cfg.condition}, step {step}")
        done = []
        if out:
            try:
                done.append(_write_clips(generator, cfg, sample_rate, out, FLAGS.n, FLAGS.seed,
                                         label))
            except (OSError, tf.errors.OpError) as err:  # e.g. the disk filled up
                from wavegan_dist.training.checkpoints import os_reason
                _remove_outputs(out)
                raise UserError(f"cannot write to --out={out}: {os_reason(err)}; the files "
                                "written so far were removed; free space, then run the same "
                                "command again") from err
        if export:
            from wavegan_dist.inference.export import export_generator
            export_generator(generator, cfg, sample_rate, export)
            inputs = f"z float32 [None, {cfg.latent_dim}]"
            if cfg.condition != "none":
                inputs += f", label int32 [None] ({cfg.condition})"
            _print(f"wrote SavedModel {export} (serving_default: {inputs} -> audio float32 "
                   f"[None, {cfg.slice_len}])")
            done.append(f"1 SavedModel in {export}")
        what = f"step {step}, {weights} weights" + (f", seed {FLAGS.seed}" if out else "")
        if label is not None:
            what += f", {cfg.condition} {label}"
        _print(f"done: {'; '.join(done)} ({what})")

    logging.set_verbosity(logging.WARNING)
    cli.run_or_exit(run)


def _print(message: str) -> None:
    print(message, flush=True)


def _write_clips(generator, cfg, sample_rate: int, out: str, n: int, seed: int, label) -> str:
    """Generates n clips into `out` (WAVs and the spectrogram grid); returns a summary phrase."""
    import tensorflow as tf

    from wavegan_dist.inference import grid, restore
    from wavegan_dist.training.summaries import write_wavs

    z = restore.latent_vectors(n, cfg.latent_dim, seed)
    labels = None if label is None else tf.fill([n], tf.constant(label, tf.int32))
    waves = restore.generate_waves(generator, z, labels)  # [n, slice_len, 1]
    paths = write_wavs(out, waves, sample_rate, prefix=WAV_PREFIX)
    for path in paths:
        _print(f"wrote {path}")
    image = grid.spectrogram_grid(waves)
    rows, cols = grid.grid_shape(n)
    png = os.path.join(out, SPECTROGRAM_FILE)
    grid.write_png(png, image)
    _print(f"wrote {png} ({rows} x {cols} spectrograms, {image.shape[1]} x {image.shape[0]} pixels)")
    return f"{len(paths)} WAV files and 1 spectrogram image in {out}"


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags_or_exit)
